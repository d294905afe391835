"""When may a phone train? Scheduling policies, replayed over a week of usage.

A :class:`Policy` is a rule over a :class:`~odtlab.devices.traces.UsageTrace`
sample: which conditions must hold (charging, idle, unmetered), a battery
floor, and what to do when the phone is warm. Four named policies
(:data:`POLICIES`, :func:`get_policy`):

``train_now``
    Train at once, whatever the user is doing, until the day's job is done.
``while_charging``
    Only on the charger.
``charging_idle_unmetered``
    Charging, screen off and on Wi-Fi: the eligibility rule of production
    federated learning (Bonawitz et al., MLSys 2019, :cite:`bonawitz2019towards`).
``opportunistic``
    Any idle moment with at least 50 % battery, in the short windows that
    screen-off gaps give, saving an atomic checkpoint when a window closes
    and resuming from it at the next (:mod:`odtlab.train.checkpoint`), and
    on one core while the phone is warm (an app-level rule practitioners give).

:func:`simulate_schedule` replays a policy minute by minute and says, per
day, how many steps of a :class:`DailyJob` were done, the energy and battery
share they cost, the minutes of training while the screen was on, and the
minutes spent throttled or on one core. The model, stated once:

* a step at full speed takes ``step_time_s`` and ``step_dynamic_j`` joules
  above idle; training also keeps the phone awake, so ``idle_power_w`` is
  charged to training for every second it trains (as :func:`simulate` does);
* the device temperature follows the RC model of :mod:`odtlab.devices.thermal`
  driven by the trace's ambient temperature and the power drawn (idle power
  when not training); above ``throttle_temp_c`` it runs at ``throttle_factor``
  speed; above the policy's ``warm_c`` it runs on one core at ``warm_speed``
  speed. Both slow-downs stretch steps: dynamic energy per step is unchanged,
  idle energy per step grows;
* energy drawn while charging comes from the charger: it counts in
  ``energy_j`` but not in ``battery_percent``; the battery floor compares
  the trace's level minus the training drain since the phone was last charging;
* a policy with ``resumes=False`` has no checkpoint: a window that closes
  before the day's job is done loses its steps (their energy is still spent).

Examples
--------
>>> from odtlab import devices
>>> trace = devices.usage_trace("student", seed=0)
>>> job = devices.DailyJob(step_time_s=0.5, step_dynamic_j=1.0, steps_per_day=3000)
>>> result = devices.simulate_schedule(trace, "charging_idle_unmetered", "phone-mid", job)
>>> bool((result.training <= trace.eligible()).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from odtlab.devices.profile import DeviceProfile
from odtlab.devices.registry import get
from odtlab.devices.simulator import simulate
from odtlab.devices.thermal import next_throttle_state, rc_step, steady_state_c
from odtlab.devices.traces import MINUTES_PER_DAY, UsageTrace
from odtlab.devices.workload import Workload
from odtlab.errors import OdtlabError
from odtlab.viz import plot_usage

__all__ = ["Policy", "POLICIES", "get_policy", "UnknownPolicy", "DailyJob", "ScheduleResult",
           "simulate_schedule", "compare_policies"]  # fmt: skip


class UnknownPolicy(OdtlabError, ValueError):
    """A policy name that is not in :data:`POLICIES`; the message lists the known ones."""


@dataclass(frozen=True)
class Policy:
    """When a device may train, and how gently.

    Attributes
    ----------
    name : str
    charging, idle, unmetered : bool
        Conditions that must hold in a sample (plugged in, screen off, Wi-Fi).
    min_battery_percent : float
        Skip when the battery is below this level, %.
    warm_c : float or None
        Above this device temperature (°C), run on one core (``warm_speed``).
    warm_speed : float
        Speed (and dynamic power) multiplier on one core, in (0, 1].
    resumes : bool
        Save a checkpoint when a window closes and resume from it; ``False``
        loses the steps of an unfinished window.
    """

    name: str
    charging: bool = False
    idle: bool = False
    unmetered: bool = False
    min_battery_percent: float = 0.0
    warm_c: float | None = None
    warm_speed: float = 0.25
    resumes: bool = True

    def allowed(self, trace: UsageTrace) -> np.ndarray:
        """Samples where the trace's conditions allow training (the battery floor aside)."""
        return trace.eligible(charging=self.charging, idle=self.idle, unmetered=self.unmetered)


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("train_now"),
        Policy("while_charging", charging=True),
        Policy("charging_idle_unmetered", charging=True, idle=True, unmetered=True),
        Policy("opportunistic", idle=True, min_battery_percent=50.0, warm_c=60.0),
    )
}


def get_policy(policy: str | Policy) -> Policy:
    """A :class:`Policy` itself, or the named one from :data:`POLICIES`.

    Raises
    ------
    UnknownPolicy
        For a name not in :data:`POLICIES` (the message lists them).
    """
    if isinstance(policy, Policy):
        return policy
    if policy not in POLICIES:
        raise UnknownPolicy(f"unknown policy {policy!r}; known: {', '.join(map(repr, POLICIES))}, "
                            "or build your own Policy(name, charging=..., idle=..., ...)")  # fmt: skip
    return POLICIES[policy]


@dataclass(frozen=True)
class DailyJob:
    """A training job that wants ``steps_per_day`` steps every day.

    Attributes
    ----------
    step_time_s : float
        Seconds of one step at full speed.
    step_dynamic_j : float
        Joules of one step above the device's idle power.
    steps_per_day : int
    """

    step_time_s: float
    step_dynamic_j: float
    steps_per_day: int

    @classmethod
    def from_workload(cls, workload: Workload, device: DeviceProfile | str,
                      steps_per_day: int) -> DailyJob:  # fmt: skip
        """Price one step of ``workload`` on ``device`` with :func:`simulate` (full speed)."""
        profile = get(device)
        one = Workload(workload.flops_per_step, workload.bytes_moved_per_step,
                       workload.peak_bytes, 1, workload.dtype,
                       bytes_by_level=workload.bytes_by_level)  # fmt: skip
        sim = simulate(one, profile, thermal=False, check_memory=False)
        step_s = sim.total_time_s
        return cls(step_s, sim.total_energy_j - profile.idle_power_w * step_s, int(steps_per_day))


@dataclass(frozen=True, eq=False)
class ScheduleResult:
    """What a policy did with a trace, per sample and per day.

    Per-sample arrays (one value per trace sample): ``training`` (bool,
    trained in that sample), ``steps`` (steps done, fractional),
    ``energy_j`` (J charged to training), ``battery_j`` (the part drawn from
    the battery), ``temperature_c``, ``battery_percent`` (level the policy
    saw), ``throttled``, ``one_core`` (bool, while training).
    """

    policy: Policy
    device: str
    job: DailyJob
    trace: UsageTrace = field(repr=False)
    training: np.ndarray = field(repr=False)
    steps: np.ndarray = field(repr=False)
    lost_steps: np.ndarray = field(repr=False)
    energy_j: np.ndarray = field(repr=False)
    battery_j: np.ndarray = field(repr=False)
    temperature_c: np.ndarray = field(repr=False)
    battery_percent: np.ndarray = field(repr=False)
    throttled: np.ndarray = field(repr=False)
    one_core: np.ndarray = field(repr=False)
    windows: np.ndarray = field(repr=False)
    battery_wh: float | None = None

    def per_day(self) -> list[dict[str, float]]:
        """One row per day: steps done, energy (J), battery %, minutes screen on / throttled / one core."""
        dt = self.trace.minutes_per_sample
        rows = []
        for d in range(math.ceil(self.trace.days)):
            s = self.trace.day(d)
            kept = float(self.steps[s].sum() - self.lost_steps[s].sum())
            rows.append({
                "day": d, "steps": kept, "done": kept >= self.job.steps_per_day - 1e-6,
                "energy_j": float(self.energy_j[s].sum()),
                "battery_percent": self._percent(float(self.battery_j[s].sum())),
                "screen_on_min": float((self.training[s] & self.trace.screen_on[s]).sum() * dt),
                "throttled_min": float(self.throttled[s].sum() * dt),
                "one_core_min": float(self.one_core[s].sum() * dt),
                "windows": int(self.windows[s].sum()),
            })  # fmt: skip
        return rows

    def mean_per_day(self) -> dict[str, float]:
        """The mean of :meth:`per_day` over the days (``done`` as a fraction of days)."""
        rows = self.per_day()
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "day"}

    def _percent(self, joules: float) -> float:
        return math.nan if not self.battery_wh else 100.0 * joules / (self.battery_wh * 3600.0)

    def plot(self, ax: Any = None) -> Any:
        """The week with the samples it trained in (:func:`odtlab.viz.plot_usage`)."""
        return plot_usage(self.trace, ax, training=self.training)

    def __str__(self) -> str:
        m = self.mean_per_day()
        return (f"{self.policy.name} on {self.device} ({self.trace.user_type}): "
                f"{m['steps']:.0f}/{self.job.steps_per_day} steps a day ({m['done']:.0%} of days "
                f"done), {m['energy_j']:.0f} J, {m['battery_percent']:.2f} % battery, "
                f"{m['screen_on_min']:.0f} min while in use, {m['throttled_min']:.0f} min "
                f"throttled, {m['one_core_min']:.0f} min on one core")  # fmt: skip


def simulate_schedule(trace: UsageTrace, policy: str | Policy, device: DeviceProfile | str,
                      job: DailyJob) -> ScheduleResult:  # fmt: skip
    """Replay ``policy`` over ``trace`` on ``device`` for ``job`` (see the module docstring).

    Returns
    -------
    ScheduleResult
        Per-sample arrays and :meth:`ScheduleResult.per_day` totals.
    """
    pol, prof = get_policy(policy), get(device)
    n, dt = len(trace), trace.minutes_per_sample * 60.0
    allowed = pol.allowed(trace)
    r, c = prof.thermal_resistance_k_per_w, prof.thermal_capacitance_j_per_k
    capacity_j = (prof.battery_wh or math.inf) * 3600.0
    out = {k: np.zeros(n) for k in ("steps", "lost_steps", "energy_j", "battery_j", "temperature_c",
                                     "battery_percent")}  # fmt: skip
    flags = {k: np.zeros(n, dtype=bool) for k in ("training", "throttled", "one_core", "windows")}
    temp = steady_state_c(prof.idle_power_w, float(trace.ambient_c[0]), r)
    throttled, drain_j, done, window_steps, window_start = False, 0.0, 0.0, 0.0, -1
    per_day = MINUTES_PER_DAY // trace.minutes_per_sample
    for i in range(n):
        if i % per_day == 0:
            done = 0.0
        if trace.charging[i]:
            drain_j = 0.0  # the charger makes up what training drew
        level = float(trace.battery_percent[i]) - 100.0 * drain_j / capacity_j
        out["battery_percent"][i] = level
        go = bool(allowed[i]) and level >= pol.min_battery_percent and done < job.steps_per_day
        power = prof.idle_power_w
        throttled = next_throttle_state(throttled, temp, prof.throttle_temp_c,
                                        prof.throttle_hysteresis_k)  # fmt: skip
        if go:
            warm = pol.warm_c is not None and temp >= pol.warm_c
            speed = (prof.throttle_factor if throttled else 1.0) * (pol.warm_speed if warm else 1.0)
            steps = min(speed * dt / job.step_time_s, job.steps_per_day - done)
            busy_s = steps * job.step_time_s / speed
            energy = steps * job.step_dynamic_j + prof.idle_power_w * busy_s
            power += steps * job.step_dynamic_j / dt
            done += steps
            window_steps += steps
            if window_start < 0:
                window_start = i
                flags["windows"][i] = True
            for key, value in (("steps", steps), ("energy_j", energy)):
                out[key][i] = value
            if not trace.charging[i]:
                out["battery_j"][i] = energy
                drain_j += energy
            flags["training"][i], flags["throttled"][i], flags["one_core"][i] = True, throttled, warm
        elif window_start >= 0:  # the window closes
            if not pol.resumes and done < job.steps_per_day - 1e-9:
                out["lost_steps"][i - 1] += window_steps
                done -= window_steps
            window_steps, window_start = 0.0, -1
        temp = rc_step(temp, power, float(trace.ambient_c[i]), r, c, dt)
        out["temperature_c"][i] = temp
    return ScheduleResult(pol, prof.name, job, trace, flags["training"], out["steps"],
                          out["lost_steps"], out["energy_j"], out["battery_j"],
                          out["temperature_c"], out["battery_percent"], flags["throttled"],
                          flags["one_core"], flags["windows"], prof.battery_wh)  # fmt: skip


def compare_policies(traces: Iterable[UsageTrace], policies: Iterable[str | Policy],
                     device: DeviceProfile | str, job: DailyJob) -> list[dict[str, Any]]:  # fmt: skip
    """One row per (trace, policy): :meth:`ScheduleResult.mean_per_day`, ready for a DataFrame.

    Examples
    --------
    >>> from odtlab import devices
    >>> rows = compare_policies([devices.usage_trace("heavy", seed=0, minutes_per_sample=5)],
    ...                         ["train_now", "opportunistic"], "phone-mid",
    ...                         DailyJob(step_time_s=0.5, step_dynamic_j=2.0, steps_per_day=6000))
    >>> [(r["user"], r["policy"], r["screen_on_min"] > 0) for r in rows]
    [('heavy', 'train_now', True), ('heavy', 'opportunistic', False)]
    """
    names = [get_policy(p) for p in policies]
    rows = []
    for trace in traces:
        for pol in names:
            mean = simulate_schedule(trace, pol, device, job).mean_per_day()
            rows.append({"user": trace.user_type, "policy": pol.name, **mean})
    return rows

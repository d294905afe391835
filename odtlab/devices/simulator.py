"""Predict latency, energy, battery and temperature of a training job.

It is a model, not a measurement. Its assumptions, stated once:

1. **Roofline latency.** A step needs ``macs / macs_per_second[dtype]``
   seconds of compute and ``bytes_moved / memory_bandwidth`` seconds of
   memory traffic. Compute and memory overlap perfectly, so the step takes
   the *larger* of the two (the step is *compute-bound* or *memory-bound*).
   The throughputs are the device's published peaks (see
   :mod:`odtlab.devices.presets`), so predicted times are optimistic: real
   kernels reach a fraction of peak. To calibrate against a real board, time
   a few steps there and scale ``macs_per_second`` by measured/predicted.
2. **Energy.** A step costs ``macs * energy_per_mac[dtype] + bytes *
   energy_per_byte`` joules of dynamic energy, plus ``idle_power_w`` for every
   second it lasts. When the workload gives ``bytes_by_level``, each byte
   costs the energy of the memory level it comes from instead
   (:func:`~odtlab.devices.energy.energy_by_level`). Throttling stretches the step, so it adds idle energy
   but leaves the dynamic energy unchanged (a real DVFS governor would also
   lower the voltage; we ignore that).
3. **Battery.** ``battery %`` is energy over capacity (1 Wh = 3600 J); no
   conversion losses, no other apps, screen counted in idle power.
4. **Temperature.** One RC lump (:mod:`odtlab.devices.thermal`) driven by the
   step's average power ``energy / time``. The device starts at its idle
   steady state ``T_amb + idle_power * R`` unless told otherwise. Each step
   (or each sub-step of a long step, at most ``max_substep_s`` long) runs
   at full speed or, when the device is throttled, at ``throttle_factor``
   times full speed: its time is divided by the factor.

Examples
--------
>>> from odtlab import devices
>>> w = devices.Workload(flops_per_step=2 * 432e6, bytes_moved_per_step=0,
...                      peak_bytes=100_000, steps=10, dtype="int8")
>>> result = devices.simulate(w, "mcu")
>>> round(result.total_time_s, 6)               # 432e6 MACs at 432e6 MAC/s, 10 steps
10.0
"""

from __future__ import annotations

import math

import numpy as np

from odtlab.devices.energy import dynamic_energy_j
from odtlab.devices.fit import check_fit, verdict
from odtlab.devices.profile import DeviceProfile
from odtlab.devices.registry import get
from odtlab.devices.result import SimulationResult
from odtlab.devices.thermal import next_throttle_state, steady_state_c, time_to_reach_s
from odtlab.devices.workload import Workload

__all__ = ["SimulationResult", "simulate"]


def simulate(
    workload: Workload,
    device: DeviceProfile | str,
    *,
    ambient_c: float | None = None,
    thermal: bool = True,
    check_memory: bool = True,
    initial_temp_c: float | None = None,
    max_substep_s: float | None = None,
) -> SimulationResult:
    """Predict how long a training job takes on a device and what it costs.

    Parameters
    ----------
    workload : Workload
        FLOPs and bytes per step, peak memory, steps and data type.
    device : DeviceProfile or str
        A profile or a registered name.
    ambient_c : float, optional
        Ambient temperature in °C; the device's ``ambient_c`` by default.
    thermal : bool, default True
        Run the thermal model (and throttling). Without it every step runs at
        full speed and temperatures are NaN.
    check_memory : bool, default True
        Call :func:`check_fit` first and raise ``DoesNotFit`` if the job's
        peak memory is over the device's training budget.
    initial_temp_c : float, optional
        Starting temperature in °C; the idle steady state
        ``ambient + idle_power_w * R`` by default.
    max_substep_s : float, optional
        Longest stretch of time between two throttle decisions; a longer step
        is split into equal pieces of work. Defaults to 1 % of the thermal
        time constant ``R * C``.

    Returns
    -------
    SimulationResult
        Per-step arrays and totals; print it for a summary, ``.plot()`` it
        for the temperature trace.

    Raises
    ------
    DoesNotFit
        When ``check_memory`` is on and the job does not fit.
    """
    profile = get(device)
    if not isinstance(workload, Workload):
        raise TypeError(
            f"simulate needs a Workload, got {type(workload).__name__}; build one with "
            "Workload(flops_per_step=..., bytes_moved_per_step=..., peak_bytes=..., steps=...)."
        )
    fit = check_fit(workload, profile) if check_memory else verdict(workload, profile)
    amb = profile.ambient_c if ambient_c is None else float(ambient_c)
    r, c = profile.thermal_resistance_k_per_w, profile.thermal_capacitance_j_per_k
    t0 = (
        steady_state_c(profile.idle_power_w, amb, r)
        if initial_temp_c is None
        else float(initial_temp_c)
    )

    compute_s = workload.macs_per_step / profile.macs_per_second[workload.dtype]
    memory_s = workload.bytes_moved_per_step / profile.memory_bandwidth_bytes_per_s
    base_s = max(compute_s, memory_s)
    dynamic_j = dynamic_energy_j(workload, profile)  # by memory level if the workload says
    n = workload.steps

    if not thermal:
        step_time = np.full(n, base_s)
        return SimulationResult(
            device=profile,
            workload=workload,
            step_time_s=step_time,
            step_energy_j=np.full(n, dynamic_j + profile.idle_power_w * base_s),
            temperature_c=np.full(n, np.nan),
            throttled=np.zeros(n, dtype=bool),
            compute_time_s=compute_s,
            memory_time_s=memory_s,
            ambient_c=amb,
            initial_temp_c=t0,
            thermal=False,
            fit=fit,
        )

    tau = r * c
    max_sub = 0.01 * tau if max_substep_s is None else float(max_substep_s)
    if max_sub <= 0:
        raise ValueError(f"max_substep_s must be > 0, got {max_substep_s!r}.")
    pieces = max(1, math.ceil(base_s / max_sub))  # equal pieces of work per step
    times, temps, flags = _run_pieces(
        units=n * pieces,
        piece_s=base_s / pieces,
        piece_dynamic_j=dynamic_j / pieces,
        profile=profile,
        ambient_c=amb,
        start_c=t0,
    )
    times = times.reshape(n, pieces)
    step_time = times.sum(axis=1)
    return SimulationResult(
        device=profile,
        workload=workload,
        step_time_s=step_time,
        step_energy_j=dynamic_j + profile.idle_power_w * step_time,
        temperature_c=temps.reshape(n, pieces)[:, -1].copy(),
        throttled=flags.reshape(n, pieces).any(axis=1),
        compute_time_s=compute_s,
        memory_time_s=memory_s,
        ambient_c=amb,
        initial_temp_c=t0,
        thermal=True,
        fit=fit,
    )


def _run_pieces(
    *,
    units: int,
    piece_s: float,
    piece_dynamic_j: float,
    profile: DeviceProfile,
    ambient_c: float,
    start_c: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate the RC model over ``units`` equal pieces of work.

    The throttle state is decided at the start of each piece. Between two
    changes of state the power is constant, so the temperatures of a whole
    run of pieces come from the exact RC solution at once; the loop only
    turns at the (few) changes of state.
    """
    r, c = profile.thermal_resistance_k_per_w, profile.thermal_capacitance_j_per_k
    tau = r * c
    times = np.empty(units)
    temps = np.empty(units)
    flags = np.zeros(units, dtype=bool)
    temp, throttled, i = start_c, False, 0
    while i < units:
        throttled = next_throttle_state(
            throttled, temp, profile.throttle_temp_c, profile.throttle_hysteresis_k
        )
        duration = piece_s / (profile.throttle_factor if throttled else 1.0)
        power = piece_dynamic_j / duration + profile.idle_power_w
        switch_at = (
            profile.throttle_temp_c - profile.throttle_hysteresis_k
            if throttled
            else profile.throttle_temp_c
        )
        wait = time_to_reach_s(switch_at, temp, power, ambient_c, r, c)
        run = units - i if math.isinf(wait) else min(units - i, max(1, math.ceil(wait / duration)))
        steady = steady_state_c(power, ambient_c, r)
        decay = np.exp(-duration * np.arange(1, run + 1) / tau)
        temps[i : i + run] = steady + (temp - steady) * decay
        times[i : i + run] = duration
        flags[i : i + run] = throttled
        temp = float(temps[i + run - 1])
        i += run
    return times, temps, flags

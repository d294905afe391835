"""Week-long phone-usage traces: when is the screen on, the phone charging, on Wi-Fi?

A phone may only train when its owner will not notice: that depends on how
the owner uses it. A :class:`UsageTrace` is one simulated week of one user,
sampled every ``minutes_per_sample`` minutes (1 or 5), with five arrays:

* ``screen_on``: the user is using the phone (it is not *idle*);
* ``charging``: plugged in;
* ``unmetered``: on Wi-Fi rather than mobile data;
* ``ambient_c``: air temperature around the phone, in °C;
* ``battery_percent``: battery level (0-100 %) *without* any training.

:func:`usage_trace` generates one from a user type and a seed. Each user type
is a daily routine of places (asleep, home, commuting, at work, out) with
random start times; each place sets Wi-Fi, charging and how often the screen
goes on. The screen follows on/off sessions of random (geometric) lengths,
the battery drains faster with the screen on, fills on the charger, and a
user below 15 % plugs in for about 50 minutes. Day 0 is a Monday; days 5
and 6 are the weekend.

These are *generated* traces for teaching, not recorded ones: the routines
and rates are plausible round numbers (a 15 Wh phone: about 1.3 W with the
screen on, 0.2 W idle, a charger adding 1 % per minute up to 80 %, a
third of that above), chosen so the four user types differ in the ways that
matter for scheduling.

:meth:`UsageTrace.from_events` builds a trace by hand from intervals.

Examples
--------
>>> trace = usage_trace("student", seed=0)
>>> len(trace), trace.days
(10080, 7.0)
>>> bool((trace.eligible() <= trace.charging).all())    # eligible implies charging
True
>>> usage_trace("student", seed=0) == trace
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from odtlab.errors import OdtlabError
from odtlab.viz import plot_usage

__all__ = ["UsageTrace", "InvalidTrace", "usage_trace", "USER_TYPES", "MINUTES_PER_WEEK"]

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


class InvalidTrace(OdtlabError, ValueError):
    """A trace that cannot be built: unknown user type, bad resolution, overlapping events."""


# place -> (Wi-Fi?, mean screen-on session in minutes, mean gap between sessions in minutes)
_PLACES: dict[str, tuple[bool, float, float]] = {
    "sleep": (True, 2.0, 400.0),
    "home": (True, 6.0, 14.0),
    "commute": (False, 12.0, 4.0),
    "work": (True, 3.0, 25.0),
    "out": (False, 5.0, 12.0),
}
_PLACE_CODES = {name: i for i, name in enumerate(_PLACES)}

# A routine: blocks (place, start hour, end hour) painted over "home", in order, with start
# and end jittered by about 20 minutes; hours may pass 24 (the night into the next day).
# Charging blocks: (start hour, end hour) plugged in.
_Routine = tuple[tuple[tuple[str, float, float], ...], tuple[tuple[float, float], ...]]

USER_TYPES: dict[str, dict[str, Any]] = {
    "student": {
        "about": "studies on campus Wi-Fi on weekdays, stays up late, charges overnight",
        "weekday": ((("sleep", 0.5, 8.5), ("work", 10.0, 16.0), ("out", 19.0, 21.0)),
                    ((0.6, 8.4),)),
        "weekend": ((("sleep", 1.5, 10.0), ("out", 14.0, 18.0)), ((1.6, 9.9),)),
        "screen_scale": 1.2,
    },
    "commuter": {
        "about": "long commutes on mobile data, charges at the office desk, not at night",
        "weekday": ((("sleep", -1.0, 6.5), ("commute", 7.0, 8.5), ("work", 8.5, 17.5),
                     ("commute", 17.5, 19.0)), ((9.0, 12.0),)),
        "weekend": ((("sleep", -0.5, 8.0), ("out", 11.0, 15.0)), ((16.0, 18.0),)),
        "screen_scale": 1.0,
    },
    "heavy": {
        "about": "little idle time, often out on mobile data, short overnight charge",
        "weekday": ((("sleep", 1.5, 7.5), ("out", 11.0, 19.0)), ((2.0, 5.0),)),
        "weekend": ((("sleep", 2.0, 9.0), ("out", 12.0, 20.0)), ((2.5, 6.0),)),
        "screen_scale": 2.5,
    },
    "night-shift": {
        "about": "works nights, sleeps and charges in the day",
        "weekday": ((("commute", 21.0, 22.0), ("work", 22.0, 30.0), ("commute", 30.0, 31.0),
                     ("sleep", 31.5, 39.0)), ((31.6, 38.5),)),
        "weekend": ((("sleep", 8.0, 15.0), ("out", 18.0, 22.0)), ((8.5, 14.5),)),
        "screen_scale": 1.0,
    },
}  # fmt: skip


@dataclass(frozen=True, eq=False)
class UsageTrace:
    """One simulated week of one phone's use, one sample every ``minutes_per_sample`` minutes.

    Sample ``i`` covers minutes ``i * minutes_per_sample`` to
    ``(i + 1) * minutes_per_sample`` of the week, from Monday 00:00.

    Attributes
    ----------
    user_type : str
        The routine it was generated from (``"custom"`` for :meth:`from_events`).
    seed : int
        The seed it was generated with (``-1`` for :meth:`from_events`).
    minutes_per_sample : int
        Resolution in minutes.
    screen_on, charging, unmetered : numpy.ndarray of bool
        The user is using the phone / it is plugged in / it is on Wi-Fi.
    ambient_c : numpy.ndarray of float
        Ambient temperature, °C.
    battery_percent : numpy.ndarray of float
        Battery level at the start of each sample without any training, %.
    """

    user_type: str
    seed: int
    minutes_per_sample: int
    screen_on: np.ndarray
    charging: np.ndarray
    unmetered: np.ndarray
    ambient_c: np.ndarray
    battery_percent: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.screen_on)
        for f in ("charging", "unmetered", "ambient_c", "battery_percent"):
            if len(getattr(self, f)) != n:
                raise InvalidTrace(f"UsageTrace: {f} has {len(getattr(self, f))} samples, "
                                   f"screen_on {n}; give every array the same length")  # fmt: skip

    def __len__(self) -> int:
        return int(self.screen_on.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UsageTrace):
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name))
                   for f in fields(self))  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    @property
    def days(self) -> float:
        """Length of the trace in days."""
        return len(self) * self.minutes_per_sample / MINUTES_PER_DAY

    @property
    def hours(self) -> np.ndarray:
        """Start of each sample in hours from Monday 00:00."""
        return np.arange(len(self)) * self.minutes_per_sample / 60.0

    @property
    def idle(self) -> np.ndarray:
        """The screen is off: the user is not using the phone."""
        return ~self.screen_on

    def day(self, i: int) -> slice:
        """The samples of day ``i`` (0 is Monday) as a slice."""
        per = MINUTES_PER_DAY // self.minutes_per_sample
        return slice(i * per, (i + 1) * per)

    def sample_at(self, minute: float) -> int:
        """Index of the sample holding ``minute`` of the week (wrapping round the trace)."""
        return int(minute // self.minutes_per_sample) % len(self)

    def eligible(self, *, charging: bool = True, idle: bool = True, unmetered: bool = True,
                 min_battery_percent: float = 0.0) -> np.ndarray:  # fmt: skip
        """Boolean mask of the samples where a device may train under the given conditions.

        The defaults are the rule of production federated learning
        (Bonawitz et al., MLSys 2019): charging, idle and on an unmetered
        network. ``False`` drops a condition.

        Examples
        --------
        >>> t = UsageTrace.from_events(60, charging=[(10, 30)], screen=[(20, 25)])
        >>> int(t.eligible(unmetered=False).sum()), int(t.eligible(idle=False, unmetered=False).sum())
        (15, 20)
        """
        mask = self.battery_percent >= min_battery_percent
        if charging:
            mask = mask & self.charging
        if idle:
            mask = mask & ~self.screen_on
        if unmetered:
            mask = mask & self.unmetered
        return mask

    def summary(self) -> dict[str, float]:
        """Hours per day screen on, charging, on Wi-Fi and eligible (the default rule)."""
        per_day = self.minutes_per_sample / 60.0 / self.days
        return {name: round(float(mask.sum()) * per_day, 2) for name, mask in (
            ("screen_on_h", self.screen_on), ("charging_h", self.charging),
            ("unmetered_h", self.unmetered), ("eligible_h", self.eligible()))}  # fmt: skip

    def plot(self, ax: Any = None) -> Any:
        """Draw the week (:func:`odtlab.viz.plot_usage`)."""
        return plot_usage(self, ax)

    @classmethod
    def from_events(
        cls,
        minutes: int,
        *,
        screen: Sequence[tuple[int, int]] = (),
        charging: Sequence[tuple[int, int]] = (),
        wifi: Sequence[tuple[int, int]] = (),
        ambient_c: float = 22.0,
        battery_percent: float = 80.0,
    ) -> UsageTrace:
        """Build a 1-minute trace of ``minutes`` minutes from ``(start, end)`` minute intervals.

        Each kind's intervals must be sorted and must not overlap (end is
        exclusive). Ambient temperature and battery level are constant.

        Raises
        ------
        InvalidTrace
            For intervals out of order, overlapping, empty or outside ``0..minutes``.
        """
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
            raise InvalidTrace(f"from_events: minutes must be an int >= 1, got {minutes!r}")
        masks = {}
        for kind, events in (("screen", screen), ("charging", charging), ("wifi", wifi)):
            mask, last_end = np.zeros(minutes, dtype=bool), 0
            for start, end in events:
                if not 0 <= start < end <= minutes:
                    raise InvalidTrace(f"from_events: {kind} event ({start}, {end}) must satisfy "
                                       f"0 <= start < end <= {minutes}")  # fmt: skip
                if start < last_end:
                    raise InvalidTrace(f"from_events: {kind} event ({start}, {end}) starts before "
                                       f"the previous one ends (minute {last_end}); give events "
                                       "sorted by start and not overlapping (merge them)")  # fmt: skip
                mask[start:end], last_end = True, end
            masks[kind] = mask
        return cls("custom", -1, 1, masks["screen"], masks["charging"], masks["wifi"],
                   np.full(minutes, float(ambient_c)), np.full(minutes, float(battery_percent)))  # fmt: skip


def _paint_routine(rng: np.random.Generator, user: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Place code and charging flag of every minute of the week."""
    place = np.full(MINUTES_PER_WEEK, _PLACE_CODES["home"], dtype=np.int8)
    charging = np.zeros(MINUTES_PER_WEEK, dtype=bool)
    for day in range(-1, 7):  # the day before paints the first night
        blocks, plugs = user["weekend" if day % 7 in (5, 6) else "weekday"]
        base = day * MINUTES_PER_DAY
        for name, start_h, end_h in blocks:
            a, b = (int(base + h * 60 + rng.normal(0, 20)) for h in (start_h, end_h))
            place[max(a, 0) : max(b, 0)] = _PLACE_CODES[name]
        for start_h, end_h in plugs:
            a, b = (int(base + h * 60 + rng.normal(0, 15)) for h in (start_h, end_h))
            charging[max(a, 0) : max(b, 0)] = True
    return place, charging


def _screen_sessions(rng: np.random.Generator, place: np.ndarray, scale: float) -> np.ndarray:
    """On/off sessions of geometric lengths whose means depend on the place."""
    screen = np.zeros(place.size, dtype=bool)
    t = 0
    on_means = {i: v[1] * scale for i, v in enumerate(_PLACES.values())}
    off_means = {i: v[2] / scale for i, v in enumerate(_PLACES.values())}
    while t < place.size:
        t += int(rng.geometric(1.0 / off_means[int(place[t])]))
        if t >= place.size:
            break
        length = int(rng.geometric(1.0 / on_means[int(place[t])]))
        screen[t : t + length] = True
        t += length
    return screen


def _battery(rng: np.random.Generator, screen: np.ndarray, charging: np.ndarray) -> np.ndarray:
    """Battery level per minute (%), plugging in for about 50 minutes below 15 %."""
    level = float(rng.uniform(60, 90))
    out = np.empty(screen.size)
    plug_until = -1
    for t in range(screen.size):
        out[t] = level
        if level < 15 and not charging[t] and t >= plug_until:
            plug_until = t + int(rng.integers(40, 61))
        if t < plug_until:
            charging[t] = True
        if charging[t]:
            level += 1.0 if level < 80 else 0.33
        else:
            level -= 0.15 if screen[t] else 0.022
        level = min(100.0, max(0.0, level))
    return out


def usage_trace(user_type: str, *, seed: int = 0, minutes_per_sample: int = 1) -> UsageTrace:
    """Generate one week of phone use for ``user_type`` (see :data:`USER_TYPES`).

    Parameters
    ----------
    user_type : {"student", "commuter", "heavy", "night-shift"}
    seed : int, default 0
        Same seed and user type, same trace.
    minutes_per_sample : {1, 5}, default 1
        Resolution; at 5 minutes each sample takes the value of its first minute.

    Raises
    ------
    InvalidTrace
        For an unknown user type (the message lists the known ones) or resolution.
    """
    if user_type not in USER_TYPES:
        raise InvalidTrace(f"unknown user type {user_type!r}; known: "
                           + ", ".join(f"{k!r} ({v['about']})" for k, v in USER_TYPES.items()))  # fmt: skip
    if minutes_per_sample not in (1, 5):
        raise InvalidTrace(f"minutes_per_sample must be 1 or 5, got {minutes_per_sample!r}")
    user = USER_TYPES[user_type]
    rng = np.random.default_rng([int(seed), list(USER_TYPES).index(user_type)])
    place, charging = _paint_routine(rng, user)
    screen = _screen_sessions(rng, place, float(user["screen_scale"]))
    screen &= place != _PLACE_CODES["sleep"]  # nobody uses the phone asleep
    battery = _battery(rng, screen, charging)
    wifi = np.array([v[0] for v in _PLACES.values()])[place]
    hour = np.arange(MINUTES_PER_WEEK) / 60.0
    outdoors = np.isin(place, [_PLACE_CODES["commute"], _PLACE_CODES["out"]])
    outside_c = rng.normal(15, 4) + 7 * np.sin(2 * np.pi * (hour - 9) / 24)
    ambient = np.where(outdoors, outside_c, 22.0) + rng.normal(0, 0.5, MINUTES_PER_WEEK)
    k = minutes_per_sample
    return UsageTrace(user_type, int(seed), k, screen[::k].copy(), charging[::k].copy(),
                      wifi[::k].copy(), ambient[::k].copy(), battery[::k].copy())  # fmt: skip

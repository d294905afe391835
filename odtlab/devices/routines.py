"""Generated phone users: four daily routines that give a :class:`UsageTrace` from a seed.

:func:`usage_trace` builds a week of one user type. Each user type is a
daily routine of places (asleep, home, commuting, at work, out) with random
start times; each place sets Wi-Fi, charging and how often the screen goes
on. The screen follows on/off sessions of random (geometric) lengths, the
battery drains faster with the screen on, fills on the charger, and a user
below 15 % plugs in for about 50 minutes. Day 0 is a Monday; days 5 and 6
are the weekend. Ambient temperature is 22 °C indoors and follows a daily
sine outdoors.

These are *generated* traces for teaching, not recorded ones: the routines
and rates are plausible round numbers (a 15 Wh phone: about 1.3 W with the
screen on, 0.2 W idle, a charger adding 1 % per minute up to 80 %, a
third of that above), chosen so that the four user types differ in the ways
that matter for scheduling.

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

from typing import Any

import numpy as np

from odtlab.devices.traces import MINUTES_PER_DAY, MINUTES_PER_WEEK, InvalidTrace, UsageTrace

__all__ = ["usage_trace", "USER_TYPES"]

# place -> (Wi-Fi?, mean screen-on session in minutes, mean gap between sessions in minutes)
_PLACES: dict[str, tuple[bool, float, float]] = {
    "sleep": (True, 2.0, 400.0),
    "home": (True, 6.0, 14.0),
    "commute": (False, 12.0, 4.0),
    "work": (True, 3.0, 25.0),
    "out": (False, 5.0, 12.0),
}
_PLACE_CODES = {name: i for i, name in enumerate(_PLACES)}

# A routine, per weekday and weekend day: blocks (place, start hour, end hour) painted over
# "home", in order, with start and end jittered by about 20 minutes (hours may pass 24: the
# night into the next day), then charging blocks (start hour, end hour) plugged in.

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

"""A first-order (RC) thermal model with throttling and hysteresis.

The device is one lump of heat capacity ``C`` (J/K) joined to the air by a
thermal resistance ``R`` (K/W). Drawing power ``P`` (W) warms it::

    C dT/dt = P - (T - T_amb) / R      i.e.   dT/dt = (P R - (T - T_amb)) / (R C)

For constant ``P`` the solution is exact: the temperature moves from ``T0``
towards the steady state ``T_ss = T_amb + P R`` as

    T(t) = T_ss + (T0 - T_ss) exp(-t / (R C)),

so it never overshoots ``T_ss``. ``R C`` is the time constant: after it, 63 %
of the way is done; after five, more than 99 %.

Throttling uses hysteresis, as real governors do: the device slows down when
``T >= throttle_temp`` and speeds up again only once
``T < throttle_temp - hysteresis``, so it does not flip every step.

This is a model for teaching: a real phone has several heat paths (die,
package, board, case) and a governor with many speed steps. One lump and one
speed step keep the idea visible: sustained power, not peak power, decides
whether a long training job slows down.
"""

from __future__ import annotations

import math

__all__ = ["steady_state_c", "rc_step", "next_throttle_state", "time_to_reach_s"]


def steady_state_c(power_w: float, ambient_c: float, resistance_k_per_w: float) -> float:
    """Temperature (°C) reached after a long time at constant power: ``T_amb + P R``.

    Examples
    --------
    >>> steady_state_c(5.0, 25.0, 15.0)
    100.0
    """
    return ambient_c + power_w * resistance_k_per_w


def rc_step(
    temp_c: float,
    power_w: float,
    ambient_c: float,
    resistance_k_per_w: float,
    capacitance_j_per_k: float,
    dt_s: float,
) -> float:
    """Temperature (°C) after ``dt_s`` seconds at constant ``power_w``.

    Uses the exact solution of the RC equation, so any step size is stable.

    Examples
    --------
    >>> round(rc_step(25.0, 1.0, 25.0, 10.0, 1.0, 10.0), 3)   # one time constant
    31.321
    """
    target = steady_state_c(power_w, ambient_c, resistance_k_per_w)
    tau = resistance_k_per_w * capacitance_j_per_k
    return target + (temp_c - target) * math.exp(-dt_s / tau)


def next_throttle_state(
    throttled: bool, temp_c: float, throttle_temp_c: float, hysteresis_k: float
) -> bool:
    """Whether the device runs throttled, given its temperature and current state.

    Examples
    --------
    >>> next_throttle_state(False, 85.0, 85.0, 5.0)
    True
    >>> next_throttle_state(True, 82.0, 85.0, 5.0)     # still inside the hysteresis band
    True
    >>> next_throttle_state(True, 79.9, 85.0, 5.0)
    False
    """
    if throttled:
        return temp_c >= throttle_temp_c - hysteresis_k
    return temp_c >= throttle_temp_c


def time_to_reach_s(
    target_c: float,
    temp_c: float,
    power_w: float,
    ambient_c: float,
    resistance_k_per_w: float,
    capacitance_j_per_k: float,
) -> float:
    """Seconds until the temperature reaches ``target_c`` at constant power.

    ``math.inf`` when it never does (the target lies beyond the steady state).

    Examples
    --------
    >>> round(time_to_reach_s(85.0, 25.0, 5.0, 25.0, 15.0, 20.0), 1)
    482.8
    """
    steady = steady_state_c(power_w, ambient_c, resistance_k_per_w)
    if temp_c == target_c:
        return 0.0
    gap_now = temp_c - steady
    gap_then = target_c - steady
    # Never reached: already at steady state, target on the far side of (or at) it.
    if gap_now == 0 or gap_then / gap_now <= 0 or abs(gap_then) > abs(gap_now):
        return math.inf
    return -resistance_k_per_w * capacitance_j_per_k * math.log(gap_then / gap_now)

"""Week-long phone-usage traces: when is the screen on, the phone charging, on Wi-Fi?

A phone may only train when its owner will not notice: that depends on how
the owner uses it. A :class:`UsageTrace` is one simulated week of one user,
sampled every ``minutes_per_sample`` minutes (1 or 5), with five arrays:

* ``screen_on``: the user is using the phone (it is not *idle*);
* ``charging``: plugged in;
* ``unmetered``: on Wi-Fi rather than mobile data;
* ``ambient_c``: air temperature around the phone, in °C;
* ``battery_percent``: battery level (0-100 %) *without* any training.

:func:`odtlab.devices.usage_trace` (:mod:`odtlab.devices.routines`) generates
one from a user type and a seed; :meth:`UsageTrace.from_events` builds one by
hand from intervals.

Examples
--------
>>> t = UsageTrace.from_events(120, screen=[(0, 15), (50, 55)], charging=[(30, 90)],
...                            wifi=[(0, 120)])
>>> len(t), t.days
(120, 0.08333333333333333)
>>> int(t.eligible().sum())                  # charging, idle and on Wi-Fi
55
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from odtlab.errors import OdtlabError
from odtlab.viz import plot_usage

__all__ = ["UsageTrace", "InvalidTrace", "MINUTES_PER_DAY", "MINUTES_PER_WEEK"]

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


class InvalidTrace(OdtlabError, ValueError):
    """A trace that cannot be built: unknown user type, bad resolution, overlapping events."""


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

"""The memory price of a continual strategy on a device: its state plus one training step.

A strategy's state (a replay buffer, EWC's Fisher and anchors, SI's path
integral, LwF's old weights, A-GEM's reference gradient) stays in memory
for the whole life of the device, *beside* what one training step needs.
So the check is::

    step peak (odtlab.train.profile, as the device sees it) + strategy bytes <= budget

with the budget the device's ``training_memory_bytes`` (on a
microcontroller the frozen weights stay in flash, as in
:func:`odtlab.devices.check_fit`). Chapter 8 prices every strategy on the
microcontroller and the phone with it.

Examples
--------
>>> p = MemoryPrice("stm32f746", {"replay buffer (raw)": 51_600}, step_bytes=150_000,
...                 budget_bytes=262_144)
>>> p.fits, p.total_bytes
(True, 201600)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from odtlab.errors import DoesNotFit
from odtlab.units import format_bytes

__all__ = ["MemoryPrice", "STATE_HINT"]

STATE_HINT = (
    "keep less: a smaller replay buffer (capacity=...), storage='uint8' (4x smaller examples), "
    "LatentReplay at a narrow cut, online EWC instead of EWC (one Fisher, not one per "
    "experience), or a recipe that trains fewer weights (BiasOnly, LastLayer), which shrinks "
    "every per-weight state"
)


@dataclass(frozen=True)
class MemoryPrice:
    """Bytes a continual learner needs on a device, and whether they fit.

    Attributes
    ----------
    device : str
        The device's name.
    strategy_bytes : dict of str to int
        The strategy's state by category, in bytes.
    step_bytes : int
        Peak of one training step as the device holds it, in bytes.
    budget_bytes : int
        The device's training memory, in bytes.
    """

    device: str
    strategy_bytes: dict[str, int] = field(default_factory=dict)
    step_bytes: int = 0
    budget_bytes: int = 0

    @property
    def state_bytes(self) -> int:
        """Sum of the strategy's categories."""
        return sum(self.strategy_bytes.values())

    @property
    def total_bytes(self) -> int:
        """``step_bytes + state_bytes``."""
        return self.step_bytes + self.state_bytes

    @property
    def fits(self) -> bool:
        """``total_bytes <= budget_bytes``."""
        return self.total_bytes <= self.budget_bytes

    @property
    def headroom_bytes(self) -> int:
        """Budget left (negative when over)."""
        return self.budget_bytes - self.total_bytes

    def check(self, strategy: str = "the strategy") -> MemoryPrice:
        """Return self if it fits, else raise :class:`~odtlab.errors.DoesNotFit` saying what to cut."""
        if self.fits:
            return self
        cats = ", ".join(
            f"{k} {format_bytes(v)} ({v} bytes)" for k, v in self.strategy_bytes.items()
        )
        raise DoesNotFit(
            f"{strategy} keeps {format_bytes(self.state_bytes)} ({cats or 'nothing'}) beside a "
            f"training step of {format_bytes(self.step_bytes)}: {self.total_bytes} bytes, but "
            f"{self.device} allows {format_bytes(self.budget_bytes)} ({self.budget_bytes} bytes) "
            f"for training; over by {-self.headroom_bytes} bytes. What to try: {STATE_HINT}."
        )

    def __str__(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        parts = (
            ", ".join(f"{k} {format_bytes(v)}" for k, v in self.strategy_bytes.items())
            or "no state"
        )
        return (
            f"{verdict} on {self.device}: step {format_bytes(self.step_bytes)} + strategy "
            f"{format_bytes(self.state_bytes)} ({parts}) = {format_bytes(self.total_bytes)} of "
            f"{format_bytes(self.budget_bytes)}"
        )

"""Continual strategies: hooks around one training loop (see :mod:`odtlab.cl.strategies.base`).

Baselines :class:`Naive` and :class:`Joint`; examples kept: :class:`Replay`,
:class:`LatentReplay`, :class:`AGEM`; numbers kept: :class:`EWC`,
:class:`OnlineEWC`, :class:`SI`; outputs kept: :class:`LwF`.
"""

from odtlab.cl.strategies.base import Joint, Naive, Strategy, trainable_bytes
from odtlab.cl.strategies.distillation import LwF
from odtlab.cl.strategies.regularization import EWC, SI, OnlineEWC, diagonal_fisher
from odtlab.cl.strategies.replay import AGEM, LatentReplay, Replay

__all__ = [
    "Strategy",
    "Naive",
    "Joint",
    "Replay",
    "LatentReplay",
    "AGEM",
    "EWC",
    "OnlineEWC",
    "SI",
    "LwF",
    "diagonal_fisher",
    "trainable_bytes",
]

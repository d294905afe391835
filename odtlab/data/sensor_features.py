"""Tabular summary features of accelerometer windows: a data set for tiny models.

Microcontroller activity recognisers often skip the raw signal and feed a
small classifier a handful of numbers per axis. :func:`summary_features`
computes six per channel; :class:`SensorFeatures` turns a
:class:`~odtlab.data.sensors.SensorActivity` into that table.

Examples
--------
>>> from odtlab.data import SensorActivity
>>> table = SensorFeatures(SensorActivity(50, seed=0))
>>> table[0][0].shape, table.feature_names[:2]
(torch.Size([18]), ['x_mean_g', 'x_std_g'])
"""

from __future__ import annotations

import torch
from torch import Tensor

from odtlab.data.base import ArrayDataset
from odtlab.data.sensors import SensorActivity

__all__ = ["summary_features", "SensorFeatures", "FEATURES"]

FEATURES = ("mean_g", "std_g", "min_g", "max_g", "peak_hz", "ac_energy_g2")


def summary_features(x: Tensor, sample_rate_hz: float) -> Tensor:
    """Six numbers per channel of windows ``x`` of shape ``(N, C, T)``, returned as ``(N, 6 * C)``.

    Per channel, in this order: mean, standard deviation, minimum and
    maximum (in g), the frequency of the largest spectral peak after
    removing the mean (hertz), and the mean squared deviation from the
    mean (the "AC energy", g^2). Features are grouped by channel.

    Examples
    --------
    >>> import math
    >>> t = torch.arange(64) / 32.0
    >>> wave = torch.sin(2 * math.pi * 4.0 * t).view(1, 1, 64)
    >>> summary_features(wave, 32.0)[0, 4].item()
    4.0
    """
    centred = x - x.mean(-1, keepdim=True)
    spectrum = torch.fft.rfft(centred, dim=-1).abs()
    peak_hz = spectrum.argmax(-1).to(x.dtype) * (sample_rate_hz / x.shape[-1])
    cols = [x.mean(-1), x.std(-1), x.amin(-1), x.amax(-1), peak_hz, (centred**2).mean(-1)]
    return torch.stack(cols, dim=-1).reshape(x.shape[0], -1)


class SensorFeatures(ArrayDataset):
    """The :func:`summary_features` table of a :class:`SensorActivity`, same labels and users.

    Attributes
    ----------
    feature_names : list of str
        Column names, e.g. ``"z_peak_hz"``.
    users : Tensor
        Copied from the activity data set, so ``split_by_user`` works.
    """

    def __init__(self, activity: SensorActivity) -> None:
        if not isinstance(activity, SensorActivity):
            raise TypeError(
                f"SensorFeatures needs a SensorActivity, got {type(activity).__name__}; "
                "for other windows call summary_features(x, sample_rate_hz)."
            )
        table = summary_features(activity.x, activity.sample_rate_hz)
        super().__init__(table, activity.y, activity.classes, name="SensorFeatures")
        axes = "xyz"[3 - activity.channels :]
        self.feature_names = [f"{a}_{f}" for a in axes for f in FEATURES]
        self.users = activity.users
        self.sample_rate_hz = activity.sample_rate_hz

    def _describe(self) -> str:
        return f"n={len(self)}, features={len(self.feature_names)}, classes={self.classes}"

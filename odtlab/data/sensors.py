"""A synthetic accelerometer data set of human activities, with per-user styles.

Each sample is a window of a 3-axis accelerometer, in units of g (1 g =
9.81 m/s^2), sampled at ``sample_rate_hz``. Every activity has a
characteristic rhythm: walking bounces at about 1.8 steps per second,
running at 2.8, jumping at 1.0 with sharp landings, shaking the phone at
6 Hz, and standing still shows only gravity and sensor noise. So the
classes can be told apart by the dominant frequency of the signal, which a
small 1-D convolution learns to find.

Users move differently. ``user=k`` applies user ``k``'s *style*: a gain
(how hard they move), a per-axis offset (how the phone sits in their
pocket) and a tempo (how fast they step). Styles depend on the user id
only, so chapters on personalisation and federated learning can give each
client its own user and see the shift between them.

Examples
--------
>>> ds = SensorActivity(100, seed=0)
>>> x, y = ds[0]
>>> x.shape, ds.classes[int(y)]
(torch.Size([3, 64]), 'still')
>>> user_style(3) == user_style(3)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from odtlab.data._checks import check_float, check_int, check_names, mix_seed
from odtlab.data.base import ArrayDataset
from odtlab.data.errors import InvalidDataArgument

__all__ = ["Activity", "ACTIVITIES", "UserStyle", "user_style", "SensorActivity"]

_USER_STREAM = 0x5E5  # salt: user styles never share random numbers with samples


@dataclass(frozen=True)
class Activity:
    """The motion pattern of one activity class.

    Parameters
    ----------
    name : str
    frequency_hz : float
        Rhythm of the movement (steps, jumps, shakes) in hertz; 0 for none.
    amplitude_g : float
        Peak acceleration of the movement, in g.
    waveform : {"none", "sine", "bounce", "impulse"}
        Shape of one cycle: smooth sine, sine with a second harmonic (a step
        has a heel strike and a push-off), or short sharp peaks (landings).
    axes : (float, float, float)
        How much of the movement each axis (x, y, z) sees.
    """

    name: str
    frequency_hz: float
    amplitude_g: float
    waveform: str
    axes: tuple[float, float, float]


ACTIVITIES: dict[str, Activity] = {
    a.name: a
    for a in (
        Activity("still", 0.0, 0.0, "none", (0.0, 0.0, 0.0)),
        Activity("walk", 1.8, 0.35, "bounce", (0.4, 0.3, 1.0)),
        Activity("run", 2.8, 0.9, "bounce", (0.5, 0.4, 1.0)),
        Activity("jump", 1.0, 1.6, "impulse", (0.15, 0.15, 1.0)),
        Activity("shake", 6.0, 0.6, "sine", (1.0, 0.6, 0.2)),
        Activity("cycle", 1.3, 0.25, "sine", (1.0, 0.3, 0.4)),
        Activity("stairs", 1.5, 0.5, "bounce", (0.3, 0.3, 1.0)),
    )
}
DEFAULT_CLASSES = ("still", "walk", "run", "jump", "shake")
_WAVEFORMS = ("none", "sine", "bounce", "impulse")


@dataclass(frozen=True)
class UserStyle:
    """How one user moves: multiply by ``gain``, add ``offset_g``, speed up by ``tempo``.

    ``gain`` scales the movement amplitude (unitless, around 1),
    ``offset_g`` is a per-axis bias in g (phone orientation and sensor bias),
    ``tempo`` multiplies every activity's frequency (around 1).
    """

    gain: float = 1.0
    offset_g: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tempo: float = 1.0


def user_style(user: int | None) -> UserStyle:
    """The style of user ``user`` (None: the neutral average user).

    Drawn from the user id alone: gain in [0.7, 1.3], offsets in
    [-0.2, 0.2] g per axis, tempo in [0.9, 1.1].

    Examples
    --------
    >>> user_style(None)
    UserStyle(gain=1.0, offset_g=(0.0, 0.0, 0.0), tempo=1.0)
    >>> 0.7 <= user_style(12).gain <= 1.3
    True
    """
    if user is None:
        return UserStyle()
    user = check_int("user", user, minimum=0)
    u = torch.rand(
        5, generator=torch.Generator().manual_seed(mix_seed(_USER_STREAM, user))
    ).tolist()
    return UserStyle(
        gain=0.7 + 0.6 * u[0],
        offset_g=tuple(round(0.4 * v - 0.2, 6) for v in u[1:4]),  # type: ignore[arg-type]
        tempo=0.9 + 0.2 * u[4],
    )


def _wave(kind: str, phase: Tensor) -> Tensor:
    if kind == "sine":
        return torch.sin(phase)
    if kind == "bounce":
        return torch.sin(phase) + 0.35 * torch.sin(2 * phase + 0.8)
    if kind == "impulse":  # short peaks once per cycle, mean removed
        peaks = torch.clamp(torch.cos(phase), min=0.0) ** 3
        return 2.0 * (peaks - 0.2122)  # 0.2122 = mean of max(cos, 0)^3
    return torch.zeros_like(phase)


class SensorActivity(ArrayDataset):
    """``n`` windows of 3-axis accelerometer data, one activity each.

    Parameters
    ----------
    n : int
        Number of windows (>= 1). Labels cycle through the classes.
    classes : sequence of str
        Activities, in label order, from :data:`ACTIVITIES` (``still``,
        ``walk``, ``run``, ``jump``, ``shake``, ``cycle``, ``stairs``).
    length : int
        Samples per window (>= 8); the window lasts ``length /
        sample_rate_hz`` seconds.
    channels : int
        1 to 3 accelerometer axes (x, y, z); 1 keeps the vertical axis z.
    sample_rate_hz : float
        Samples per second; must exceed twice the fastest rhythm (Nyquist).
    seed : int
        Same seed (and user), same data.
    user : int, sequence of int, or None
        None: the neutral style. An int: every window from that user. A
        sequence: windows are dealt to the users in turn (window ``i`` to
        ``users[i % len(users)]``), handy for federated partitions by user.
    noise_g : float
        Standard deviation of the sensor noise, in g.

    Attributes
    ----------
    users : Tensor, shape (n,), int64
        The user of each window (-1 for the neutral style).
    x : Tensor, shape (n, channels, length)
        Acceleration in g, gravity included (z reads about +1 g at rest).

    Examples
    --------
    >>> ds = SensorActivity(20, user=[0, 1], seed=1)
    >>> ds.users[:4].tolist(), ds.sample_shape
    ([0, 1, 0, 1], torch.Size([3, 64]))
    """

    def __init__(
        self,
        n: int,
        *,
        classes: Sequence[str] = DEFAULT_CLASSES,
        length: int = 64,
        channels: int = 3,
        sample_rate_hz: float = 20.0,
        seed: int = 0,
        user: int | Sequence[int] | None = None,
        noise_g: float = 0.05,
    ) -> None:
        n = check_int("n", n, minimum=1)
        length = check_int("length", length, minimum=8)
        channels = check_int("channels", channels, minimum=1)
        if channels > 3:
            raise InvalidDataArgument(f"channels must be 1, 2 or 3 (x, y, z axes); got {channels}.")
        rate = check_float("sample_rate_hz", sample_rate_hz, low=0.0, low_open=True)
        seed = check_int("seed", seed, minimum=0)
        noise = check_float("noise_g", noise_g, low=0.0)
        names = check_names("classes", classes, list(ACTIVITIES), "activity")
        # Highest frequency present: tempo up to 1.1, jitter up to 1.04, "bounce" adds a 2nd harmonic.
        fastest = max(
            ACTIVITIES[c].frequency_hz
            * 1.1
            * 1.04
            * (2 if ACTIVITIES[c].waveform == "bounce" else 1)
            for c in names
        )
        if rate <= 2 * fastest:
            raise InvalidDataArgument(
                f"sample_rate_hz={rate} is too low for classes {names}: their fastest component "
                f"reaches {fastest:.1f} Hz, so sample above {2 * fastest:.1f} Hz (Nyquist)."
            )
        if isinstance(user, Iterable) and not isinstance(user, (str, bytes)):
            users = [check_int("user", u, minimum=0) for u in user]
            if not users:
                raise InvalidDataArgument(
                    "user must be None, an int or a non-empty sequence of ints."
                )
        else:
            users = [-1 if user is None else check_int("user", user, minimum=0)]

        y = torch.tensor([i % len(names) for i in range(n)], dtype=torch.int64)
        who = torch.tensor([users[i % len(users)] for i in range(n)], dtype=torch.int64)
        # Random draws, one generator per window (seeded by seed, user and index).
        gen = torch.Generator()
        r = torch.empty(n, 8)
        white = torch.empty(n, 3, length)
        for i in range(n):
            gen.manual_seed(mix_seed(seed, int(who[i]) + 1, i))
            r[i] = torch.rand(8, generator=gen)
            white[i] = torch.randn(3, length, generator=gen)

        styles = {u: user_style(None if u < 0 else u) for u in users}
        style_of = [styles[u] for u in who.tolist()]
        gain = torch.tensor([s.gain for s in style_of]).view(n, 1, 1)
        tempo = torch.tensor([s.tempo for s in style_of]).view(n, 1, 1)
        offset = torch.tensor([s.offset_g for s in style_of]).view(n, 3, 1)
        base_f = torch.tensor([a.frequency_hz for a in map(ACTIVITIES.get, names)])[y].view(n, 1, 1)
        base_a = torch.tensor([a.amplitude_g for a in map(ACTIVITIES.get, names)])[y].view(n, 1, 1)
        axes = torch.tensor([a.axes for a in map(ACTIVITIES.get, names)])[y].view(n, 3, 1)

        t = (torch.arange(length, dtype=torch.float32) / rate).view(1, 1, length)
        freq = base_f * tempo * (0.96 + 0.08 * r[:, 0].view(n, 1, 1))
        amp = base_a * gain * (0.85 + 0.3 * r[:, 1].view(n, 1, 1))
        axis_phase = (torch.tensor([0.0, 0.5, 0.0]) + 0.3 * r[:, 3:6]).view(n, 3, 1)
        phase = 2 * math.pi * (freq * t + r[:, 2].view(n, 1, 1)) + axis_phase
        motion = torch.zeros(n, 3, length)
        for k, name in enumerate(names):
            sel = (y == k).nonzero(as_tuple=True)[0]
            motion[sel] = _wave(ACTIVITIES[name].waveform, phase[sel])
        tilt = 0.3 * (r[:, 6:8] - 0.5)  # phone slightly tilted: gravity leaks into x and y
        gravity = torch.cat([tilt, torch.sqrt(1 - (tilt**2).sum(1, keepdim=True))], dim=1)
        signal = gravity.unsqueeze(2) + amp * axes * motion + offset + noise * white
        x = signal[:, 3 - channels :]  # 1 channel keeps z, 2 keep y and z
        super().__init__(x, y, classes=list(names), name="SensorActivity")
        self.users = who
        self.length = length
        self.channels = channels
        self.sample_rate_hz = rate
        self.seed = seed
        self.noise_g = noise
        self.user = user
        self.activities = [ACTIVITIES[c] for c in names]

    @property
    def duration_s(self) -> float:
        """Length of one window in seconds."""
        return self.length / self.sample_rate_hz

    def _describe(self) -> str:
        return (
            f"n={len(self)}, classes={self.classes}, length={self.length}, channels={self.channels}, "
            f"sample_rate_hz={self.sample_rate_hz:g}, user={self.user!r}, seed={self.seed}"
        )

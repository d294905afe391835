"""Procedural colour images of shapes, for pretraining and transfer learning.

:class:`SyntheticShapes` draws ``n`` RGB images (circles, squares, stars,
stripes...) as a :class:`~odtlab.data.domains.Domain` describes them:
colours, background texture, sensor noise, rotation, size and position.
Everything is computed with tensor arithmetic, so 10,000 images of 32x32
take a fraction of a second, and nothing is downloaded.

Reproducible by construction
    Sample ``i`` owns a random generator seeded from ``(seed, stream, i)``
    and nothing else, so ``ds[i]`` never depends on ``n``, on access order
    or on other samples: ``SyntheticShapes(10)[3]`` equals
    ``SyntheticShapes(1000)[3]``, and :func:`render_shapes` can redraw any
    single item. The random draws are laid out the same way in every
    domain, so sample ``i`` of ``"source"`` and of ``"target-colors"`` show
    the same shape at the same place, in different colours.

Labels cycle through the classes (sample ``i`` has label ``i % num_classes``),
so any prefix of the data set is class-balanced.

Examples
--------
>>> ds = SyntheticShapes(100, seed=0)
>>> x, y = ds[3]
>>> x.shape, ds.classes[int(y)]
(torch.Size([3, 32, 32]), 'cross')
>>> train, test = train_test("target-rotated", 200, 50, seed=1)
>>> len(train), len(test)
(200, 50)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from odtlab.data._checks import check_int, mix_seed
from odtlab.data._draw import SHAPES
from odtlab.data.base import ArrayDataset
from odtlab.data.domains import Domain
from odtlab.data.domains import domain as lookup_domain

__all__ = ["SyntheticShapes", "render_shapes", "train_test"]

_N_UNIFORM = 16  # uniform draws per sample, laid out as below (spares keep room to grow)
_CX, _CY, _SCALE, _ROT, _FG, _BG = 0, 1, 2, 3, 4, 5
_FG_JITTER, _BG_JITTER, _GRAD = slice(6, 9), slice(9, 12), 12
_CLOUD_SIDE = 4  # the "clouds" texture is a 4x4 random grid, smoothly upsampled
_BATCH = 1024


def _draws(
    indices: Sequence[int], seed: int, stream: int, resolution: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample random numbers: uniforms (B, 16), noise (B, 3, R, R), cloud grid (B, 1, 4, 4)."""
    gen = torch.Generator()
    uniforms, noise, clouds = [], [], []
    for i in indices:
        gen.manual_seed(mix_seed(seed, stream, i))
        uniforms.append(torch.rand(_N_UNIFORM, generator=gen))
        clouds.append(torch.randn(1, _CLOUD_SIDE, _CLOUD_SIDE, generator=gen))
        noise.append(torch.randn(3, resolution, resolution, generator=gen))
    return torch.stack(uniforms), torch.stack(noise), torch.stack(clouds)


def _pick(palette: Sequence[Sequence[float]], u: Tensor, jitter_u: Tensor, jitter: float) -> Tensor:
    """Colour per sample from a palette (index from ``u``), each channel jittered by +-jitter."""
    table = torch.tensor(palette, dtype=torch.float32)
    idx = (u * len(palette)).long().clamp_(max=len(palette) - 1)
    return (table[idx] + (2 * jitter_u - 1) * jitter).clamp_(0.0, 1.0)


def render_shapes(
    indices: Sequence[int] | Tensor,
    *,
    domain: str | Domain = "source",
    resolution: int = 32,
    seed: int = 0,
    stream: int = 0,
) -> tuple[Tensor, Tensor]:
    """Draw the samples with the given indices; the workhorse of :class:`SyntheticShapes`.

    Parameters
    ----------
    indices : sequence of int
        Sample numbers (>= 0) to draw, any order, repeats allowed.
    domain, resolution, seed, stream
        As in :class:`SyntheticShapes`.

    Returns
    -------
    x : Tensor, shape (B, 3, resolution, resolution), float32 in [0, 1]
    y : Tensor, shape (B,), int64: ``index % num_classes``

    Examples
    --------
    >>> x, y = render_shapes([5, 0], resolution=16)
    >>> x.shape, y.tolist()
    (torch.Size([2, 3, 16, 16]), [5, 0])
    """
    dom = lookup_domain(domain)
    resolution = check_int("resolution", resolution, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    stream = check_int("stream", stream, minimum=0)
    idx = [
        check_int("index", int(i), minimum=0) for i in torch.as_tensor(indices).reshape(-1).tolist()
    ]
    labels = torch.tensor([i % dom.num_classes for i in idx], dtype=torch.int64)
    if not idx:
        return torch.empty(0, 3, resolution, resolution), labels
    u, noise, clouds = _draws(idx, seed, stream, resolution)
    b = len(idx)

    # Pixel-centre coordinates in [-1, 1], y pointing up, shape (1, R, R).
    axis = (torch.arange(resolution, dtype=torch.float32) + 0.5) * (2.0 / resolution) - 1.0
    gy, gx = torch.meshgrid(-axis, axis, indexing="ij")
    gx, gy = gx.unsqueeze(0), gy.unsqueeze(0)

    col = lambda t: t.view(b, 1, 1)  # noqa: E731 - per-sample scalar broadcast over pixels
    cx = col((2 * u[:, _CX] - 1) * dom.shift)
    cy = col((2 * u[:, _CY] - 1) * dom.shift)
    lo, hi = dom.scale
    size = col(lo + (hi - lo) * u[:, _SCALE])
    rlo, rhi = dom.rotation_deg
    theta = col(torch.deg2rad(rlo + (rhi - rlo) * u[:, _ROT]))
    dx, dy = gx - cx, gy - cy
    cos, sin = torch.cos(theta), torch.sin(theta)
    lu = (cos * dx + sin * dy) / size  # rotate by -theta into the shape's own frame
    lv = (-sin * dx + cos * dy) / size
    aa = (2.0 / resolution) / size  # one pixel, in shape units

    mask = torch.empty(b, resolution, resolution)
    for k, name in enumerate(dom.classes):
        sel = (labels == k).nonzero(as_tuple=True)[0]
        if len(sel):
            mask[sel] = SHAPES[name](lu[sel], lv[sel], aa[sel])

    fg = _pick(dom.foreground, u[:, _FG], u[:, _FG_JITTER], dom.color_jitter).view(b, 3, 1, 1)
    bg = _pick(dom.background, u[:, _BG], u[:, _BG_JITTER], dom.color_jitter).view(b, 3, 1, 1)
    if dom.texture == "clouds":
        smooth = F.interpolate(
            clouds, size=(resolution, resolution), mode="bicubic", align_corners=False
        )
        bg = bg + dom.texture_strength * 0.5 * smooth
    elif dom.texture == "gradient":
        phi = col(2 * math.pi * u[:, _GRAD])
        ramp = (torch.cos(phi) * gx + torch.sin(phi) * gy) / math.sqrt(2.0)
        bg = bg + dom.texture_strength * ramp.unsqueeze(1)
    m = mask.unsqueeze(1)
    x = bg * (1 - m) + fg * m + dom.noise_std * noise
    return x.clamp_(0.0, 1.0), labels


class SyntheticShapes(ArrayDataset):
    """``n`` procedural shape images, precomputed, drawn as ``domain`` says.

    Parameters
    ----------
    n : int
        Number of images (>= 1). Memory: ``n * 3 * resolution**2 * 4``
        bytes (10,000 images at 32x32 take 123 MB).
    classes : sequence of str, optional
        Shape classes to use instead of the domain's, in label order
        (any of :data:`~odtlab.data.domains.ALL_SHAPES`).
    resolution : int
        Image side in pixels (>= 1); shapes scale with it.
    seed : int
        Seed of the whole data set (>= 0); same seed, same images.
    domain : str or Domain
        A preset name (``"source"``, ``"target-colors"``, ``"target-noise"``,
        ``"target-rotated"``, ``"target-new-classes"``) or a ``Domain``.
    stream : int
        Independent stream of samples for the same seed (>= 0);
        :func:`train_test` uses 0 for training and 1 for testing.

    Attributes
    ----------
    domain : Domain
        The domain the images were drawn from (with ``classes`` applied).

    Examples
    --------
    >>> ds = SyntheticShapes(50, domain="target-colors", resolution=24, seed=3)
    >>> ds.num_classes, ds[0][0].shape
    (10, torch.Size([3, 24, 24]))
    >>> bool((ds.render([4])[0][0] == ds[4][0]).all())
    True
    """

    def __init__(
        self,
        n: int,
        *,
        classes: Sequence[str] | None = None,
        resolution: int = 32,
        seed: int = 0,
        domain: str | Domain = "source",
        stream: int = 0,
    ) -> None:
        n = check_int("n", n, minimum=1)
        resolution = check_int("resolution", resolution, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        stream = check_int("stream", stream, minimum=0)
        dom = lookup_domain(domain)
        if classes is not None:
            dom = dataclasses.replace(dom, classes=tuple(classes))
        xs, ys = [], []
        for start in range(0, n, _BATCH):
            x, y = render_shapes(
                range(start, min(n, start + _BATCH)),
                domain=dom,
                resolution=resolution,
                seed=seed,
                stream=stream,
            )
            xs.append(x)
            ys.append(y)
        super().__init__(
            torch.cat(xs), torch.cat(ys), classes=list(dom.classes), name="SyntheticShapes"
        )
        self.domain = dom
        self.resolution = resolution
        self.seed = seed
        self.stream = stream

    def render(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        """Draw the given items afresh (identical to the stored ones); see :func:`render_shapes`."""
        return render_shapes(
            indices,
            domain=self.domain,
            resolution=self.resolution,
            seed=self.seed,
            stream=self.stream,
        )

    def _describe(self) -> str:
        return (
            f"n={len(self)}, domain={self.domain.name!r}, classes={self.num_classes}, "
            f"resolution={self.resolution}, seed={self.seed}, stream={self.stream}"
        )


def train_test(
    domain: str | Domain = "source",
    n_train: int = 1000,
    n_test: int = 500,
    seed: int = 0,
    *,
    resolution: int = 32,
    classes: Sequence[str] | None = None,
) -> tuple[SyntheticShapes, SyntheticShapes]:
    """A training and a test set from one domain, drawn from independent streams.

    The train set is stream 0 and the test set stream 1 of ``seed``, so no
    image appears in both, and the test set does not change when
    ``n_train`` does.

    Examples
    --------
    >>> train, test = train_test("source", 100, 20, seed=0, resolution=16)
    >>> train.stream, test.stream, test.resolution
    (0, 1, 16)
    """
    kwargs = dict(classes=classes, resolution=resolution, seed=seed, domain=domain)
    train = SyntheticShapes(n_train, stream=0, **kwargs)  # type: ignore[arg-type]
    test = SyntheticShapes(n_test, stream=1, **kwargs)  # type: ignore[arg-type]
    return train, test

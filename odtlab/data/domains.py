"""Domains for the procedural shapes: what the pictures look like.

A :class:`Domain` is a plain description of a picture distribution: which
shape classes appear, their colours, the background, the sensor noise, how
far shapes rotate, how big they are and how far they wander from the centre.
Pretraining uses the ``"source"`` domain; transfer-learning chapters move to
a *target* domain that changes one thing at a time, so a learner can see
which change hurts a frozen feature extractor and which does not.

Named presets (see :func:`domain` and :func:`available_domains`):

``"source"``
    Ten shape classes (circle, square, triangle, cross, ring, stripes,
    star, crescent, checker, semicircle) in bright saturated colours on
    dark, softly clouded backgrounds; light noise; rotations within
    +-20 degrees.
``"target-colors"``
    Same shapes and geometry, new colour palette: dark, muted shapes on
    light pastel backgrounds (the contrast is reversed).
``"target-noise"``
    The source look under heavy sensor noise (Gaussian, std 0.25 on a
    0..1 intensity scale, against 0.03 in the source).
``"target-rotated"``
    The source look with shapes rotated anywhere in the full circle.
``"target-new-classes"``
    Five shapes that the source never shows (ellipse, arrow, hourglass,
    dots, frame) in the source's colours: a few-shot task on new classes.
``"target-shift"``
    The five new shapes, rotated anywhere in the full circle: new classes
    *and* a geometric shift, the harder transfer task on which the
    fine-tuning methods separate (:class:`odtlab.train.Protocol`'s default).

Examples
--------
>>> d = domain("target-noise")
>>> d.noise_std > domain("source").noise_std
True
>>> "target-rotated" in available_domains()
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from odtlab.data._checks import check_float
from odtlab.data.errors import InvalidDataArgument, UnknownDomain

__all__ = [
    "Domain",
    "domain",
    "available_domains",
    "SOURCE_CLASSES",
    "NEW_CLASSES",
    "ALL_SHAPES",
    "TEXTURES",
]

RGB = tuple[float, float, float]

SOURCE_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "ring",
    "stripes",
    "star",
    "crescent",
    "checker",
    "semicircle",
)
NEW_CLASSES: tuple[str, ...] = ("ellipse", "arrow", "hourglass", "dots", "frame")
ALL_SHAPES: tuple[str, ...] = SOURCE_CLASSES + NEW_CLASSES
TEXTURES: tuple[str, ...] = ("flat", "clouds", "gradient")

_BRIGHT: tuple[RGB, ...] = (
    (0.95, 0.20, 0.15),
    (0.98, 0.75, 0.10),
    (0.20, 0.85, 0.30),
    (0.15, 0.75, 0.95),
    (0.95, 0.35, 0.85),
    (0.98, 0.55, 0.10),
    (0.90, 0.95, 0.30),
    (0.95, 0.95, 0.95),
)
_DARK_BACKGROUNDS: tuple[RGB, ...] = (
    (0.08, 0.08, 0.12),
    (0.10, 0.14, 0.28),
    (0.18, 0.12, 0.20),
    (0.10, 0.20, 0.16),
    (0.22, 0.22, 0.22),
)
_MUTED: tuple[RGB, ...] = (
    (0.35, 0.10, 0.15),
    (0.10, 0.25, 0.45),
    (0.15, 0.35, 0.20),
    (0.30, 0.20, 0.10),
    (0.25, 0.10, 0.40),
    (0.10, 0.10, 0.10),
)
_PASTEL_BACKGROUNDS: tuple[RGB, ...] = (
    (0.95, 0.90, 0.80),
    (0.80, 0.92, 0.95),
    (0.88, 0.95, 0.82),
    (0.96, 0.85, 0.90),
    (0.90, 0.88, 0.98),
)


def _check_range(name: str, pair: tuple[float, float], low: float, high: float) -> None:
    if len(pair) != 2:
        raise InvalidDataArgument(f"{name} must be a (min, max) pair, got {pair!r}.")
    a = check_float(f"{name}[0]", pair[0], low=low, high=high)
    b = check_float(f"{name}[1]", pair[1], low=low, high=high)
    if a > b:
        raise InvalidDataArgument(f"{name} must be (min, max) with min <= max, got {pair!r}.")


def _check_palette(name: str, palette: tuple[RGB, ...]) -> None:
    if not palette:
        raise InvalidDataArgument(f"{name} must hold at least one (r, g, b) colour.")
    for colour in palette:
        if len(colour) != 3 or not all(0.0 <= float(c) <= 1.0 for c in colour):
            raise InvalidDataArgument(
                f"{name} colours must be (r, g, b) triples with each value in [0, 1]; got {colour!r}."
            )


@dataclass(frozen=True)
class Domain:
    """How procedural shape images look: classes, colours, background, noise, geometry.

    All intensities are on a 0..1 scale; angles in degrees; sizes and shifts
    are fractions of half the image side (1.0 reaches the border).

    Parameters
    ----------
    name : str
        A label shown in ``repr`` of the datasets.
    classes : tuple of str
        Shape classes, in label order; each from :data:`ALL_SHAPES`.
    foreground : tuple of (r, g, b)
        Palette the shape colour is drawn from (uniformly).
    background : tuple of (r, g, b)
        Palette the background colour is drawn from.
    color_jitter : float
        Each colour channel is moved by up to +- this much.
    texture : {"flat", "clouds", "gradient"}
        Background pattern: none, smooth random blotches, or a linear ramp
        in a random direction.
    texture_strength : float
        Peak brightness change of the texture (0..1 scale).
    noise_std : float
        Standard deviation of the per-pixel Gaussian sensor noise.
    rotation_deg : (float, float)
        Range of the shape's rotation, degrees.
    scale : (float, float)
        Range of the shape's radius, as a fraction of half the image side.
    shift : float
        Largest offset of the shape's centre from the image centre, as a
        fraction of half the image side, along each axis.

    Examples
    --------
    >>> import dataclasses
    >>> dim = dataclasses.replace(domain("source"), name="dim", noise_std=0.1)
    >>> dim.noise_std
    0.1
    """

    name: str = "source"
    classes: tuple[str, ...] = SOURCE_CLASSES
    foreground: tuple[RGB, ...] = _BRIGHT
    background: tuple[RGB, ...] = _DARK_BACKGROUNDS
    color_jitter: float = 0.05
    texture: str = "clouds"
    texture_strength: float = 0.08
    noise_std: float = 0.03
    rotation_deg: tuple[float, float] = (-20.0, 20.0)
    scale: tuple[float, float] = (0.5, 0.75)
    shift: float = 0.2
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        classes = tuple(self.classes)
        object.__setattr__(self, "classes", classes)
        if not classes:
            raise InvalidDataArgument("Domain.classes must name at least one shape.")
        for c in classes:
            if c not in ALL_SHAPES:
                raise UnknownDomain(
                    f"Unknown shape class {c!r}. Known shapes: {', '.join(ALL_SHAPES)}."
                )
        if len(set(classes)) != len(classes):
            raise InvalidDataArgument(f"Domain.classes repeats a name: {classes!r}.")
        _check_palette("Domain.foreground", self.foreground)
        _check_palette("Domain.background", self.background)
        if self.texture not in TEXTURES:
            raise InvalidDataArgument(
                f"Domain.texture must be one of {', '.join(map(repr, TEXTURES))}; got {self.texture!r}."
            )
        check_float("Domain.color_jitter", self.color_jitter, low=0.0, high=1.0)
        check_float("Domain.texture_strength", self.texture_strength, low=0.0, high=1.0)
        check_float("Domain.noise_std", self.noise_std, low=0.0)
        _check_range("Domain.rotation_deg", self.rotation_deg, -360.0, 360.0)
        _check_range("Domain.scale", self.scale, 0.01, 2.0)
        check_float("Domain.shift", self.shift, low=0.0, high=1.0)

    @property
    def num_classes(self) -> int:
        """Number of shape classes in this domain."""
        return len(self.classes)


def _presets() -> dict[str, Domain]:
    source = Domain(
        name="source",
        notes="Pretraining: ten shapes, bright colours on dark clouded backgrounds, light noise.",
    )
    return {
        "source": source,
        "target-colors": dataclasses.replace(
            source,
            name="target-colors",
            foreground=_MUTED,
            background=_PASTEL_BACKGROUNDS,
            notes="New colour palette: dark muted shapes on light pastel backgrounds.",
        ),
        "target-noise": dataclasses.replace(
            source,
            name="target-noise",
            noise_std=0.25,
            notes="Heavy sensor noise: Gaussian std 0.25 per pixel.",
        ),
        "target-rotated": dataclasses.replace(
            source,
            name="target-rotated",
            rotation_deg=(-180.0, 180.0),
            notes="Shapes rotated anywhere in the full circle.",
        ),
        "target-new-classes": dataclasses.replace(
            source,
            name="target-new-classes",
            classes=NEW_CLASSES,
            notes="Five shapes the source never shows, source colours.",
        ),
        "target-shift": dataclasses.replace(
            source,
            name="target-shift",
            classes=NEW_CLASSES,
            rotation_deg=(-180.0, 180.0),
            notes="Five new shapes, rotated anywhere: new classes and a geometric shift.",
        ),
    }


_PRESETS = _presets()


def available_domains() -> list[str]:
    """Names accepted by :func:`domain`, source first.

    Examples
    --------
    >>> available_domains()[0]
    'source'
    """
    return list(_PRESETS)


def domain(name: str | Domain) -> Domain:
    """Return the preset :class:`Domain` called ``name`` (a ``Domain`` is returned as is).

    Raises
    ------
    UnknownDomain
        When there is no such preset; the message lists the known names.

    Examples
    --------
    >>> domain("target-new-classes").classes
    ('ellipse', 'arrow', 'hourglass', 'dots', 'frame')
    """
    if isinstance(name, Domain):
        return name
    key = str(name).strip().lower().replace("_", "-")
    if key not in _PRESETS:
        raise UnknownDomain(
            f"Unknown domain {name!r}. Known domains: {', '.join(_PRESETS)}. "
            "Or build your own with odtlab.data.Domain(...) or dataclasses.replace(domain('source'), ...)."
        )
    return _PRESETS[key]

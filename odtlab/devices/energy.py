"""Energy by memory level: where a step's bytes come from, and what each byte costs.

The simulator's plain energy model charges every byte the same
``energy_per_byte_j``. Real chips do not: reading a byte from on-chip SRAM
costs a few picojoules, from DRAM tens to a hundred, and from flash more
still :cite:`horowitz2014energy`. With levels, one step's dynamic energy is

.. math::

    E = M \\cdot e_{\\text{MAC}} + \\sum_{\\ell \\in \\{\\text{sram}, \\text{dram}, \\text{flash}\\}}
        Q_\\ell \\cdot e_\\ell + Q_{\\text{unplaced}} \\cdot e_{\\text{byte}}

where :math:`Q_\\ell` are the bytes a step moves at level :math:`\\ell` (the
workload's ``bytes_by_level``), :math:`e_\\ell` the device's
``energy_per_byte_by_level_j`` and the bytes no level was given for keep the
device's ``energy_per_byte_j``. Without a split, :math:`E` is exactly the
simulator's plain number.

Where the bytes live: the stated model
--------------------------------------
:func:`bytes_moved_by_category` splits the traffic of
:func:`~odtlab.devices.workload.estimate_bytes_moved` into categories, and
:func:`placement` says where each category lives:

* **A device without DRAM** (a microcontroller): frozen weights stay in
  flash and are read from there at every use, as MCU training engines do
  (they cannot be copied to a few hundred KB of SRAM); trainable weights,
  gradients, optimizer state, activations and the input live in SRAM.
* **A device with DRAM** (a phone, a board): every tensor lives in DRAM.
  The SRAM is a cache, and like ``estimate_bytes_moved`` we assume no reuse
  from it, so every byte is charged at DRAM (the cache access on the way is
  not charged again).

Assumptions: each byte is charged once, at the level it comes from; the
split changes energy, not time (the roofline keeps one bandwidth).

Examples
--------
>>> from odtlab import devices
>>> moved = devices.bytes_moved_by_category(1000, 500, trainable_param_bytes=100)
>>> devices.bytes_by_level(moved, "mcu")
{'sram': 1600.0, 'flash': 1800.0}
"""

from __future__ import annotations

from collections.abc import Mapping

from odtlab.devices.profile import DeviceProfile
from odtlab.devices.registry import get
from odtlab.devices.validation import LEVELS, MemoryLevelError
from odtlab.devices.workload import Workload

__all__ = [
    "MOVED_CATEGORIES",
    "ENERGY_PARTS",
    "bytes_moved_by_category",
    "placement",
    "bytes_by_level",
    "energy_by_level",
    "dynamic_energy_j",
]

MOVED_CATEGORIES: tuple[str, ...] = (
    "frozen_weights",
    "trainable_weights",
    "gradients",
    "optimizer",
    "activations",
    "input",
)
"""Categories of the bytes a training step moves (see :func:`bytes_moved_by_category`)."""

ENERGY_PARTS: tuple[str, ...] = ("mac", "sram", "dram", "flash", "unplaced")
"""Keys of :func:`energy_by_level`: arithmetic, the three levels, and bytes with no level."""


def bytes_moved_by_category(
    param_bytes: int,
    activation_bytes: int,
    *,
    trainable_param_bytes: int | None = None,
    optimizer_state_bytes: int = 0,
    input_bytes: int = 0,
) -> dict[str, int]:
    """The bytes of :func:`~odtlab.devices.workload.estimate_bytes_moved`, by category.

    Same arguments and same counting rule (each tensor crosses the memory bus
    once per use): frozen weights are read in the forward and the backward
    pass; trainable weights too, and are read and written by the update;
    gradients are written and read; optimizer state is read and written;
    saved activations are written and read; the input is read once.

    Parameters
    ----------
    param_bytes : int
        Bytes of all weights.
    activation_bytes : int
        Bytes of activations saved for the backward pass.
    trainable_param_bytes : int, optional
        Bytes of the weights being updated (at most ``param_bytes``);
        ``param_bytes`` by default.
    optimizer_state_bytes, input_bytes : int, default 0
        Bytes of optimizer state and of the input batch.

    Returns
    -------
    dict[str, int]
        Bytes moved per step for each of :data:`MOVED_CATEGORIES`; the values
        add up to ``estimate_bytes_moved(...)`` with the same arguments.

    Examples
    --------
    >>> bytes_moved_by_category(1000, 500, trainable_param_bytes=10)
    {'frozen_weights': 1980, 'trainable_weights': 40, 'gradients': 20, 'optimizer': 0, 'activations': 1000, 'input': 0}
    """
    trainable = param_bytes if trainable_param_bytes is None else trainable_param_bytes
    sizes = {
        "param_bytes": param_bytes,
        "activation_bytes": activation_bytes,
        "trainable_param_bytes": trainable,
        "optimizer_state_bytes": optimizer_state_bytes,
        "input_bytes": input_bytes,
    }
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(
                f"bytes_moved_by_category: {name} must be a whole number of bytes >= 0, "
                f"got {value!r}."
            )
    if trainable > param_bytes:
        raise ValueError(
            f"bytes_moved_by_category: trainable_param_bytes ({trainable}) exceeds param_bytes "
            f"({param_bytes}); the trainable weights are part of all weights."
        )
    return {
        "frozen_weights": 2 * (param_bytes - trainable),
        "trainable_weights": 4 * trainable,  # forward + backward reads, update read + write
        "gradients": 2 * trainable,
        "optimizer": 2 * optimizer_state_bytes,
        "activations": 2 * activation_bytes,
        "input": input_bytes,
    }


def placement(device: DeviceProfile | str) -> dict[str, str]:
    """Which memory level each category of :data:`MOVED_CATEGORIES` lives in.

    The stated model of the module docstring: without DRAM, frozen weights in
    flash (SRAM if the device has no flash either) and the rest in SRAM; with
    DRAM, everything in DRAM.

    Examples
    --------
    >>> placement("mcu")["frozen_weights"], placement("phone")["activations"]
    ('flash', 'dram')
    """
    profile = get(device)
    if profile.dram_bytes > 0:
        return dict.fromkeys(MOVED_CATEGORIES, "dram")
    where = dict.fromkeys(MOVED_CATEGORIES, "sram")
    if profile.flash_bytes > 0:
        where["frozen_weights"] = "flash"
    return where


def bytes_by_level(moved: Mapping[str, float], device: DeviceProfile | str) -> dict[str, float]:
    """Bytes a step moves at each memory level, by the :func:`placement` model.

    Parameters
    ----------
    moved : Mapping[str, float]
        Bytes moved per step by category, as :func:`bytes_moved_by_category`
        returns; keys are some of :data:`MOVED_CATEGORIES`.
    device : DeviceProfile or str
        A profile or a registered name.

    Returns
    -------
    dict[str, float]
        Bytes per level, levels in the order of ``LEVELS``, levels with no
        bytes left out; pass it as ``Workload(bytes_by_level=...)``.

    Examples
    --------
    >>> bytes_by_level({"frozen_weights": 300, "activations": 200}, "mcu")
    {'sram': 200.0, 'flash': 300.0}
    >>> bytes_by_level({"frozen_weights": 300, "activations": 200}, "phone")
    {'dram': 500.0}
    """
    unknown = [k for k in moved if k not in MOVED_CATEGORIES]
    if unknown:
        raise MemoryLevelError(
            f"bytes_by_level: unknown categories {unknown}; the categories are "
            f"{list(MOVED_CATEGORIES)} (see bytes_moved_by_category)."
        )
    where = placement(device)
    totals = dict.fromkeys(LEVELS, 0.0)
    for category, size in moved.items():
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not size >= 0:
            raise MemoryLevelError(
                f"bytes_by_level: moved[{category!r}] must be a number of bytes >= 0, got {size!r}."
            )
        totals[where[category]] += float(size)
    return {level: b for level, b in totals.items() if b > 0}


def energy_by_level(workload: Workload, device: DeviceProfile | str) -> dict[str, float]:
    """Dynamic energy of one step by part, in joules: MACs and each memory level.

    Parameters
    ----------
    workload : Workload
        The step; its ``bytes_by_level`` says where its bytes come from.
    device : DeviceProfile or str
        A profile or a registered name.

    Returns
    -------
    dict[str, float]
        Joules per step for each of :data:`ENERGY_PARTS`: ``"mac"`` (MACs x
        energy per MAC of the workload's dtype), ``"sram"``, ``"dram"``,
        ``"flash"`` (bytes there x the device's energy per byte there) and
        ``"unplaced"`` (bytes with no level x ``energy_per_byte_j``). The sum
        is the step's dynamic energy in :func:`~odtlab.devices.simulate`
        (idle power comes on top).

    Raises
    ------
    MemoryLevelError
        When the workload places bytes at a level the device does not price
        (DRAM on an MCU).

    Examples
    --------
    >>> from odtlab import devices
    >>> w = devices.Workload(flops_per_step=2e6, bytes_moved_per_step=3000,
    ...                      peak_bytes=0, bytes_by_level={"sram": 1000, "flash": 2000})
    >>> parts = devices.energy_by_level(w, "mcu")
    >>> round(parts["sram"] * 1e12), round(parts["flash"] * 1e12)   # picojoules
    (5000, 100000)
    """
    profile = get(device)
    split = workload.bytes_by_level or {}
    out = {"mac": workload.macs_per_step * profile.energy_per_mac_j[workload.dtype]}
    for level in LEVELS:
        size = split.get(level, 0.0)
        out[level] = size * profile.energy_per_byte_at(level) if size > 0 else 0.0
    unplaced = max(workload.bytes_moved_per_step - sum(split.values()), 0.0)
    out["unplaced"] = unplaced * profile.energy_per_byte_j
    return out


def dynamic_energy_j(workload: Workload, device: DeviceProfile | str) -> float:
    """Dynamic energy of one step, in joules: the sum of :func:`energy_by_level`.

    Without a ``bytes_by_level`` split this is ``macs * energy_per_mac[dtype]
    + bytes * energy_per_byte_j``, computed exactly so.

    Examples
    --------
    >>> from odtlab import devices
    >>> w = devices.Workload(flops_per_step=2e6, bytes_moved_per_step=1000, peak_bytes=0)
    >>> mcu = devices.get("mcu")
    >>> dynamic_energy_j(w, mcu) == 1e6 * mcu.energy_per_mac_j["fp32"] + 1000 * 5e-12
    True
    """
    profile = get(device)
    if workload.bytes_by_level is None:
        return (
            workload.macs_per_step * profile.energy_per_mac_j[workload.dtype]
            + workload.bytes_moved_per_step * profile.energy_per_byte_j
        )
    return sum(energy_by_level(workload, profile).values())

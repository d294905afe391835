"""`DeviceProfile`: what a device offers to a training job, in numbers.

A profile is plain data: memory sizes in bytes, throughput in MAC/s per data
type, bandwidth in bytes per second, energy in joules, power in watts,
temperatures in degrees Celsius. It does not run anything; the fit check
(:mod:`odtlab.devices.fit`) and the simulator (:mod:`odtlab.devices.simulator`)
read it.

Write your own profile as a dict or a YAML file and register it::

    >>> from odtlab import devices
    >>> mine = devices.get("stm32f746").to_dict()
    >>> mine["name"] = "my-board"
    >>> mine["sram_bytes"] = 512 * 1024
    >>> del mine["training_memory_bytes"]          # derive it by the rule below
    >>> board = devices.DeviceProfile.from_dict(mine)
    >>> board.training_memory_bytes                # 80 % of 512 KiB
    419430

The training budget rule (used when a dict or YAML file leaves
``training_memory_bytes`` out) is :data:`TRAINING_BUDGET_FRACTION`: an MCU
may give 80 % of its SRAM to training (the rest holds the stack, the RTOS and
I/O buffers); a single-board computer or edge GPU 75 % of its DRAM (the OS
takes the rest); a phone 25 % of its DRAM (a foreground app shares memory
with the OS and other apps, and the low-memory killer ends greedy apps).
These fractions are rules of thumb for teaching, not vendor limits.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from odtlab.devices.validation import (
    DTYPES,
    KINDS,
    LEVELS,
    TRAINING_BUDGET_FRACTION,
    MemoryLevelError,
    as_float,
    as_int,
    gmacs,
    per_dtype,
    per_level,
    training_budget_rule,
)
from odtlab.units import format_bytes, format_joules, format_rate, format_seconds

__all__ = ["DeviceProfile", "DTYPES", "KINDS", "TRAINING_BUDGET_FRACTION", "training_budget_rule"]


@dataclass(frozen=True, kw_only=True, repr=False)
class DeviceProfile:
    """A device as a training job sees it. All numbers are in SI base units.

    Attributes
    ----------
    name : str
        Registry name, lower case, e.g. ``"stm32f746"``.
    description : str
        One line for people: the class of hardware this profile stands for.
    kind : str
        ``"mcu"``, ``"sbc"``, ``"phone"`` or ``"edge-gpu"``.
    sram_bytes : int
        On-chip fast memory in bytes (all SRAM for an MCU; the largest
        on-chip cache for a chip with DRAM).
    dram_bytes : int
        Off-chip DRAM in bytes; 0 for an MCU.
    flash_bytes : int
        Non-volatile storage in bytes (MCU flash, eMMC/UFS, SD card).
    training_memory_bytes : int
        Bytes a training job may use at its peak: weights, gradients,
        optimizer state and saved activations together. See
        :func:`training_budget_rule` for the default rule.
    macs_per_second : dict[str, float]
        Multiply-accumulates per second for ``"fp32"``, ``"fp16"`` and
        ``"int8"``. A device without hardware for a type still gets a number:
        the (slower) emulated rate, explained in ``sources``.
    memory_bandwidth_bytes_per_s : float
        Peak bandwidth of the memory holding the training tensors (SRAM for
        an MCU, DRAM otherwise), in bytes per second.
    energy_per_mac_j : dict[str, float]
        Energy of one MAC per data type, in joules, counted for the whole chip
        (not just the multiplier).
    energy_per_byte_j : float
        Energy to move one byte to or from that memory, in joules. It prices
        every byte a workload does not place at a memory level (all bytes,
        unless the workload gives ``bytes_by_level``).
    energy_per_byte_by_level_j : dict[str, float]
        Energy to read or write one byte at each memory level the device has,
        in joules: some of ``"sram"``, ``"dram"`` and ``"flash"`` (see
        :data:`LEVELS`). A device without DRAM (an MCU) has no ``"dram"``
        entry; a profile may leave the dict empty, and then only
        ``energy_per_byte_j`` is used. Read one with :meth:`energy_per_byte_at`.
    idle_power_w : float
        Power drawn while the device is on but not computing, in watts. The
        simulator charges it for every second a step takes.
    active_power_w : float
        Typical total power under full load, in watts (data sheet or
        measurement); presets are calibrated so that compute and memory at
        full speed draw exactly this.
    battery_wh : float or None
        Battery capacity in watt-hours; ``None`` (or 0 in a dict) for a
        device on mains or USB power.
    thermal_resistance_k_per_w : float
        Temperature rise per watt at steady state, in kelvin per watt.
    thermal_capacitance_j_per_k : float
        Heat needed to warm the device by one kelvin, in joules per kelvin.
        ``R * C`` is the thermal time constant in seconds.
    ambient_c : float
        Default ambient temperature, in degrees Celsius.
    throttle_temp_c : float
        Temperature at which the device slows down, in degrees Celsius.
    throttle_factor : float
        Speed multiplier while throttled, in (0, 1]: 0.5 means steps take
        twice as long. 1.0 means the device never slows down.
    throttle_hysteresis_k : float
        Full speed returns once the temperature drops below
        ``throttle_temp_c - throttle_hysteresis_k``, in kelvin.
    uplink_bytes_per_s : float
        Upload bandwidth to a server (federated learning), in bytes/s.
    sources : tuple[str, ...]
        BibTeX keys and short notes saying where each figure comes from and
        which figures are estimates.
    """

    name: str
    description: str = ""
    kind: str
    sram_bytes: int
    dram_bytes: int
    flash_bytes: int
    training_memory_bytes: int
    macs_per_second: dict[str, float]
    memory_bandwidth_bytes_per_s: float
    energy_per_mac_j: dict[str, float]
    energy_per_byte_j: float
    energy_per_byte_by_level_j: dict[str, float] = field(default_factory=dict)
    idle_power_w: float
    active_power_w: float
    battery_wh: float | None = None
    thermal_resistance_k_per_w: float
    thermal_capacitance_j_per_k: float
    ambient_c: float = 25.0
    throttle_temp_c: float
    throttle_factor: float
    throttle_hysteresis_k: float = 5.0
    uplink_bytes_per_s: float
    sources: tuple[str, ...] = field(default_factory=tuple)

    # ------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"DeviceProfile: name must be a non-empty string, got {self.name!r}.")
        who = f"DeviceProfile {self.name!r}"
        put("description", str(self.description))
        if self.kind not in KINDS:
            raise ValueError(f"{who}: kind must be one of {list(KINDS)}, got {self.kind!r}.")
        for f in ("sram_bytes", "training_memory_bytes"):
            put(f, as_int(who, f, getattr(self, f), minimum=1))
        for f in ("dram_bytes", "flash_bytes"):
            put(f, as_int(who, f, getattr(self, f), minimum=0))
        total = self.sram_bytes + self.dram_bytes
        if self.training_memory_bytes > total:
            raise ValueError(
                f"{who}: training_memory_bytes ({self.training_memory_bytes}) exceeds "
                f"sram_bytes + dram_bytes ({total}). Lower it, e.g. to "
                f"{training_budget_rule(self.kind, self.sram_bytes, self.dram_bytes)} "
                "by the default rule."
            )
        put("macs_per_second", per_dtype(who, "macs_per_second", self.macs_per_second))
        put("energy_per_mac_j", per_dtype(who, "energy_per_mac_j", self.energy_per_mac_j))
        for f in (
            "memory_bandwidth_bytes_per_s",
            "energy_per_byte_j",
            "active_power_w",
            "thermal_resistance_k_per_w",
            "thermal_capacitance_j_per_k",
            "uplink_bytes_per_s",
        ):
            put(f, as_float(who, f, getattr(self, f), positive=True))
        levels = per_level(
            who, "energy_per_byte_by_level_j", self.energy_per_byte_by_level_j, positive=True
        )
        for level, size in (("dram", self.dram_bytes), ("flash", self.flash_bytes)):
            if level in levels and size == 0:
                raise MemoryLevelError(
                    f"{who}: energy_per_byte_by_level_j prices {level!r}, but the device has "
                    f"{level}_bytes=0. Drop the {level!r} entry or give the device {level}."
                )
        put("energy_per_byte_by_level_j", levels)
        put("idle_power_w", as_float(who, "idle_power_w", self.idle_power_w, positive=False))
        if self.idle_power_w > self.active_power_w:
            raise ValueError(
                f"{who}: idle_power_w ({self.idle_power_w} W) exceeds active_power_w "
                f"({self.active_power_w} W); idle power must be the smaller one."
            )
        if self.battery_wh is not None:
            wh = as_float(who, "battery_wh", self.battery_wh, positive=False)
            put("battery_wh", wh if wh > 0 else None)  # 0 means mains-powered
        put("ambient_c", as_float(who, "ambient_c", self.ambient_c, positive=False, signed=True))
        put(
            "throttle_temp_c",
            as_float(who, "throttle_temp_c", self.throttle_temp_c, positive=False, signed=True),
        )
        if self.throttle_temp_c <= self.ambient_c:
            raise ValueError(
                f"{who}: throttle_temp_c ({self.throttle_temp_c} °C) must be above ambient_c "
                f"({self.ambient_c} °C), or the device would throttle before it starts."
            )
        factor = as_float(who, "throttle_factor", self.throttle_factor, positive=True)
        if factor > 1:
            raise ValueError(
                f"{who}: throttle_factor is a speed multiplier in (0, 1], got {factor}; "
                "use 0.5 for a device that runs at half speed when hot."
            )
        put("throttle_factor", factor)
        put(
            "throttle_hysteresis_k",
            as_float(who, "throttle_hysteresis_k", self.throttle_hysteresis_k, positive=False),
        )
        if isinstance(self.sources, str):
            put("sources", (self.sources,))
        else:
            put("sources", tuple(str(s) for s in self.sources))

    # ------------------------------------------------------------ properties
    @property
    def total_memory_bytes(self) -> int:
        """SRAM plus DRAM, in bytes."""
        return self.sram_bytes + self.dram_bytes

    @property
    def thermal_time_constant_s(self) -> float:
        """``R * C``: after this many seconds 63 % of a temperature step is done."""
        return self.thermal_resistance_k_per_w * self.thermal_capacitance_j_per_k

    def energy_per_byte_at(self, level: str) -> float:
        """Energy to read or write one byte at a memory level, in joules.

        Parameters
        ----------
        level : str
            ``"sram"``, ``"dram"`` or ``"flash"``.

        Raises
        ------
        MemoryLevelError
            For a name that is not a level, or a level this device does not
            price (an MCU has no DRAM); the message lists the levels it has.

        Examples
        --------
        >>> from odtlab import devices
        >>> devices.get("mcu").energy_per_byte_at("sram")     # 5 pJ per byte
        5e-12
        """
        if level not in LEVELS:
            raise MemoryLevelError(
                f"{level!r} is not a memory level; the levels are "
                f"{', '.join(repr(x) for x in LEVELS)}."
            )
        if level not in self.energy_per_byte_by_level_j:
            have = list(self.energy_per_byte_by_level_j) or "none"
            raise MemoryLevelError(
                f"Device {self.name!r} gives no energy per byte for {level!r} (levels it "
                f"prices: {have}). Place those bytes at a level it has, or add "
                f"{level!r} to its energy_per_byte_by_level_j."
            )
        return self.energy_per_byte_by_level_j[level]

    # ------------------------------------------------------------ conversion
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (lists and dicts copied), ready for YAML or JSON."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_yaml(self) -> str:
        """The profile as YAML text; :meth:`from_yaml` reads it back."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeviceProfile:
        """Build a profile from a mapping of field names to values.

        ``training_memory_bytes`` may be left out: it is then derived by
        :func:`training_budget_rule`. Any other missing field, and any key
        that is not a field, raises a ``ValueError`` that lists them.
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"DeviceProfile.from_dict needs a mapping, got {type(d).__name__}.")
        names = [f.name for f in dataclasses.fields(cls)]
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        unknown = [k for k in d if k not in names]
        missing = [k for k in required if k not in d and k != "training_memory_bytes"]
        if unknown or missing:
            lines = [f"Cannot build a DeviceProfile from {d.get('name', 'this dict')!r}:"]
            if missing:
                lines.append(f"  missing keys: {', '.join(missing)}")
            for k in unknown:
                close = difflib.get_close_matches(str(k), names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                lines.append(f"  unknown key: {k!r}{hint}")
            lines.append(f"  allowed keys: {', '.join(names)}")
            raise ValueError("\n".join(lines))
        values = dict(d)
        if "training_memory_bytes" not in values:
            who = f"DeviceProfile {values.get('name')!r}"
            values["training_memory_bytes"] = training_budget_rule(
                values["kind"],
                as_int(who, "sram_bytes", values["sram_bytes"], minimum=1),
                as_int(who, "dram_bytes", values["dram_bytes"], minimum=0),
            )
        return cls(**values)

    @classmethod
    def from_yaml(cls, path_or_text: str | os.PathLike[str]) -> DeviceProfile:
        """Read a profile from a YAML file (a path) or from YAML text.

        A string with no line break that ends in ``.yaml``/``.yml`` or names
        an existing file is read as a path; any other string is YAML text.
        """
        text: str
        if isinstance(path_or_text, os.PathLike):
            text = Path(path_or_text).read_text(encoding="utf-8")
        elif "\n" not in path_or_text and (
            path_or_text.endswith((".yaml", ".yml")) or os.path.isfile(path_or_text)
        ):
            text = Path(path_or_text).read_text(encoding="utf-8")
        else:
            text = path_or_text
        data = yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise ValueError(
                "A device YAML must be one mapping of field names to values "
                f"(name: ..., kind: ...); got {type(data).__name__}."
            )
        return cls.from_dict(data)

    # ------------------------------------------------------------ display
    def summary(self) -> str:
        """A multi-line, human-readable account of the profile."""
        macs = ", ".join(f"{d} {gmacs(self.macs_per_second[d])} GMAC/s" for d in DTYPES)
        energy = ", ".join(f"{d} {format_joules(self.energy_per_mac_j[d])}/MAC" for d in DTYPES)
        dram = format_bytes(self.dram_bytes) if self.dram_bytes else "none"
        pool = "SRAM" if self.kind == "mcu" else "DRAM"
        share = self.training_memory_bytes / (
            self.sram_bytes if pool == "SRAM" else max(self.dram_bytes, 1)
        )
        battery = f"{self.battery_wh:.2f} Wh" if self.battery_wh else "none (mains or USB power)"
        speed = (
            "never slows down"
            if self.throttle_factor == 1
            else f"speed x{self.throttle_factor:.2f}, back below "
            f"{self.throttle_temp_c - self.throttle_hysteresis_k:.0f} °C"
        )
        title = f"{self.name} ({self.kind})" + (f": {self.description}" if self.description else "")
        lines = [
            title,
            f"  memory     SRAM {format_bytes(self.sram_bytes)}, DRAM {dram}, "
            f"flash {format_bytes(self.flash_bytes)}",
            f"  training   {format_bytes(self.training_memory_bytes)} budget "
            f"({share:.0%} of {pool})",
            f"  compute    {macs}",
            f"  bandwidth  {format_rate(self.memory_bandwidth_bytes_per_s, 'B/s')}",
            f"  energy     {energy}; {format_joules(self.energy_per_byte_j)}/byte"
            + "".join(
                f", {k} {format_joules(v)}/byte" for k, v in self.energy_per_byte_by_level_j.items()
            ),
            f"  power      idle {self.idle_power_w:.3g} W, active {self.active_power_w:.3g} W",
            f"  battery    {battery}",
            f"  thermal    {self.thermal_resistance_k_per_w:g} K/W, "
            f"{self.thermal_capacitance_j_per_k:g} J/K "
            f"(time constant {format_seconds(self.thermal_time_constant_s)}), "
            f"ambient {self.ambient_c:g} °C, throttles at {self.throttle_temp_c:g} °C: {speed}",
            f"  uplink     {format_rate(self.uplink_bytes_per_s, 'B/s')}",
        ]
        if self.sources:
            lines.append("  sources    " + "\n             ".join(self.sources))
        else:
            lines.append("  sources    none given")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __hash__(self) -> int:  # the dict fields would make the generated hash fail
        return hash(self.to_yaml())

    def __repr__(self) -> str:
        return (
            f"DeviceProfile(name={self.name!r}, kind={self.kind!r}, "
            f"training_memory={format_bytes(self.training_memory_bytes)}, "
            f"fp32={gmacs(self.macs_per_second['fp32'])} GMAC/s)"
        )

"""The device registry: look profiles up by name, add your own.

Names are case-insensitive, and ``_`` or spaces count as ``-``, so
``get("Phone_Flagship")`` finds ``"phone-flagship"``. A few aliases are built
in (``"mcu"`` is the STM32F746, ``"pi4"`` the Raspberry Pi 4).

Examples
--------
>>> from odtlab import devices
>>> devices.get("MCU").sram_bytes
327680
>>> "rpi4" in devices.available()
True
"""

from __future__ import annotations

import difflib

from odtlab.devices.presets import BUILTIN_ALIASES, builtin_presets
from odtlab.devices.profile import DeviceProfile
from odtlab.errors import UnknownDevice

__all__ = ["get", "available", "register", "unregister", "presets", "normalize_name"]

_PRESETS: dict[str, DeviceProfile] = builtin_presets()
_PROFILES: dict[str, DeviceProfile] = dict(_PRESETS)
_ALIASES: dict[str, str] = dict(BUILTIN_ALIASES)


def normalize_name(name: str) -> str:
    """Registry key for a name: stripped, lower case, ``_`` and spaces as ``-``."""
    return "-".join(str(name).strip().lower().replace("_", " ").split())


def get(name: str | DeviceProfile) -> DeviceProfile:
    """Return the profile registered under ``name`` (or an alias of it).

    Parameters
    ----------
    name : str or DeviceProfile
        A registered name or alias, any case. A ``DeviceProfile`` is returned
        as it is, so functions can accept either.

    Returns
    -------
    DeviceProfile

    Raises
    ------
    UnknownDevice
        When no profile has that name; the message lists the known names and
        suggests the closest.

    Examples
    --------
    >>> get("raspberry-pi-4").name
    'rpi4'
    """
    if isinstance(name, DeviceProfile):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"A device is named by a string or given as a DeviceProfile, got {type(name).__name__}."
        )
    key = normalize_name(name)
    key = _ALIASES.get(key, key)
    if key in _PROFILES:
        return _PROFILES[key]
    candidates = sorted(_PROFILES) + sorted(_ALIASES)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    hint = ""
    if close:
        target = _ALIASES.get(close[0], close[0])
        hint = f" Did you mean {target!r}?"
    raise UnknownDevice(
        f"No device named {name!r}.{hint} Known devices: {', '.join(sorted(_PROFILES))} "
        f"(aliases: {', '.join(f'{a}->{t}' for a, t in sorted(_ALIASES.items()))}). "
        "Define your own with DeviceProfile.from_dict(...) or .from_yaml(...) and "
        "odtlab.devices.register(profile)."
    )


def available() -> list[str]:
    """Sorted names of every registered profile (presets and your own)."""
    return sorted(_PROFILES)


def presets() -> dict[str, DeviceProfile]:
    """The built-in profiles, keyed by name (registrations do not change it)."""
    return dict(_PRESETS)


def register(
    profile: DeviceProfile, *, overwrite: bool = False, aliases: tuple[str, ...] = ()
) -> DeviceProfile:
    """Add a profile to the registry so ``get(profile.name)`` finds it.

    Parameters
    ----------
    profile : DeviceProfile
        The profile to add; it is stored under ``normalize_name(profile.name)``.
    overwrite : bool, default False
        Replace a profile already registered under that name.
    aliases : tuple of str
        Extra names for the profile.

    Returns
    -------
    DeviceProfile
        The profile, for chaining.

    Raises
    ------
    ValueError
        When the name (or an alias) is taken and ``overwrite`` is False.
    """
    if not isinstance(profile, DeviceProfile):
        raise TypeError(
            f"register() needs a DeviceProfile, got {type(profile).__name__}; build one with "
            "DeviceProfile.from_dict(...) or DeviceProfile.from_yaml(...)."
        )
    key = normalize_name(profile.name)
    taken = key in _PROFILES or key in _ALIASES
    if taken and not overwrite:
        raise ValueError(
            f"A device named {key!r} is already registered. Pick another name, e.g. "
            f"dataclasses.replace(profile, name={key + '-2'!r}), or pass overwrite=True."
        )
    alias_keys = [normalize_name(a) for a in aliases]
    for a in alias_keys:
        if (a in _PROFILES or _ALIASES.get(a, key) != key) and not overwrite:
            raise ValueError(
                f"The alias {a!r} is already taken; choose another or pass overwrite=True."
            )
    _ALIASES.pop(key, None)
    _PROFILES[key] = profile
    for a in alias_keys:
        _ALIASES[a] = key
    return profile


def unregister(name: str) -> DeviceProfile:
    """Remove a registered profile (and its aliases) and return it.

    Built-in presets can be removed too; ``presets()`` still lists them.
    """
    key = normalize_name(name)
    key = _ALIASES.get(key, key)
    if key not in _PROFILES:
        get(name)  # raises UnknownDevice with the helpful message
    for alias in [a for a, t in _ALIASES.items() if t == key]:
        del _ALIASES[alias]
    return _PROFILES.pop(key)

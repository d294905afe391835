"""Measure the machine this code runs on and describe it as a :class:`DeviceProfile`.

Every other profile is read from data sheets; this one is *measured*, in a
few seconds, so that the roofline's predicted step time can be checked
against a stopwatch on the same machine (chapter 5, "Time, energy and
heat"). Two numbers are measured with PyTorch, on as many threads as
``torch.get_num_threads()`` says at the time of the call:

* **matmul throughput**: the fastest of many ``torch.mm`` of two square fp32
  matrices (``2 n^3`` FLOPs each), the best a tuned kernel reaches here;
* **memory bandwidth**: the fastest copy of a tensor far larger than the
  caches (it reads and writes every byte: ``2 x size`` bytes per copy).

The third number a step-time prediction needs, the fixed cost of every
operator, is measured with a training step
(:func:`odtlab.train.measure_op_overhead`).

The best time of many repetitions is kept: the machine's capability, least
disturbed by other programs. What is *not* measured is stated in the
profile's ``sources``: fp16 and int8 get the fp32 rate, power and energy
are assumed (a CPU's power needs a power meter), as are the thermal
constants.

Examples
--------
>>> host = measure_host(seconds=0.3)
>>> host.name, host.kind
('host', 'sbc')
>>> host.macs_per_second["fp32"] > 1e8 and host.memory_bandwidth_bytes_per_s > 1e8
True
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from odtlab.devices.presets import calibrate_energy_per_mac
from odtlab.devices.profile import DeviceProfile, training_budget_rule

__all__ = ["measure_host", "measure_matmul_flops", "measure_memory_bandwidth",
           "fastest_call_seconds", "HOST_ENERGY_PER_BYTE_J"]  # fmt: skip

HOST_ENERGY_PER_BYTE_J = 160e-12
"""Energy to move one byte from DRAM, J: 640 pJ per 32-bit DRAM read in 45 nm :cite:`horowitz2014energy`."""


def fastest_call_seconds(run: Callable[[], object], seconds: float, *, at_least: int = 3) -> float:
    """The shortest of repeated calls of ``run`` in seconds, after one warm-up call.

    Calls ``run`` for about ``seconds`` and at least ``at_least`` times; the
    shortest call is the one least disturbed by the rest of the machine.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    run()
    best, count = float("inf"), 0
    stop = time.perf_counter() + seconds
    while count < at_least or time.perf_counter() < stop:
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
        count += 1
    return best


def measure_matmul_flops(seconds: float = 0.5, *, size: int = 256) -> float:
    """Fastest fp32 matrix product on this machine, in FLOP/s (2 FLOPs = 1 MAC).

    Parameters
    ----------
    seconds : float
        How long to keep repeating ``torch.mm`` of two ``size x size`` matrices.
    size : int
        Side of the matrices; 256 fits in the caches of most CPUs.
    """
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    return 2 * size**3 / fastest_call_seconds(lambda: torch.mm(a, b, out=out), seconds)


def measure_memory_bandwidth(seconds: float = 0.5, *, mib: int = 64) -> float:
    """Fastest copy of a ``mib`` MiB fp32 tensor, in bytes per second read plus written."""
    import torch

    src = torch.ones(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / fastest_call_seconds(lambda: dst.copy_(src), seconds)


def _largest_cache_bytes(default: int = 2**20) -> int:
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip().upper()
        scale = {"K": 2**10, "M": 2**20}.get(text[-1:], 1)
        digits = text.rstrip("KMB")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=default)


def measure_host(
    seconds: float = 2.0,
    *,
    name: str = "host",
    idle_power_w: float = 5.0,
    active_power_w: float = 25.0,
) -> DeviceProfile:
    """A :class:`DeviceProfile` of this machine, its speed measured in about ``seconds`` seconds.

    Parameters
    ----------
    seconds : float
        Time to spend measuring, half on the matrix product, half on the copy.
    name : str
        Name of the profile (it is not registered; pass it to ``register``).
    idle_power_w, active_power_w : float
        Assumed power, in watts (not measured). Energy per MAC is calibrated
        so that compute and memory at full speed draw ``active_power_w``.

    Returns
    -------
    DeviceProfile
        kind ``"sbc"`` (a computer with DRAM); ``macs_per_second`` the
        measured matmul rate / 2 for every dtype; DRAM the machine's memory,
        SRAM its largest CPU cache.
    """
    flops = measure_matmul_flops(0.5 * seconds)
    bandwidth = measure_memory_bandwidth(0.5 * seconds)
    macs = {d: flops / 2 for d in ("fp32", "fp16", "int8")}
    sram = _largest_cache_bytes()
    dram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return DeviceProfile(
        name=name,
        description=f"this machine, measured on {_threads()} thread(s)",
        kind="sbc",
        sram_bytes=sram,
        dram_bytes=dram,
        flash_bytes=shutil.disk_usage("/").total,
        training_memory_bytes=training_budget_rule("sbc", sram, dram),
        macs_per_second=macs,
        memory_bandwidth_bytes_per_s=bandwidth,
        energy_per_mac_j=calibrate_energy_per_mac(
            active_power_w=active_power_w,
            idle_power_w=idle_power_w,
            macs_per_second=macs,
            memory_bandwidth_bytes_per_s=bandwidth,
            energy_per_byte_j=HOST_ENERGY_PER_BYTE_J,
        ),  # fmt: skip
        energy_per_byte_j=HOST_ENERGY_PER_BYTE_J,
        idle_power_w=idle_power_w,
        active_power_w=active_power_w,
        thermal_resistance_k_per_w=1.0,
        thermal_capacitance_j_per_k=300.0,
        throttle_temp_c=95.0,
        throttle_factor=1.0,
        uplink_bytes_per_s=10e6,
        sources=(
            f"measured: fp32 torch.mm {flops / 1e9:.1f} GFLOP/s, copy {bandwidth / 1e9:.1f} GB/s",
            "not measured: fp16 and int8 set to the fp32 rate",
            "assumed: power, 160 pJ/byte (horowitz2014energy), thermal constants, uplink",
        ),
    )


def _threads() -> int:
    import torch

    return torch.get_num_threads()

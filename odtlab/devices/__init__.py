"""odtlab.devices: device profiles, the registry, the fit check and the simulator.

A device is a :class:`DeviceProfile`: memory in bytes, throughput in MAC/s
per data type, bandwidth, energy, power, battery and thermal limits. Five
presets cover a microcontroller, a Raspberry Pi, a mid-range and a flagship
phone and a Jetson Nano; their figures are cited in each profile's
``sources`` (see :mod:`odtlab.devices.presets`).

Ask two questions of a training job:

* does it fit? :func:`check_fit` (raises ``DoesNotFit`` and says what to
  try) and :func:`fits` (a plain bool);
* what would it cost? :func:`simulate` predicts time, energy, battery and
  temperature with a roofline and an RC thermal model;
  :func:`energy_by_level` splits a step's energy into MACs and the memory
  levels (SRAM, DRAM, flash) its bytes come from;
* how fast is this machine? :func:`measure_host` measures it as a profile;
* when may it train? :func:`usage_trace` generates a week of phone use and
  :func:`simulate_schedule` replays a scheduling :class:`Policy` over it.

Examples
--------
>>> from odtlab import devices
>>> mcu = devices.get("mcu")
>>> devices.format_bytes(mcu.training_memory_bytes)
'256.0 KiB'
>>> job = devices.Workload(flops_per_step=2e8, bytes_moved_per_step=4e5,
...                        peak_bytes=180_000, steps=100, dtype="int8")
>>> devices.fits(job, mcu)
True
>>> print(devices.format_seconds(devices.simulate(job, mcu).total_time_s))
23.15 s
"""

from __future__ import annotations

from odtlab.devices.energy import (
    ENERGY_PARTS,
    MOVED_CATEGORIES,
    bytes_by_level,
    bytes_moved_by_category,
    dynamic_energy_j,
    energy_by_level,
    placement,
)
from odtlab.devices.fit import RECIPE_HINTS, FitVerdict, check_fit, fits, verdict
from odtlab.devices.host import (
    HOST_ENERGY_PER_BYTE_J,
    fastest_call_seconds,
    measure_host,
    measure_matmul_flops,
    measure_memory_bandwidth,
)
from odtlab.devices.presets import calibrate_energy_per_mac
from odtlab.devices.profile import (
    DTYPES,
    KINDS,
    TRAINING_BUDGET_FRACTION,
    DeviceProfile,
    training_budget_rule,
)
from odtlab.devices.registry import available, get, presets, register, unregister
from odtlab.devices.routines import USER_TYPES, usage_trace
from odtlab.devices.scheduling import (
    POLICIES,
    DailyJob,
    Policy,
    ScheduleResult,
    UnknownPolicy,
    compare_policies,
    get_policy,
    simulate_schedule,
)
from odtlab.devices.simulator import SimulationResult, simulate
from odtlab.devices.traces import InvalidTrace, UsageTrace
from odtlab.devices.validation import LEVELS, MemoryLevelError
from odtlab.devices.workload import Workload, estimate_bytes_moved
from odtlab.units import format_bytes, format_joules, format_rate, format_seconds

__all__ = [
    "DeviceProfile",
    "Workload",
    "FitVerdict",
    "SimulationResult",
    "get",
    "available",
    "register",
    "unregister",
    "presets",
    "check_fit",
    "verdict",
    "fits",
    "simulate",
    "estimate_bytes_moved",
    "calibrate_energy_per_mac",
    "training_budget_rule",
    "format_bytes",
    "format_seconds",
    "format_joules",
    "format_rate",
    "DTYPES",
    "KINDS",
    "TRAINING_BUDGET_FRACTION",
    "RECIPE_HINTS",
    # energy by memory level: SRAM, DRAM, flash
    "LEVELS",
    "MemoryLevelError",
    "MOVED_CATEGORIES",
    "ENERGY_PARTS",
    "bytes_moved_by_category",
    "placement",
    "bytes_by_level",
    "energy_by_level",
    "dynamic_energy_j",
    # when to train: usage traces and scheduling policies
    "UsageTrace",
    "usage_trace",
    "USER_TYPES",
    "InvalidTrace",
    "Policy",
    "POLICIES",
    "get_policy",
    "UnknownPolicy",
    "DailyJob",
    "ScheduleResult",
    "simulate_schedule",
    "compare_policies",
    # the machine this runs on, measured
    "measure_host",
    "fastest_call_seconds",
    "measure_matmul_flops",
    "measure_memory_bandwidth",
    "HOST_ENERGY_PER_BYTE_J",
]

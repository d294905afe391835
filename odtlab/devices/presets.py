"""Built-in device presets, with where every figure comes from.

Five classes of hardware, from a microcontroller to an edge GPU. Each figure
is either taken from a data sheet or product brief (cited by its BibTeX key
in ``references.bib``) or *estimated* from one, and the ``sources`` of each
profile say which. Read the numbers as "a device of this class", not as a
measurement of one board.

Conventions used for every preset
---------------------------------
* **Throughput is a peak**: clock x cores x MACs per cycle that the
  instruction set can issue. Real kernels reach a fraction of it (often
  30-70 %), so simulated latencies are optimistic lower bounds.
* **Bandwidth is a peak**: bus width x transfer rate of the memory that
  holds training tensors.
* **Energy is calibrated, not measured** (:func:`calibrate_energy_per_mac`):
  a chip at full load draws roughly the same power whatever the data type,
  so ``energy_per_mac_j[dtype] = mac_power / macs_per_second[dtype]``, where
  ``mac_power = active_power_w - idle_power_w - bandwidth * energy_per_byte_j``.
  With compute *and* memory running flat out, the simulator then draws
  exactly the device's ``active_power_w``. Energy per byte is set from the
  memory technology (on-chip SRAM a few pJ/byte, LPDDR4/5 some tens of
  pJ/byte, cf. :cite:`horowitz2014energy`).
* **Energy per byte by memory level** (``energy_per_byte_by_level_j``),
  figures of :cite:`horowitz2014energy` (45 nm, 0.9 V), per read:
  8 KB SRAM, 32 bits, about 5 pJ (1.25 pJ/byte); 32 KB and 1 MB caches,
  64 bits, 20 and 100 pJ (2.5 and 12.5 pJ/byte); DRAM, 32 bits, about
  640 pJ (160 pJ/byte). Our choices, and what they assume:

  - *MCU SRAM*: 5 pJ/byte, between the 32 KB and 1 MB figures for its
    320 KB (the same as its ``energy_per_byte_j``, so nothing changes when
    every byte is placed in SRAM).
  - *MCU flash*: 50 pJ/byte, an **assumption**, ten times its SRAM: a flash
    array drawing of the order of 15 mA at 3.3 V while it streams 256-bit
    lines at 27 MHz (216 MHz with 7 wait states, DS10916) spends about
    50 mW / 0.86 GB/s, i.e. about 57 pJ/byte.
  - *Cache (SRAM) of a chip with DRAM*: 12.5 pJ/byte, Horowitz's 1 MB
    figure taken as is; newer nodes are cheaper, so it is an upper bound.
  - *DRAM*: the profile's ``energy_per_byte_j`` (30-40 pJ/byte). Horowitz's
    160 pJ/byte is a 45 nm, DDR3-era figure; LPDDR4/5 moves a bit several
    times more cheaply. Keeping the two equal means a split that places
    every byte in DRAM gives exactly the energy of no split.
  - *Storage* (microSD, eMMC, UFS): an **assumption**, read power over
    sequential read rate, to an order of magnitude: microSD about 0.2 W at
    45 MB/s (5 nJ/byte), eMMC 0.5 W at 250 MB/s (2 nJ/byte), UFS 2.x 1 W at
    1 GB/s (1 nJ/byte), UFS 3.1 1 W at 2 GB/s (0.5 nJ/byte).
* **Training budget** follows :func:`~odtlab.devices.profile.training_budget_rule`.
"""

from __future__ import annotations

from collections.abc import Mapping

from odtlab.devices.profile import DTYPES, DeviceProfile, training_budget_rule
from odtlab.units import GiB, KiB, MiB

__all__ = ["calibrate_energy_per_mac", "builtin_presets", "BUILTIN_ALIASES"]


def calibrate_energy_per_mac(
    *,
    active_power_w: float,
    idle_power_w: float,
    macs_per_second: Mapping[str, float],
    memory_bandwidth_bytes_per_s: float,
    energy_per_byte_j: float,
) -> dict[str, float]:
    """Energy per MAC (J) that makes full-load power equal ``active_power_w``.

    Parameters
    ----------
    active_power_w, idle_power_w : float
        Full-load and idle power of the device, in watts.
    macs_per_second : Mapping[str, float]
        Peak MAC/s per data type.
    memory_bandwidth_bytes_per_s : float
        Peak memory bandwidth, in bytes per second.
    energy_per_byte_j : float
        Energy per byte moved, in joules.

    Returns
    -------
    dict[str, float]
        ``{dtype: mac_power / macs_per_second[dtype]}`` with
        ``mac_power = active - idle - bandwidth * energy_per_byte``.

    Examples
    --------
    >>> e = calibrate_energy_per_mac(active_power_w=3.0, idle_power_w=1.0,
    ...     macs_per_second={"fp32": 1e9, "fp16": 2e9, "int8": 4e9},
    ...     memory_bandwidth_bytes_per_s=1e9, energy_per_byte_j=1e-9)
    >>> e["fp32"], e["int8"]
    (1e-09, 2.5e-10)
    """
    mac_power = active_power_w - idle_power_w - memory_bandwidth_bytes_per_s * energy_per_byte_j
    if mac_power <= 0:
        raise ValueError(
            f"Memory traffic at full bandwidth ({memory_bandwidth_bytes_per_s * energy_per_byte_j:.3g} W) "
            f"plus idle power ({idle_power_w} W) already reaches active power ({active_power_w} W); "
            "lower energy_per_byte_j or raise active_power_w."
        )
    return {d: mac_power / float(macs_per_second[d]) for d in DTYPES}


def _preset(**kw: object) -> DeviceProfile:
    """Fill in the calibrated energy per MAC and the rule-based budget."""
    kw.setdefault(
        "energy_per_mac_j",
        calibrate_energy_per_mac(
            active_power_w=kw["active_power_w"],  # type: ignore[arg-type]
            idle_power_w=kw["idle_power_w"],  # type: ignore[arg-type]
            macs_per_second=kw["macs_per_second"],  # type: ignore[arg-type]
            memory_bandwidth_bytes_per_s=kw["memory_bandwidth_bytes_per_s"],  # type: ignore[arg-type]
            energy_per_byte_j=kw["energy_per_byte_j"],  # type: ignore[arg-type]
        ),
    )
    kw.setdefault(
        "training_memory_bytes",
        training_budget_rule(kw["kind"], kw["sram_bytes"], kw["dram_bytes"]),  # type: ignore[arg-type]
    )
    return DeviceProfile(**kw)  # type: ignore[arg-type]


def builtin_presets() -> dict[str, DeviceProfile]:
    """The five built-in profiles, freshly built, keyed by name."""
    profiles = [_stm32f746(), _rpi4(), _phone_mid(), _phone_flagship(), _jetson_nano()]
    return {p.name: p for p in profiles}


_CACHE_J_PER_BYTE = 100e-12 / 8  # horowitz2014energy: 1 MB cache, 64-bit read, 45 nm
_HOROWITZ_LEVELS = (
    "horowitz2014energy: 45 nm reads: 8 KB SRAM 32-bit ~5 pJ, 1 MB cache 64-bit ~100 pJ, "
    "DRAM 32-bit ~640 pJ"
)
_LEVEL_NOTES = (
    _HOROWITZ_LEVELS,
    "estimate: energy per byte by level: cache 12.5 pJ/byte (Horowitz's 1 MB figure), DRAM = "
    "energy_per_byte_j; storage read energy is an assumption (power / read rate, see the "
    "presets module docstring)",
)

BUILTIN_ALIASES: dict[str, str] = {
    "mcu": "stm32f746",
    "cortex-m7": "stm32f746",
    "stm32": "stm32f746",
    "pi4": "rpi4",
    "raspberry-pi-4": "rpi4",
    "raspberrypi4": "rpi4",
    "phone": "phone-mid",
    "flagship": "phone-flagship",
    "jetson": "jetson-nano",
    "nano": "jetson-nano",
}
"""Extra names accepted by :func:`odtlab.devices.get` (after lower-casing)."""


def _stm32f746() -> DeviceProfile:
    clock = 216e6  # Hz, DS10916
    return _preset(
        name="stm32f746",
        description="STM32F746-class Cortex-M7 MCU at 216 MHz, 320 KB SRAM, 1 MB flash",
        kind="mcu",
        sram_bytes=320 * KiB,  # 240 KB SRAM1 + 16 KB SRAM2 + 64 KB DTCM
        dram_bytes=0,
        flash_bytes=1 * MiB,
        # 80 % of SRAM = 256 KiB, the budget of lin2022ondevice on this chip.
        macs_per_second={
            "fp32": clock * 1,  # one single-precision VFMA per cycle (FPv5)
            "fp16": clock * 0.5,  # no fp16 arithmetic: convert, compute in fp32
            "int8": clock * 2,  # SMLAD: two 16-bit MACs per cycle (CMSIS-NN)
        },
        memory_bandwidth_bytes_per_s=clock * 8,  # 64-bit AXI bus to SRAM
        energy_per_byte_j=5e-12,
        energy_per_byte_by_level_j={"sram": 5e-12, "flash": 50e-12},  # no DRAM
        idle_power_w=0.15,  # ~45 mA at 3.3 V, clocks running, core waiting
        active_power_w=0.33,  # ~100 mA at 3.3 V in Run mode at 216 MHz
        battery_wh=None,  # a development board on USB power
        thermal_resistance_k_per_w=40.0,  # order of the package's theta_JA
        thermal_capacitance_j_per_k=2.0,
        ambient_c=25.0,
        throttle_temp_c=125.0,  # maximum junction temperature
        throttle_factor=1.0,  # no governor: an MCU never slows itself down
        throttle_hysteresis_k=5.0,
        uplink_bytes_per_s=20e3,  # a BLE link, ~160 kbit/s of payload
        sources=(
            "st2016stm32f746: 216 MHz Cortex-M7, 320 KB SRAM, 1 MB flash, 125 °C junction limit",
            "lin2022ondevice: on-device training on this MCU class within 256 KB",
            "arm2015cortexm7: FPv5 single-precision FMA; no fp16 arithmetic; SMLAD dual 16-bit MAC",
            "estimate: MAC/s = clock x MACs/cycle (peak); bandwidth = 64-bit AXI x clock",
            "estimate: power from the order of the data sheet's Run/Sleep current at 3.3 V",
            "estimate: energy per MAC calibrated to active power; 5 pJ/byte for on-chip SRAM "
            "(order of magnitude from horowitz2014energy)",
            "estimate: thermal R, C; BLE uplink",
            _HOROWITZ_LEVELS,
            "estimate: SRAM 5 pJ/byte by level; flash 50 pJ/byte is an assumption, about 10x "
            "SRAM (see the presets module docstring)",
        ),
    )


def _rpi4() -> DeviceProfile:
    core_hz = 4 * 1.5e9  # four Cortex-A72 cores at 1.5 GHz
    return _preset(
        name="rpi4",
        description="Raspberry Pi 4-class board: 4x Cortex-A72 at 1.5 GHz, 4 GB LPDDR4",
        kind="sbc",
        sram_bytes=1 * MiB,  # shared L2 cache
        dram_bytes=4 * GiB,
        flash_bytes=32_000_000_000,  # a 32 GB microSD card
        macs_per_second={
            "fp32": core_hz * 8,  # two 128-bit NEON FMA pipes = 8 fp32 MAC/cycle
            "fp16": core_hz * 4,  # Armv8.0: no fp16 arithmetic, convert to fp32
            "int8": core_hz * 16,  # widening 8-bit multiply-accumulate, no SDOT
        },
        memory_bandwidth_bytes_per_s=12.8e9,  # LPDDR4-3200, 32-bit bus
        energy_per_byte_j=40e-12,
        idle_power_w=2.7,
        energy_per_byte_by_level_j={"sram": _CACHE_J_PER_BYTE, "dram": 40e-12, "flash": 5e-9},
        active_power_w=6.4,
        battery_wh=None,
        thermal_resistance_k_per_w=10.0,  # bare board: ~52 °C idle, throttles under load
        thermal_capacitance_j_per_k=15.0,
        ambient_c=25.0,
        throttle_temp_c=80.0,  # firmware starts to throttle the ARM cores at 80 °C
        throttle_factor=0.6,
        throttle_hysteresis_k=5.0,
        uplink_bytes_per_s=12.5e6,  # ~100 Mbit/s over Wi-Fi 5
        sources=(
            "raspberrypi2019pi4: 4x Cortex-A72 at 1.5 GHz, up to 4 GB LPDDR4-3200",
            "arm2015cortexa72: two 128-bit FP/NEON pipes; Armv8.0 has no fp16 arithmetic or SDOT",
            "raspberrypi2023thermal: soft throttling of the ARM cores from 80 °C",
            "estimate: MAC/s = cores x clock x MACs/cycle (peak); int8 via widening MLA",
            "estimate: idle 2.7 W and full load 6.4 W, the order of published board measurements",
            "estimate: throttled speed 0.6, thermal R and C, Wi-Fi uplink",
            "estimate: energy per MAC calibrated to active power; 40 pJ/byte for LPDDR4 (order of magnitude: horowitz2014energy)",
            *_LEVEL_NOTES,
        ),
    )


def _phone_mid() -> DeviceProfile:
    big_core_hz = 4 * 2.4e9  # four Cortex-A78 cores; training runs on the big cores
    return _preset(
        name="phone-mid",
        description="Mid-range phone: 4x Cortex-A78 at 2.4 GHz + 4x A55, 6 GB LPDDR4X",
        kind="phone",
        sram_bytes=2 * MiB,  # shared L3 of the CPU cluster
        dram_bytes=6 * GiB,
        flash_bytes=128_000_000_000,  # 128 GB UFS
        macs_per_second={
            "fp32": big_core_hz * 8,  # two 128-bit FMA pipes
            "fp16": big_core_hz * 16,  # Armv8.2 fp16 arithmetic: twice the lanes
            "int8": big_core_hz * 32,  # SDOT: 16 MACs per 128-bit instruction, 2 pipes
        },
        memory_bandwidth_bytes_per_s=34.1e9,  # LPDDR4X-4266, 64-bit
        energy_per_byte_j=35e-12,
        energy_per_byte_by_level_j={"sram": _CACHE_J_PER_BYTE, "dram": 35e-12, "flash": 1e-9},
        idle_power_w=0.8,  # screen on, app waiting
        active_power_w=5.0,
        battery_wh=19.25,  # 5000 mAh at 3.85 V
        thermal_resistance_k_per_w=15.0,
        thermal_capacitance_j_per_k=20.0,
        ambient_c=25.0,
        throttle_temp_c=85.0,
        throttle_factor=0.5,
        throttle_hysteresis_k=5.0,
        uplink_bytes_per_s=1.25e6,  # ~10 Mbit/s LTE uplink
        sources=(
            "arm2020cortexa78: two 128-bit NEON pipes, fp16 arithmetic, SDOT",
            "estimate: SoC class of 2021-2023 mid-range phones; MAC/s = 4 big cores x clock x MACs/cycle",
            "estimate: idle 0.8 W, full load 5 W, battery 5000 mAh at 3.85 V",
            "estimate: thermal R, C, throttle 85 °C at half speed; LTE uplink",
            "estimate: energy per MAC calibrated to active power; 35 pJ/byte for LPDDR4X (order of magnitude: horowitz2014energy)",
            *_LEVEL_NOTES,
        ),
    )


def _phone_flagship() -> DeviceProfile:
    cpu_fp32 = 2.84e9 * 16 + 3 * 2.42e9 * 8  # Cortex-X1 (4 FMA pipes) + 3x Cortex-A78
    return _preset(
        name="phone-flagship",
        description="Flagship phone, Snapdragon 888-class SoC with a 26 TOPS AI engine, 8 GB LPDDR5",
        kind="phone",
        sram_bytes=4 * MiB,  # CPU L3
        dram_bytes=8 * GiB,
        flash_bytes=256_000_000_000,  # 256 GB UFS 3.1
        macs_per_second={
            "fp32": cpu_fp32,
            "fp16": cpu_fp32 * 2,  # Armv8.2 fp16 arithmetic
            "int8": 26e12 / 2,  # 26 TOPS = 13 T int8 MAC/s on the AI engine (1 MAC = 2 ops)
        },
        memory_bandwidth_bytes_per_s=51.2e9,  # LPDDR5-6400, 64-bit
        energy_per_byte_j=30e-12,
        energy_per_byte_by_level_j={"sram": _CACHE_J_PER_BYTE, "dram": 30e-12, "flash": 0.5e-9},
        idle_power_w=1.0,
        active_power_w=8.0,
        battery_wh=17.4,  # 4500 mAh at 3.87 V
        thermal_resistance_k_per_w=12.0,
        thermal_capacitance_j_per_k=25.0,
        ambient_c=25.0,
        throttle_temp_c=85.0,
        throttle_factor=0.5,
        throttle_hysteresis_k=5.0,
        uplink_bytes_per_s=6.25e6,  # ~50 Mbit/s 5G uplink
        sources=(
            "qualcomm2020snapdragon888: Cortex-X1 2.84 GHz + 3x A78 2.42 GHz, Hexagon 780, "
            "26 TOPS AI engine, LPDDR5 3200 MHz",
            "arm2020cortexa78: A78 and X1 NEON pipes, fp16 arithmetic, SDOT",
            "estimate: fp32/fp16 on the CPU big cores (where training frameworks run today); "
            "int8 is the AI engine's inference peak, an upper bound for training",
            "estimate: idle 1 W, full load 8 W, battery 4500 mAh at 3.87 V",
            "estimate: thermal R, C, throttle 85 °C at half speed; 5G uplink",
            "estimate: energy per MAC calibrated to active power; 30 pJ/byte for LPDDR5 (order of magnitude: horowitz2014energy)",
            *_LEVEL_NOTES,
        ),
    )


def _jetson_nano() -> DeviceProfile:
    gpu_fp16 = 472e9 / 2  # 472 GFLOPS fp16 = 236 G fp16 MAC/s
    return _preset(
        name="jetson-nano",
        description="Jetson Nano-class board: 128-core Maxwell GPU, 472 GFLOPS fp16, 4 GB LPDDR4",
        kind="edge-gpu",
        sram_bytes=256 * KiB,  # GPU L2 cache
        dram_bytes=4 * GiB,  # shared by CPU and GPU
        flash_bytes=16_000_000_000,  # 16 GB eMMC
        macs_per_second={
            "fp32": gpu_fp16 / 2,  # Maxwell runs fp16 as paired half2 ops: fp32 is half
            "fp16": gpu_fp16,
            "int8": gpu_fp16 / 2,  # no DP4A before sm_61: int8 no faster than fp32
        },
        memory_bandwidth_bytes_per_s=25.6e9,  # 64-bit LPDDR4
        energy_per_byte_j=40e-12,
        idle_power_w=1.5,
        energy_per_byte_by_level_j={"sram": _CACHE_J_PER_BYTE, "dram": 40e-12, "flash": 2e-9},
        active_power_w=10.0,  # the 10 W power mode
        battery_wh=None,
        thermal_resistance_k_per_w=6.5,  # passive heat sink
        thermal_capacitance_j_per_k=60.0,
        ambient_c=25.0,
        throttle_temp_c=80.0,
        throttle_factor=0.7,
        throttle_hysteresis_k=5.0,
        uplink_bytes_per_s=125e6,  # Gigabit Ethernet
        sources=(
            "nvidia2019jetsonnano: 128-core Maxwell, 472 GFLOPS fp16, 4 GB 64-bit LPDDR4 "
            "25.6 GB/s, 16 GB eMMC, 5 W/10 W modes",
            "estimate: fp32 and int8 MAC/s (half the fp16 rate; sm_53 has no DP4A)",
            "estimate: idle 1.5 W; thermal R, C, throttle point and speed",
            "estimate: energy per MAC calibrated to the 10 W mode; 40 pJ/byte for LPDDR4 (order of magnitude: horowitz2014energy)",
            *_LEVEL_NOTES,
        ),
    )

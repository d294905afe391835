"""Tests for odtlab.devices: profiles, presets, registry, fit check, simulator."""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odtlab import devices
from odtlab.devices import DeviceProfile, Workload
from odtlab.errors import DoesNotFit, OdtlabError, UnknownDevice

ROOT = Path(__file__).resolve().parents[1]
PRESET_NAMES = ["stm32f746", "rpi4", "phone-mid", "phone-flagship", "jetson-nano"]
KiB, MiB = 1024, 1024**2


@pytest.fixture
def custom_profile_dict():
    d = devices.get("stm32f746").to_dict()
    d["name"] = "test-board"
    return d


@pytest.fixture
def clean_registry():
    before = set(devices.available())
    yield
    for name in set(devices.available()) - before:
        devices.unregister(name)


# ------------------------------------------------------------------ presets
def test_mcu_preset_matches_the_data_sheet():
    mcu = devices.get("stm32f746")
    assert mcu.kind == "mcu"
    assert mcu.sram_bytes == 327_680  # 320 KiB
    assert mcu.flash_bytes == 1_048_576  # 1 MiB
    assert mcu.dram_bytes == 0
    assert mcu.training_memory_bytes == 262_144  # 256 KiB, as in the 256 KB paper
    assert mcu.macs_per_second == {"fp32": 216e6, "fp16": 108e6, "int8": 432e6}
    assert mcu.memory_bandwidth_bytes_per_s == pytest.approx(1.728e9)
    assert mcu.battery_wh is None
    assert any(s.startswith("st2016stm32f746") for s in mcu.sources)


def test_preset_names_and_key_figures():
    assert set(PRESET_NAMES) <= set(devices.available())
    assert sorted(devices.presets()) == sorted(PRESET_NAMES)
    pi = devices.get("rpi4")
    assert pi.dram_bytes == 4 * 1024**3
    assert pi.macs_per_second["fp32"] == pytest.approx(4 * 1.5e9 * 8)
    nano = devices.get("jetson-nano")
    assert 2 * nano.macs_per_second["fp16"] == pytest.approx(472e9)  # 472 GFLOPS fp16
    flagship = devices.get("phone-flagship")
    assert 2 * flagship.macs_per_second["int8"] == pytest.approx(26e12)  # 26 TOPS
    assert flagship.macs_per_second["int8"] > 50 * flagship.macs_per_second["fp32"]


def _bib_keys() -> set[str]:
    text = (ROOT / "references.bib").read_text(encoding="utf-8")
    return set(re.findall(r"@\w+\{([^,\s]+),", text))


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_is_positive_cited_and_within_memory(name):
    p = devices.get(name)
    assert p.name == name
    for f in ("sram_bytes", "flash_bytes", "training_memory_bytes"):
        assert getattr(p, f) > 0, f
    for f in (
        "memory_bandwidth_bytes_per_s",
        "energy_per_byte_j",
        "idle_power_w",
        "active_power_w",
        "thermal_resistance_k_per_w",
        "thermal_capacitance_j_per_k",
        "throttle_factor",
        "uplink_bytes_per_s",
    ):
        assert getattr(p, f) > 0, f
    assert all(p.macs_per_second[d] > 0 and p.energy_per_mac_j[d] > 0 for d in devices.DTYPES)
    assert p.training_memory_bytes <= p.sram_bytes + p.dram_bytes
    if p.kind == "mcu":
        assert p.training_memory_bytes <= p.sram_bytes
    else:
        assert p.training_memory_bytes <= p.dram_bytes
    assert 0 < p.throttle_factor <= 1
    assert p.throttle_temp_c > p.ambient_c
    # Every source is either an estimate note or a BibTeX key that exists.
    assert p.sources
    keys = _bib_keys()
    cited = [s.split(":")[0] for s in p.sources if not s.startswith("estimate")]
    assert cited, "each preset cites at least one document"
    assert set(cited) <= keys, set(cited) - keys
    assert any(s.startswith("estimate") for s in p.sources), "estimates are declared"


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_presets_are_calibrated_to_active_power(name):
    """Compute and memory at full speed draw exactly the data-sheet active power."""
    p = devices.get(name)
    memory_w = p.memory_bandwidth_bytes_per_s * p.energy_per_byte_j
    for d in devices.DTYPES:
        full_load = p.idle_power_w + p.macs_per_second[d] * p.energy_per_mac_j[d] + memory_w
        assert full_load == pytest.approx(p.active_power_w, rel=1e-12)


def test_mcu_energy_per_mac_is_in_the_picojoule_range():
    e = devices.get("mcu").energy_per_mac_j
    assert 100e-12 < e["int8"] < e["fp32"] < e["fp16"] < 5e-9
    assert e["int8"] == pytest.approx((0.33 - 0.15 - 1.728e9 * 5e-12) / 432e6)


def test_emulated_fp16_is_slower_than_fp32_where_there_is_no_hardware():
    assert devices.get("mcu").macs_per_second["fp16"] < devices.get("mcu").macs_per_second["fp32"]
    assert devices.get("rpi4").macs_per_second["fp16"] < devices.get("rpi4").macs_per_second["fp32"]
    assert (
        devices.get("phone-mid").macs_per_second["fp16"]
        > devices.get("phone-mid").macs_per_second["fp32"]
    )


def test_summary_is_readable():
    text = str(devices.get("mcu"))
    assert "320.0 KiB" in text and "1.00 MiB" in text and "256.0 KiB" in text
    assert "0.432 GMAC/s" in text
    assert "13,000 GMAC/s" in devices.get("phone-flagship").summary()
    assert "stm32f746" in repr(devices.get("mcu"))


# ------------------------------------------------------------------ registry
def test_unknown_name_lists_known_devices_and_suggests_the_closest():
    with pytest.raises(UnknownDevice) as info:
        devices.get("stm32f764")
    message = str(info.value)
    assert "Did you mean 'stm32f746'?" in message
    for name in PRESET_NAMES:
        assert name in message
    assert isinstance(info.value, OdtlabError) and isinstance(info.value, KeyError)
    with pytest.raises(UnknownDevice, match="Did you mean 'rpi4'"):
        devices.get("rpi5")


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("mcu", "stm32f746"),
        ("MCU", "stm32f746"),
        ("pi4", "rpi4"),
        ("raspberry-pi-4", "rpi4"),
        ("Raspberry_Pi_4", "rpi4"),
        ("Phone Flagship", "phone-flagship"),
        ("JETSON-NANO", "jetson-nano"),
    ],
)
def test_aliases_and_case(alias, name):
    assert devices.get(alias) is devices.get(name)


def test_get_passes_a_profile_through():
    p = devices.get("rpi4")
    assert devices.get(p) is p


def test_register_get_and_duplicate_error(custom_profile_dict, clean_registry):
    board = DeviceProfile.from_dict(custom_profile_dict)
    devices.register(board, aliases=("tb",))
    assert devices.get("Test-Board") is board
    assert devices.get("tb") is board
    assert "test-board" in devices.available()
    assert "test-board" not in devices.presets()
    with pytest.raises(ValueError, match="already registered.*overwrite=True"):
        devices.register(board)
    with pytest.raises(ValueError, match="already registered"):
        devices.register(dataclasses.replace(devices.get("mcu")))
    bigger = dataclasses.replace(board, sram_bytes=2 * board.sram_bytes)
    devices.register(bigger, overwrite=True)
    assert devices.get("test-board").sram_bytes == 2 * board.sram_bytes
    devices.unregister("test-board")
    with pytest.raises(UnknownDevice):
        devices.get("tb")


# ------------------------------------------------------------------ dict / YAML
def test_dict_round_trip(custom_profile_dict):
    p = DeviceProfile.from_dict(custom_profile_dict)
    assert DeviceProfile.from_dict(p.to_dict()) == p
    for name in PRESET_NAMES:
        preset = devices.get(name)
        assert DeviceProfile.from_dict(preset.to_dict()) == preset


def test_yaml_round_trip_text_and_file(tmp_path):
    for name in PRESET_NAMES:
        p = devices.get(name)
        assert DeviceProfile.from_yaml(p.to_yaml()) == p
    path = tmp_path / "board.yaml"
    path.write_text(devices.get("rpi4").to_yaml(), encoding="utf-8")
    assert DeviceProfile.from_yaml(path) == devices.get("rpi4")
    assert DeviceProfile.from_yaml(str(path)) == devices.get("rpi4")


def test_yaml_written_by_hand_with_derived_budget():
    text = """
name: my-mcu
kind: mcu
sram_bytes: 524288
dram_bytes: 0
flash_bytes: 2097152
macs_per_second: {fp32: 4.8e8, fp16: 2.4e8, int8: 9.6e8}
memory_bandwidth_bytes_per_s: 3.84e9
energy_per_mac_j: {fp32: 5.0e-10, fp16: 1.0e-9, int8: 2.5e-10}
energy_per_byte_j: 5e-12
idle_power_w: 0.1
active_power_w: 0.4
thermal_resistance_k_per_w: 40
thermal_capacitance_j_per_k: 2
throttle_temp_c: 125
throttle_factor: 1.0
uplink_bytes_per_s: 20000
battery_wh: 0
"""
    p = DeviceProfile.from_yaml(text)
    assert p.training_memory_bytes == int(0.8 * 524288)  # the MCU rule
    assert p.macs_per_second["fp32"] == 4.8e8  # PyYAML reads "4.8e8" as text
    assert p.battery_wh is None  # 0 Wh means mains-powered
    assert p.ambient_c == 25.0 and p.throttle_hysteresis_k == 5.0


def test_from_dict_lists_missing_and_unknown_keys(custom_profile_dict):
    d = dict(custom_profile_dict)
    del d["sram_bytes"]
    del d["kind"]
    d["sram_byte"] = 1
    with pytest.raises(ValueError) as info:
        DeviceProfile.from_dict(d)
    message = str(info.value)
    assert "missing keys: kind, sram_bytes" in message
    assert "unknown key: 'sram_byte' (did you mean 'sram_bytes'?)" in message


def test_from_yaml_rejects_a_list():
    with pytest.raises(ValueError, match="one mapping"):
        DeviceProfile.from_yaml("- a\n- b\n")


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("sram_bytes", -1, r"sram_bytes must be >= 1 bytes, got -1"),
        ("sram_bytes", 0, r"sram_bytes must be >= 1 bytes, got 0"),
        ("flash_bytes", 1.5, r"flash_bytes must be a whole number of bytes, got 1.5"),
        ("memory_bandwidth_bytes_per_s", 0, r"memory_bandwidth_bytes_per_s must be > 0, got 0"),
        ("active_power_w", -3, r"active_power_w must be > 0, got -3"),
        ("idle_power_w", 1.0, r"idle_power_w \(1.0 W\) exceeds active_power_w"),
        ("throttle_factor", 1.5, r"throttle_factor is a speed multiplier in \(0, 1\], got 1.5"),
        ("throttle_temp_c", 20.0, r"throttle_temp_c \(20.0 °C\) must be above ambient_c"),
        ("kind", "laptop", r"kind must be one of"),
        ("training_memory_bytes", 10**9, r"training_memory_bytes \(1000000000\) exceeds"),
        ("macs_per_second", {"fp32": 1e9}, r"missing \['fp16', 'int8'\]"),
        (
            "energy_per_mac_j",
            {"fp32": 1e-9, "fp16": -1, "int8": 1e-9},
            r"energy_per_mac_j\['fp16'\]",
        ),
        ("battery_wh", -2, r"battery_wh must be >= 0, got -2"),
        ("name", "", r"name must be a non-empty string"),
    ],
)
def test_validation_names_the_field_and_value(custom_profile_dict, field, value, pattern):
    d = dict(custom_profile_dict, **{field: value})
    with pytest.raises(ValueError, match=pattern):
        DeviceProfile.from_dict(d)


def test_replace_revalidates_and_gives_a_battery():
    mcu = devices.get("mcu")
    on_battery = dataclasses.replace(mcu, battery_wh=3.7)
    assert on_battery.battery_wh == 3.7
    with pytest.raises(ValueError, match="sram_bytes"):
        dataclasses.replace(mcu, sram_bytes=-5)


# ------------------------------------------------------------------ fit check
def _report(**totals):
    return SimpleNamespace(totals=totals)


def test_check_fit_raises_with_exact_excess_and_largest_category():
    report = _report(
        peak=300 * KiB, weights=50_000, gradients=1_000, optimizer=0, activations=200_000
    )
    with pytest.raises(DoesNotFit) as info:
        devices.check_fit(report, "mcu")
    message = str(info.value)
    assert "over by 45056 bytes (44.0 KiB" in message  # 307200 - 262144
    assert "262144 bytes" in message and "256.0 KiB" in message
    assert "Largest category: activations, 195.3 KiB (200000 bytes" in message
    assert "micro-batching" in message and "checkpointing" in message
    verdict = info.value.verdict
    assert verdict.over_by_bytes == 45_056 and verdict.headroom_bytes == -45_056
    assert not verdict.fits and verdict.largest_category == "activations"


@pytest.mark.parametrize(
    ("largest", "advice"),
    [
        ("optimizer", "SGD"),
        ("weights", "int8"),
        ("gradients", "freeze layers"),
        ("activations", "smaller batch"),
    ],
)
def test_check_fit_advice_follows_the_largest_category(largest, advice):
    breakdown = {
        "weights": 10,
        "gradients": 10,
        "optimizer": 10,
        "activations": 10,
        largest: 2 * MiB,
    }
    w = Workload(
        flops_per_step=1e6,
        bytes_moved_per_step=1e3,
        peak_bytes=2 * MiB + 30,
        breakdown=breakdown,
    )
    with pytest.raises(DoesNotFit, match=f"Largest category: {largest}") as info:
        devices.check_fit(w, "stm32f746")
    assert advice in str(info.value)


def test_check_fit_without_breakdown_points_to_the_memory_report():
    with pytest.raises(DoesNotFit, match="(?s)over by 1 bytes.*profile_training"):
        devices.check_fit(262_145, "mcu")


def test_verdict_headroom_and_utilisation():
    v = devices.check_fit(200 * KiB, "mcu")
    assert v.fits
    assert v.peak_bytes == 204_800 and v.budget_bytes == 262_144
    assert v.headroom_bytes == 57_344
    assert v.utilisation == pytest.approx(0.78125)
    assert v.largest_category is None
    assert "Fits on stm32f746" in str(v) and "56.0 KiB to spare" in str(v)
    exact = devices.check_fit(262_144, "mcu")
    assert exact.fits and exact.headroom_bytes == 0 and exact.utilisation == 1.0
    v2 = devices.check_fit(_report(peak=1000, weights=600, activations=400), "rpi4")
    assert v2.largest_category == "weights" and v2.largest_bytes == 600


def test_fits_never_raises():
    assert devices.fits(262_144, "mcu") is True
    assert devices.fits(262_145, "mcu") is False
    assert devices.fits(_report(peak=5 * 1024**3), "phone-mid") is False
    assert devices.fits(np.int64(1000), "mcu") is True


def test_check_fit_rejects_what_it_cannot_read():
    with pytest.raises(TypeError, match="totals"):
        devices.check_fit("big", "mcu")
    with pytest.raises(TypeError, match="totals"):
        devices.check_fit(SimpleNamespace(totals={"weights": 1}), "mcu")


# ------------------------------------------------------------------ workload
def test_workload_validation_and_macs():
    w = Workload(flops_per_step=2e6, bytes_moved_per_step=1e3, peak_bytes=10, steps=3)
    assert w.macs_per_step == 1e6 and w.total_flops == 6e6
    assert w.arithmetic_intensity == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="dtype"):
        Workload(flops_per_step=1, bytes_moved_per_step=1, peak_bytes=1, dtype="bf16")
    with pytest.raises(ValueError, match="steps"):
        Workload(flops_per_step=1, bytes_moved_per_step=1, peak_bytes=1, steps=0)
    with pytest.raises(ValueError, match="both 0"):
        Workload(flops_per_step=0, bytes_moved_per_step=0, peak_bytes=1)


def test_workload_from_report():
    w = Workload.from_report(
        _report(peak=5000, weights=1000, activations=3000, gradients=1000, optimizer=0),
        flops_per_step=1e6,
        bytes_moved_per_step=1e4,
        steps=2,
    )
    assert w.peak_bytes == 5000
    assert w.breakdown == {"weights": 1000, "gradients": 1000, "optimizer": 0, "activations": 3000}


def test_estimate_bytes_moved():
    # 2 x weights + 2 x activations + 4 x trainable + 2 x optimizer + input
    assert devices.estimate_bytes_moved(1000, 500) == 7000
    assert devices.estimate_bytes_moved(1000, 500, trainable_param_bytes=10) == 3040
    assert (
        devices.estimate_bytes_moved(1000, 500, optimizer_state_bytes=2000, input_bytes=100)
        == 11_100
    )


# ------------------------------------------------------------------ simulator
def _job(flops=2e6, bytes_moved=1e4, steps=10, dtype="fp32", peak=1000):
    return Workload(
        flops_per_step=flops,
        bytes_moved_per_step=bytes_moved,
        peak_bytes=peak,
        steps=steps,
        dtype=dtype,
    )


@pytest.mark.parametrize("thermal", [True, False])
def test_time_is_linear_in_steps_and_flops(thermal):
    mcu = devices.get("mcu")  # never throttles, so the thermal model cannot bend the line
    t1 = devices.simulate(_job(steps=10), mcu, thermal=thermal).total_time_s
    t2 = devices.simulate(_job(steps=30), mcu, thermal=thermal).total_time_s
    t3 = devices.simulate(_job(flops=6e6, steps=10), mcu, thermal=thermal).total_time_s
    assert t2 == pytest.approx(3 * t1, rel=1e-12)
    assert t3 == pytest.approx(3 * t1, rel=1e-12)
    assert t1 == pytest.approx(10 * 1e6 / 216e6)


def test_int8_is_faster_than_fp32_on_the_mcu():
    fp32 = devices.simulate(_job(dtype="fp32"), "mcu")
    int8 = devices.simulate(_job(dtype="int8"), "mcu")
    assert int8.total_time_s < fp32.total_time_s
    assert fp32.total_time_s / int8.total_time_s == pytest.approx(2.0)  # SMLAD: 2 MACs/cycle
    assert int8.total_energy_j < fp32.total_energy_j


def test_roofline_compute_bound():
    # 216e6 MACs at 216e6 MAC/s = 1 s; 1.728e8 bytes at 1.728e9 B/s = 0.1 s.
    r = devices.simulate(_job(flops=2 * 216e6, bytes_moved=1.728e8, steps=4), "mcu")
    assert r.compute_time_s == pytest.approx(1.0) and r.memory_time_s == pytest.approx(0.1)
    assert r.bound == "compute"
    np.testing.assert_allclose(r.step_time_s, 1.0)
    assert r.total_time_s == pytest.approx(4.0)


def test_roofline_memory_bound():
    # 2 x 1.728e9 bytes at 1.728e9 B/s = 2 s, more than 0.5 s of compute.
    r = devices.simulate(_job(flops=216e6, bytes_moved=2 * 1.728e9, steps=3), "mcu")
    assert r.bound == "memory"
    assert r.compute_time_s == pytest.approx(0.5) and r.memory_time_s == pytest.approx(2.0)
    assert r.total_time_s == pytest.approx(6.0)


def test_energy_by_hand():
    # int8 on the MCU: 432e6 MACs (1 s) and 1.728e8 bytes (0.1 s) per step.
    # MAC power = 0.33 - 0.15 - 1.728e9 * 5e-12 = 0.17136 W, so the MACs cost 0.17136 J,
    # the bytes 1.728e8 * 5e-12 = 0.000864 J, idle 0.15 W x 1 s = 0.15 J.
    r = devices.simulate(_job(flops=2 * 432e6, bytes_moved=1.728e8, steps=5, dtype="int8"), "mcu")
    np.testing.assert_allclose(r.step_energy_j, 0.17136 + 0.000864 + 0.15, rtol=1e-12)
    assert r.total_energy_j == pytest.approx(5 * 0.322224)
    assert r.average_power_w == pytest.approx(0.322224)
    assert r.battery_percent is None


def test_battery_percent_by_hand():
    # phone-mid, fp32, 1 s of compute per step, no memory traffic:
    # energy per step = (5 - 0.8 - 34.1e9 * 35e-12) + 0.8 = 3.8065 J.
    phone = devices.get("phone-mid")
    r = devices.simulate(_job(flops=2 * 76.8e9, bytes_moved=0, steps=100), phone)
    assert r.throttled_steps == 0
    assert r.total_energy_j == pytest.approx(380.65)
    assert r.energy_wh == pytest.approx(380.65 / 3600)
    assert r.battery_percent == pytest.approx(100 * 380.65 / 3600 / 19.25)
    assert "battery" in str(r)


def test_temperature_rises_toward_steady_state_and_never_exceeds_it():
    # int8 on the MCU, 1 s steps at P = 0.15 + 0.17136 W: T_ss = 25 + 0.32136 * 40.
    mcu = devices.get("mcu")
    r = devices.simulate(_job(flops=2 * 432e6, bytes_moved=0, steps=1000, dtype="int8"), mcu)
    power = 0.15 + 0.17136
    steady = 25 + power * 40
    start = 25 + 0.15 * 40  # idle steady state
    assert r.initial_temp_c == pytest.approx(start)
    tau = 40 * 2.0
    expected_80 = steady + (start - steady) * math.exp(-80 / tau)
    assert r.temperature_c[79] == pytest.approx(expected_80, rel=1e-12)  # end of step 80 = 80 s
    assert np.all(np.diff(r.temperature_c) > 0)
    assert np.all(r.temperature_c <= steady)
    assert r.temperature_c[-1] == pytest.approx(steady, abs=1e-3)
    assert r.throttled_steps == 0


def test_ambient_and_initial_temperature_can_be_set():
    r = devices.simulate(_job(steps=5), "phone-mid", ambient_c=35.0, initial_temp_c=35.0)
    assert r.ambient_c == 35.0 and r.initial_temp_c == 35.0
    assert r.temperature_c[0] >= 35.0


def _heavy_phone_job(steps):
    """Compute and memory both saturated for 0.5 s per step: the phone draws its 5 W."""
    phone = devices.get("phone-mid")
    return phone, _job(
        flops=2 * 0.5 * phone.macs_per_second["fp32"],
        bytes_moved=0.5 * phone.memory_bandwidth_bytes_per_s,
        steps=steps,
        peak=100 * MiB,
    )


def test_long_heavy_job_throttles_the_phone():
    phone, job = _heavy_phone_job(2000)
    r = devices.simulate(job, phone)
    assert r.average_power_w < 5.0
    # From 37 °C toward 25 + 5 * 15 = 100 °C, 85 °C is reached after 300 ln(63/15) s = 430.5 s,
    # so step 862 (starting at 431 s) is the first to run throttled.
    first = int(np.argmax(r.throttled))
    assert first == math.ceil(300 * math.log(63 / 15) / 0.5) == 862
    assert r.temperature_c[first - 1] >= 85.0 > r.temperature_c[first - 2]
    np.testing.assert_allclose(r.step_time_s[r.throttled], 0.5 / phone.throttle_factor)
    np.testing.assert_allclose(r.step_time_s[~r.throttled], 0.5)
    assert 0 < r.throttled_fraction < 1
    assert r.total_time_s == pytest.approx(0.5 * 2000 + 0.5 * r.throttled_steps)
    # Hysteresis: full speed returns only below 80 °C.
    recovered = np.flatnonzero(r.throttled[:-1] & ~r.throttled[1:]) + 1
    assert recovered.size > 0
    assert np.all(r.temperature_c[recovered - 1] < 80.0)
    assert r.peak_temperature_c < 100.0


def test_short_heavy_job_does_not_throttle():
    phone, job = _heavy_phone_job(10)
    r = devices.simulate(job, phone)
    assert r.throttled_steps == 0
    assert r.total_time_s == pytest.approx(5.0)


def test_long_steps_are_split_so_throttling_starts_mid_step():
    phone = devices.get("phone-mid")
    one_step = _job(
        flops=2 * 1000 * phone.macs_per_second["fp32"],
        bytes_moved=1000 * phone.memory_bandwidth_bytes_per_s,
        steps=1,
        peak=1,
    )
    r = devices.simulate(one_step, phone)
    assert r.throttled[0]
    assert 1000 < r.total_time_s < 1000 / phone.throttle_factor


def test_thermal_off_gives_nan_temperatures():
    _, job = _heavy_phone_job(2000)
    r = devices.simulate(job, "phone-mid", thermal=False)
    assert r.throttled_steps == 0
    assert np.isnan(r.temperature_c).all()
    assert r.total_time_s == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="thermal=True"):
        r.plot()


def test_simulate_checks_memory_first():
    big = _job(peak=300 * KiB)
    with pytest.raises(DoesNotFit, match="over by 45056 bytes"):
        devices.simulate(big, "mcu")
    r = devices.simulate(big, "mcu", check_memory=False)
    assert r.fit is not None and not r.fit.fits


def test_result_prints_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phone, job = _heavy_phone_job(1200)
    r = devices.simulate(job, phone)
    text = str(r)
    assert "phone-mid" in text and "throttled" in text and "a model, not a measurement" in text
    ax = r.plot()
    assert ax.get_ylabel() == "temperature (°C)"
    assert any(line.get_ydata()[0] == 85.0 for line in ax.get_lines()[1:])
    plt.close(ax.figure)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(min_value=1, max_value=400),
    extra=st.integers(min_value=1, max_value=400),
    seconds_per_step=st.floats(min_value=1e-3, max_value=20.0),
    name=st.sampled_from(PRESET_NAMES),
    dtype=st.sampled_from(["fp32", "fp16", "int8"]),
)
def test_more_steps_never_take_less_time_or_energy(steps, extra, seconds_per_step, name, dtype):
    p = devices.get(name)
    flops = 2 * seconds_per_step * p.macs_per_second[dtype]
    bytes_moved = seconds_per_step * p.memory_bandwidth_bytes_per_s
    short = devices.simulate(_job(flops, bytes_moved, steps, dtype), p)
    long = devices.simulate(_job(flops, bytes_moved, steps + extra, dtype), p)
    assert long.total_time_s > short.total_time_s
    assert long.total_energy_j > short.total_energy_j
    # The first steps are the same whatever comes after them.
    np.testing.assert_allclose(long.step_time_s[:steps], short.step_time_s)
    # Never hotter than the steady state at full power, never faster than full speed.
    assert (
        long.peak_temperature_c
        <= p.ambient_c + p.active_power_w * p.thermal_resistance_k_per_w + 1e-9
    )
    assert np.all(long.step_time_s >= seconds_per_step * (1 - 1e-12))
    assert np.all(long.step_time_s <= seconds_per_step / p.throttle_factor * (1 + 1e-12))


# ------------------------------------------------------------------ formatting and layering
def test_format_helpers():
    assert devices.format_bytes(327_680) == "320.0 KiB"
    assert devices.format_bytes(1_572_864) == "1.50 MiB"
    assert devices.format_bytes(4 * 1024**3) == "4.00 GiB"
    assert devices.format_bytes(512) == "512 B"
    assert devices.format_bytes(-45_056) == "-44.0 KiB"
    assert devices.format_seconds(0.0123) == "12.3 ms"
    assert devices.format_seconds(2.5e-4) == "250 µs"
    assert devices.format_seconds(1.5) == "1.50 s"
    assert devices.format_seconds(150) == "2.50 min"
    assert devices.format_seconds(7200) == "2.00 h"


def test_public_api():
    for name in (
        "DeviceProfile",
        "Workload",
        "FitVerdict",
        "SimulationResult",
        "get",
        "available",
        "register",
        "presets",
        "check_fit",
        "fits",
        "simulate",
        "format_bytes",
        "format_seconds",
    ):
        assert name in devices.__all__ and hasattr(devices, name)


GROUND = ("odtlab.errors", "odtlab.units", "odtlab.viz")  # the ground floor every package may use


def test_devices_imports_nothing_of_ours_but_the_ground_floor():
    for path in (ROOT / "odtlab" / "devices").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("odtlab")
            ):
                assert node.module in GROUND or node.module.startswith("odtlab.devices"), (
                    path.name,
                    node.module,
                )
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("odtlab") or alias.name.startswith(
                        ("odtlab.devices", "odtlab.errors")
                    ), (path.name, alias.name)


def test_profiles_hash_and_pickle():
    import pickle

    assert len({devices.get("mcu"), devices.get("stm32f746"), devices.get("rpi4")}) == 2
    assert pickle.loads(pickle.dumps(devices.get("phone-flagship"))) == devices.get(
        "phone-flagship"
    )


def test_calibration_refuses_impossible_power_figures():
    with pytest.raises(ValueError, match="energy_per_byte_j"):
        devices.calibrate_energy_per_mac(
            active_power_w=1.0,
            idle_power_w=0.5,
            macs_per_second={"fp32": 1e9, "fp16": 1e9, "int8": 1e9},
            memory_bandwidth_bytes_per_s=1e9,
            energy_per_byte_j=1e-9,  # 1 W of memory traffic alone
        )


def test_register_needs_a_profile():
    with pytest.raises(TypeError, match="from_dict"):
        devices.register({"name": "x"})  # type: ignore[arg-type]


def test_does_not_fit_names_the_short_lived_bytes_when_they_dominate():
    from odtlab import devices
    from odtlab.errors import DoesNotFit

    transient = {"weights": 10_000, "gradients": 0, "optimizer": 0, "activations": 20_000,
                 "peak": 300_000}  # fmt: skip
    with pytest.raises(DoesNotFit) as info:
        devices.check_fit(transient, "stm32f746")
    message = str(info.value)
    assert "Most of the peak, 263.7 KiB (90%), is in no category" in message
    assert "What to try: a smaller batch" in message
    resident = {**transient, "activations": 280_000}  # categories explain the peak
    with pytest.raises(DoesNotFit) as info:
        devices.check_fit(resident, "stm32f746")
    assert "in no category" not in str(info.value)
    assert "What to try: shrink the saved activations" in str(info.value)

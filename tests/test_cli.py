"""The `odtlab` command: devices, fit, and clear errors."""

from __future__ import annotations

import subprocess
import sys

import odtlab as odt


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "odtlab.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_devices_lists_every_preset_with_its_budget():
    proc = run("devices")
    assert proc.returncode == 0
    for name in odt.devices.available():
        assert name in proc.stdout
    assert odt.devices.format_bytes(odt.devices.get("stm32f746").training_memory_bytes) in proc.stdout


def test_fit_prints_the_report_and_the_verdict():
    proc = run("fit", "--model", "mobilenetv2", "--resolution", "224", "--batch", "8", "--device", "rpi4")
    assert proc.returncode == 0, proc.stderr
    net = odt.models.mobilenetv2(device="meta")
    report = odt.memory.profile_training(
        net, odt.models.example_batch("mobilenetv2", 8, device="meta"), flops=False
    )
    assert odt.devices.format_bytes(report.totals["peak"]) in proc.stdout
    assert "Fits on rpi4" in proc.stdout


def test_fit_exits_1_and_says_by_how_much_when_it_does_not_fit():
    proc = run("fit", "--model", "mcunet", "--batch", "2", "--device", "stm32f746")
    assert proc.returncode == 1
    assert "DOES NOT FIT stm32f746" in proc.stdout
    assert "over by" in proc.stdout and "Largest category: activations" in proc.stdout


def test_fit_with_an_unknown_device_lists_the_known_ones():
    proc = run("fit", "--device", "pi5")
    assert proc.returncode == 2
    assert "Did you mean 'rpi4'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_fit_with_an_argument_the_model_does_not_take_is_one_line():
    proc = run("fit", "--model", "mlp", "--width", "0.5")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "width_mult" in proc.stderr

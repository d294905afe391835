"""The package skeleton: version, errors, subpackages, command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

import odtlab as odt
from odtlab import errors


def test_version_is_a_release_string():
    parts = odt.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)


@pytest.mark.parametrize(
    "name",
    ["UnknownDevice", "UnknownModel", "DoesNotFit", "InvalidRecipe", "CorruptCheckpoint", "GradingError"],
)
def test_every_public_error_is_an_odtlab_error(name):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.OdtlabError)
    assert getattr(odt, name) is cls


def test_lookup_errors_print_their_message_unquoted():
    # KeyError would print "'...'" with quotes; ours read like sentences.
    assert str(errors.UnknownDevice("no device 'x'")) == "no device 'x'"
    with pytest.raises(KeyError):
        raise errors.UnknownModel("no model")


@pytest.mark.parametrize(
    "sub",
    ["devices", "memory", "models", "data", "recipes", "train", "search", "fl", "cl", "export",
     "grading", "viz", "widgets"],  # fmt: skip
)
def test_subpackages_of_the_map_exist_with_all(sub):
    module = getattr(odt, sub)
    assert isinstance(module.__all__, list)
    for name in module.__all__:
        assert hasattr(module, name), f"odtlab.{sub}.__all__ names {name!r} but it is missing"


def test_public_tests_dir_of_unknown_lab_lists_known_labs():
    with pytest.raises(errors.GradingError) as info:
        odt.grading.public_tests_dir("lab99_nope")
    assert "lab00_welcome" in str(info.value)
    assert "make student" in str(info.value)


def test_command_line_help_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "odtlab.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for sub in ("student", "grade"):
        assert sub in out


def test_command_line_reports_odtlab_errors_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "odtlab.cli", "grade", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "No .ipynb submissions" in proc.stderr
    assert "Traceback" not in proc.stderr

"""Checkpoints: exact round trip, every kind of damage caught, crashes mid-save harmless."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
import torch

from odtlab.errors import CorruptCheckpoint
from odtlab.models import mlp
from odtlab.train import (
    PowerLoss,
    latest_checkpoint,
    read_checkpoint,
    restore_checkpoint,
    restore_latest,
    save_checkpoint,
)
from odtlab.train import checkpoint_file as cf
from odtlab.train.checkpoint import previous_path
from odtlab.train.checkpoint_file import HEADER, MAGIC, encode


def trained_pair(optimizer: str = "sgd", seed: int = 0):
    """A small MLP and an optimizer with state (momentum or Adam moments) after 3 steps."""
    model = mlp(in_features=16, hidden=(8,), num_classes=3, seed=seed)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        x, y = torch.randn(5, 16, generator=g), torch.randint(0, 3, (5,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_round_trip_is_exact_for_model_optimizer_and_extra(tmp_path, optimizer):
    model, opt = trained_pair(optimizer)
    gen = torch.Generator().manual_seed(7)
    gen_state = gen.get_state()
    extra = {"rng": {"loader": gen_state}, "curve": torch.tensor([1.0, 0.5]), "note": "x",
             "pos": 3, "nested": [1, (2.5, None)]}  # fmt: skip
    path = save_checkpoint(tmp_path / "last.ckpt", model=model, optimizer=opt, step=3,
                           extra=extra)  # fmt: skip
    fresh, fresh_opt = trained_pair(optimizer, seed=1)
    assert not states_equal(fresh.state_dict(), model.state_dict())
    assert restore_checkpoint(path, model=fresh, optimizer=fresh_opt) == 3
    assert states_equal(fresh.state_dict(), model.state_dict())
    saved, loaded = opt.state_dict(), fresh_opt.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for k in saved["state"]:
        for name, value in saved["state"][k].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(loaded["state"][k][name]))
    ckpt = read_checkpoint(path)
    assert torch.equal(ckpt.extra["rng"]["loader"], gen_state)
    assert ckpt.extra["note"] == "x" and ckpt.extra["pos"] == 3
    assert ckpt.extra["nested"] == [1, (2.5, None)]
    assert ckpt.format_version == 1 and ckpt.torch_version == torch.__version__


def test_file_starts_with_magic_and_a_checked_header(tmp_path):
    model, _ = trained_pair()
    path = save_checkpoint(tmp_path / "c.ckpt", model=model, step=0)
    blob = path.read_bytes()
    magic, version, length, _ = HEADER.unpack_from(blob)
    assert magic == MAGIC == b"ODTLABCK" and version == 1
    assert length == len(blob) - HEADER.size == len(blob) - 52


def _saved(tmp_path):
    model, opt = trained_pair()
    return save_checkpoint(tmp_path / "last.ckpt", model=model, optimizer=opt, step=3), model


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:30], "truncated"),
        (lambda b: b[:5], "truncated"),
        (lambda b: b"", "empty"),
        (lambda b: b + b"junk", "unexpected bytes"),
        (lambda b: b[:-40] + bytes([b[-40] ^ 0x01]) + b[-39:], "checksum"),
        (lambda b: b[:100] + bytes([b[100] ^ 0x80]) + b[101:], "checksum"),
        (lambda b: b"NOTOURS!" + b[8:], "not an odtlab checkpoint"),
        (lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:], "format version 99"),
    ],
    ids=[
        "half",
        "in-header",
        "in-magic",
        "empty",
        "appended",
        "flip-end",
        "flip-early",
        "magic",
        "version",
    ],  # fmt: skip
)
def test_damaged_file_raises_corrupt_checkpoint_naming_the_file(tmp_path, damage, says):
    path, _ = _saved(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    victim, _ = trained_pair(seed=5)
    before = {k: v.clone() for k, v in victim.state_dict().items()}
    with pytest.raises(CorruptCheckpoint) as info:
        restore_checkpoint(path, model=victim)
    assert str(path) in str(info.value)
    assert says in str(info.value)
    assert states_equal(victim.state_dict(), before)  # nothing loaded


def test_a_plain_torch_save_file_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CorruptCheckpoint, match="plain torch.save file") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


class Sneaky:
    """An arbitrary object: weights_only loading must refuse to build it."""


def test_valid_checksum_around_a_pickled_object_is_still_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(encode({"format": "odtlab-checkpoint", "step": 1, "obj": Sneaky()}))
    with pytest.raises(CorruptCheckpoint, match="weights_only") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_checkpoint_of_another_model_is_refused_before_anything_changes(tmp_path):
    path, _ = _saved(tmp_path)
    other = mlp(in_features=16, hidden=(4,), num_classes=3, seed=0)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CorruptCheckpoint, match="different model"):
        restore_checkpoint(path, model=other)
    assert states_equal(other.state_dict(), before)


def test_extra_with_an_object_is_refused_at_save_time(tmp_path):
    model, _ = trained_pair()
    with pytest.raises(TypeError, match=r"extra\['bad'\] is a Sneaky"):
        save_checkpoint(tmp_path / "c.ckpt", model=model, step=1, extra={"bad": Sneaky()})
    assert not (tmp_path / "c.ckpt").exists()


def test_save_keeps_the_previous_checkpoint(tmp_path):
    model, _ = trained_pair()
    path = tmp_path / "last.ckpt"
    for step in (1, 2, 3):
        save_checkpoint(path, model=model, step=step)
    assert read_checkpoint(path).step == 3
    assert read_checkpoint(previous_path(path)).step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.prev"]


class _CutFile:
    """A file whose power goes after ``limit`` bytes: it writes them, then raises PowerLoss."""

    def __init__(self, real, limit):
        self.real, self.limit = real, limit

    def write(self, blob):
        self.real.write(bytes(blob)[: self.limit])
        self.real.flush()
        raise PowerLoss(f"power cut after {self.limit} bytes")

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.real.__exit__(*exc)


def test_crash_mid_save_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    model, _ = trained_pair()
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, model=model, step=1)
    save_checkpoint(path, model=model, step=2)
    good = path.read_bytes()
    real_fdopen = cf.os.fdopen
    for fraction in (0.0, 0.3, 0.99):
        limit = int(len(good) * fraction)
        monkeypatch.setattr(cf.os, "fdopen", lambda *a, limit=limit: _CutFile(real_fdopen(*a), limit))
        with pytest.raises(PowerLoss):
            save_checkpoint(path, model=model, step=3)
        monkeypatch.undo()
        assert path.read_bytes() == good
        assert read_checkpoint(previous_path(path)).step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.prev"]


def test_crash_at_the_rename_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    model, _ = trained_pair()
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, model=model, step=1)
    good = path.read_bytes()

    def dies(*args, **kwargs):
        raise OSError("disk unplugged")

    monkeypatch.setattr(cf.os, "replace", dies)
    with pytest.raises(OSError, match="unplugged"):
        save_checkpoint(path, model=model, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_restore_latest_falls_back_to_the_previous_one(tmp_path):
    model, _ = trained_pair()
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, model=model, step=4)
    save_checkpoint(path, model=model, step=8)
    path.write_bytes(path.read_bytes()[:200])  # the power died while copying
    with pytest.warns(UserWarning, match="previous checkpoint") as record:
        assert restore_latest(path, model=trained_pair(seed=3)[0]) == 4
    assert "truncated" in str(record[0].message)
    path.unlink()
    with pytest.warns(UserWarning):
        assert latest_checkpoint(path).step == 4


def test_a_damaged_file_never_replaces_a_good_prev(tmp_path):
    model, _ = trained_pair()
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, model=model, step=1)
    save_checkpoint(path, model=model, step=2)
    path.write_bytes(b"garbage")
    save_checkpoint(path, model=model, step=3)
    assert read_checkpoint(previous_path(path)).step == 1


def test_restore_latest_with_nothing_usable(tmp_path):
    model, _ = trained_pair()
    path = tmp_path / "last.ckpt"
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        restore_latest(path, model=model)
    path.write_bytes(b"")
    previous_path(path).write_bytes(b"ODTLAB")
    with pytest.raises(CorruptCheckpoint) as info:
        restore_latest(path, model=model)
    assert "empty" in str(info.value) and "truncated" in str(info.value)


_WRITER = textwrap.dedent(
    """
    import sys, torch
    from odtlab.train import save_checkpoint
    net = torch.nn.Linear(512, 512)
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            net.weight.add_(1.0)
        save_checkpoint(sys.argv[1], model=net, step=step)
        if step == 1:
            print("saved", flush=True)
    """
)


def test_killing_a_process_mid_save_never_leaves_a_bad_latest(tmp_path):
    path = tmp_path / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"saved"
        time.sleep(0.3)  # ~1 MB checkpoints, many saves per second: likely mid-write
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    ckpt = read_checkpoint(path)  # never a half-written file
    net = torch.nn.Linear(512, 512)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback needed: the latest file is good
        assert restore_latest(path, model=net) == ckpt.step >= 1
    assert torch.all(net.weight > ckpt.step - 1)

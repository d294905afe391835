"""Power cuts at any step, or in the middle of a save, lose nothing: resumed == uninterrupted."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_train_helpers import make_recipe

from odtlab import data, models
from odtlab.train import Trainer, simulate_power_loss
from odtlab.train.powerloss import same_weights
from odtlab.train.resume import PrivateRNG

STEPS, EVERY, BATCH = 12, 4, 128  # 1347 digits / 128 = 11 batches: the run crosses an epoch


@pytest.fixture(scope="module")
def digits():
    return data.digits("train")


def make_trainer(folder):
    # dropout draws random numbers, momentum carries state: both must survive the cut
    model = models.mlp(hidden=(32,), dropout=0.2, seed=0)
    return Trainer(model, make_recipe("full", lr=0.05, momentum=0.9), "stm32f746", steps=STEPS,
                   batch_size=BATCH, seed=3, checkpoint_dir=folder, checkpoint_every=EVERY,
                   progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def reference(digits, tmp_path_factory):
    trainer = make_trainer(tmp_path_factory.mktemp("reference"))
    trainer.fit(digits)
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(kill=st.integers(1, STEPS), during_save=st.booleans())
def test_any_power_cut_resumes_to_bit_identical_weights(
    digits, reference, tmp_path_factory, kill, during_save
):
    during_save = during_save and (kill % EVERY == 0 or kill == STEPS)
    result = simulate_power_loss(make_trainer, digits, kill_at_step=kill, during_save=during_save,
                                 compare=False,
                                 checkpoint_dir=tmp_path_factory.mktemp("cut"))  # fmt: skip
    same, bad = same_weights(result.final_state, reference)
    assert same, f"tensors differ after a cut at step {kill}: {bad}"
    expected_resume = (kill - 1 if during_save else kill) // EVERY * EVERY
    assert result.resumed_from == expected_resume
    assert result.report.steps == STEPS and len(result.report.loss_curve) == STEPS


def test_cut_right_after_a_save_redoes_nothing(digits, tmp_path):
    result = simulate_power_loss(make_trainer, digits, kill_at_step=8, checkpoint_dir=tmp_path)
    assert result.identical is True and result.mismatched == []
    assert result.resumed_from == 8 and result.redone_steps == 0
    assert "bit for bit" in str(result)


def test_cut_during_a_save_falls_back_to_the_save_before(digits, tmp_path):
    result = simulate_power_loss(make_trainer, digits, kill_at_step=8, during_save=True,
                                 checkpoint_dir=tmp_path)  # fmt: skip
    assert result.identical is True
    assert result.resumed_from == 4 and result.redone_steps == 4
    leftovers = [p.name for p in (tmp_path / "interrupted").iterdir()]
    assert sorted(leftovers) == ["last.ckpt", "last.ckpt.prev"]


def test_the_check_would_see_a_resume_that_forgets_the_random_state(digits, tmp_path, monkeypatch):
    original = Trainer._resume

    def forgetful(self, *args):
        state = original(self, *args)
        state.rng = PrivateRNG(self.seed + 1).state()  # dropout restarts: not bit-exact
        return state

    monkeypatch.setattr(Trainer, "_resume", forgetful)
    result = simulate_power_loss(make_trainer, digits, kill_at_step=6, checkpoint_dir=tmp_path)
    assert result.identical is False and result.mismatched
    assert "DIFFERENT" in str(result)


def test_bad_requests_are_explained(digits, tmp_path):
    with pytest.raises(ValueError, match="saves no checkpoint"):
        simulate_power_loss(make_trainer, digits, kill_at_step=5, during_save=True)
    with pytest.raises(ValueError, match="after the run's last step"):
        simulate_power_loss(make_trainer, digits, kill_at_step=STEPS + 1)
    (tmp_path / "old.ckpt").write_bytes(b"x")
    with pytest.raises(ValueError, match="not empty"):
        simulate_power_loss(make_trainer, digits, kill_at_step=2, checkpoint_dir=tmp_path)


def test_global_random_state_is_left_alone(digits, tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_trainer(tmp_path).fit(digits, data.digits("test"))  # loaders, dropout, evaluation
    assert torch.equal(torch.rand(3), expected)

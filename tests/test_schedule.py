"""When to train: usage traces, scheduling policies, windowed training that resumes exactly,
and federated availability read from the same traces (issue 16, item 3)."""

from __future__ import annotations

import numpy as np
import pytest

from odtlab import devices
from odtlab.errors import OdtlabError

USERS = list(devices.USER_TYPES)
JOB = devices.DailyJob(step_time_s=0.5, step_dynamic_j=2.0, steps_per_day=6000)


# ---------------------------------------------------------------- traces
@pytest.mark.parametrize("user", USERS)
def test_a_trace_is_reproducible_from_its_seed_and_differs_across_seeds(user):
    a, b, c = (devices.usage_trace(user, seed=s) for s in (3, 3, 4))
    assert a == b
    assert a != c
    assert len(a) == devices.traces.MINUTES_PER_WEEK and a.days == 7
    assert a.screen_on.dtype == bool and 0 <= a.battery_percent.min() <= a.battery_percent.max() <= 100
    assert not (a.screen_on & (a.battery_percent < 0)).any()


def test_user_types_differ_where_scheduling_cares():
    s = {u: devices.usage_trace(u, seed=0).summary() for u in USERS}
    assert s["heavy"]["screen_on_h"] > 2 * s["student"]["screen_on_h"]
    assert s["student"]["eligible_h"] > 2 * s["commuter"]["eligible_h"]
    night = devices.usage_trace("night-shift", seed=0)
    day_hours = night.hours % 24
    assert night.charging[(day_hours > 10) & (day_hours < 14)].mean() > 0.5  # charges by day


def test_five_minute_traces_sample_the_one_minute_trace():
    fine = devices.usage_trace("commuter", seed=1)
    coarse = devices.usage_trace("commuter", seed=1, minutes_per_sample=5)
    assert len(coarse) == len(fine) // 5 and coarse.days == 7
    assert np.array_equal(coarse.charging, fine.charging[::5])


def test_bad_trace_inputs_raise_clear_errors():
    with pytest.raises(devices.InvalidTrace, match="student") as info:
        devices.usage_trace("astronaut")
    assert isinstance(info.value, OdtlabError) and isinstance(info.value, ValueError)
    with pytest.raises(devices.InvalidTrace, match="1 or 5"):
        devices.usage_trace("student", minutes_per_sample=7)
    with pytest.raises(devices.InvalidTrace, match="overlapping"):
        devices.UsageTrace.from_events(100, charging=[(10, 40), (30, 50)])
    with pytest.raises(devices.InvalidTrace, match="overlapping"):
        devices.UsageTrace.from_events(100, screen=[(50, 60), (10, 20)])  # unsorted
    with pytest.raises(devices.InvalidTrace, match="start < end"):
        devices.UsageTrace.from_events(100, wifi=[(90, 120)])


def test_eligible_is_the_and_of_its_conditions():
    t = devices.usage_trace("student", seed=2)
    assert np.array_equal(t.eligible(), t.charging & ~t.screen_on & t.unmetered)
    assert np.array_equal(t.eligible(charging=False, idle=False, unmetered=False,
                                     min_battery_percent=50), t.battery_percent >= 50)  # fmt: skip


def test_a_trace_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    t = devices.usage_trace("heavy", seed=0, minutes_per_sample=5)
    ax = t.plot()
    from odtlab import viz

    viz.plot_usage(t, training=t.eligible())
    devices.simulate_schedule(t, "opportunistic", "phone-mid", JOB).plot()
    ax.figure.savefig(tmp_path / "week.png")
    assert (tmp_path / "week.png").stat().st_size > 0


# ---------------------------------------------------------------- policies
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("user", USERS)
def test_policies_never_train_outside_their_rule(user, seed):
    trace = devices.usage_trace(user, seed=seed, minutes_per_sample=5)
    for name, policy in devices.POLICIES.items():
        r = devices.simulate_schedule(trace, name, "phone-mid", JOB)
        assert not (r.training & ~policy.allowed(trace)).any(), name
        assert (r.battery_percent[r.training] >= policy.min_battery_percent).all(), name
        if policy.charging:
            assert r.battery_j.sum() == 0  # all from the charger
        if policy.idle:
            assert all(row["screen_on_min"] == 0 for row in r.per_day())
        assert (r.steps[~r.training] == 0).all() and (r.energy_j[~r.training] == 0).all()
        assert all(row["steps"] <= JOB.steps_per_day + 1e-6 for row in r.per_day())


def test_energy_accounting_sums_up():
    trace = devices.usage_trace("commuter", seed=0)
    phone = devices.get("phone-mid")
    r = devices.simulate_schedule(trace, "opportunistic", phone, JOB)
    rows = r.per_day()
    assert sum(row["energy_j"] for row in rows) == pytest.approx(r.energy_j.sum())
    assert sum(row["steps"] for row in rows) == pytest.approx(r.steps.sum())
    # dynamic energy of the steps plus idle power over the (stretched) training time
    assert r.energy_j.sum() >= r.steps.sum() * JOB.step_dynamic_j
    assert r.battery_j.sum() == pytest.approx(r.energy_j[~trace.charging].sum())
    percent = 100 * r.battery_j.sum() / (phone.battery_wh * 3600)
    assert sum(row["battery_percent"] for row in rows) == pytest.approx(percent)
    assert r.one_core.any() and not r.throttled.any()  # the warm rule keeps it below throttling
    eager = devices.simulate_schedule(trace, "train_now", phone, JOB)
    assert eager.throttled.any() and eager.battery_j.sum() > r.battery_j.sum()


def test_a_full_speed_minute_costs_what_the_simulator_says():
    trace = devices.UsageTrace.from_events(3, charging=[(0, 3)], ambient_c=22.0)
    job = devices.DailyJob.from_workload(
        devices.Workload(flops_per_step=2e9, bytes_moved_per_step=1e6, peak_bytes=1000),
        "phone-mid", steps_per_day=10**6)  # fmt: skip
    r = devices.simulate_schedule(trace, "while_charging", "phone-mid", job)
    one = devices.simulate(devices.Workload(2e9, 1e6, 1000, 1), "phone-mid", thermal=False)
    assert r.steps[0] == pytest.approx(60 / one.total_time_s)
    assert r.energy_j[0] == pytest.approx(r.steps[0] * one.total_energy_j)


def test_schedules_are_reproducible_and_unknown_policies_are_refused():
    trace = devices.usage_trace("heavy", seed=5, minutes_per_sample=5)
    a = devices.simulate_schedule(trace, "opportunistic", "phone-flagship", JOB)
    b = devices.simulate_schedule(trace, "opportunistic", "phone-flagship", JOB)
    assert a.per_day() == b.per_day() and np.array_equal(a.temperature_c, b.temperature_c)
    with pytest.raises(devices.UnknownPolicy, match="charging_idle_unmetered"):
        devices.simulate_schedule(trace, "whenever", "phone-mid", JOB)
    rows = devices.compare_policies([trace], list(devices.POLICIES), "phone-flagship", JOB)
    assert [r["policy"] for r in rows] == list(devices.POLICIES)
    assert rows[-1]["steps"] == pytest.approx(a.mean_per_day()["steps"])


def test_without_checkpoints_a_closing_window_loses_its_steps():
    # two 10-minute charging windows; the job needs 15 minutes of steps
    trace = devices.UsageTrace.from_events(60, charging=[(0, 10), (30, 40)])
    job = devices.DailyJob(step_time_s=1.0, step_dynamic_j=0.1, steps_per_day=900)
    keeps = devices.simulate_schedule(trace, "while_charging", "phone-mid", job)
    forgets = devices.Policy("no-checkpoint", charging=True, resumes=False)
    loses = devices.simulate_schedule(trace, forgets, "phone-mid", job)
    assert keeps.per_day()[0]["steps"] == pytest.approx(900) and keeps.per_day()[0]["windows"] == 2
    assert loses.per_day()[0]["steps"] == pytest.approx(0)  # each window restarts from scratch
    assert loses.energy_j.sum() > keeps.energy_j.sum()


# ---------------------------------------------------------------- windows that resume exactly
def _digits(n: int = 256):
    import torch

    from odtlab import data

    return torch.utils.data.Subset(data.digits("train"), range(n))


def test_a_run_cut_into_windows_equals_an_uninterrupted_one(tmp_path):
    import torch

    from odtlab import models, train

    def make(folder):
        return train.Trainer(models.mlp(seed=0), device=None, steps=10, batch_size=16,
                             checkpoint_dir=folder, checkpoint_every=100, progress=False)  # fmt: skip

    # 64 examples are 4 batches: the second window crosses two epochs' ends
    run = train.train_in_windows(make, _digits(64), [3, 7], folder=tmp_path)
    assert run.window_ends == [3, 10]
    ref = run.reference.model.state_dict()
    assert run.identical and all(torch.equal(v, ref[k]) for k, v in run.final_state.items())
    assert run.trainer.report.loss_curve == run.reference.report.loss_curve
    with pytest.raises(ValueError, match="not empty"):
        train.train_in_windows(make, _digits(64), [5, 5], folder=tmp_path)


def _fp16_windows(folder, windows, compare=True):
    import torch

    from odtlab import models, recipes, train

    def loss(outputs, targets):  # large enough that fp16 gradients overflow at first
        return 1000.0 * torch.nn.functional.cross_entropy(outputs, targets)

    recipe = recipes.Recipe(recipes.MixedPrecision("fp16"), recipes.SGD(lr=5e-5))

    def make(where):
        return train.Trainer(models.mlp(seed=0), recipe, device=None, loss_fn=loss, steps=12,
                             batch_size=16, checkpoint_dir=where, checkpoint_every=100,
                             progress=False)  # fmt: skip

    return train.train_in_windows(make, _digits(), windows, folder=folder, compare=compare), recipe


def test_fp16_loss_scaling_resumes_with_its_scale(tmp_path, monkeypatch):
    from odtlab import recipes, train

    run, recipe = _fp16_windows(tmp_path / "a", [9, 3])
    part = recipe.part("precision")
    saved = train.read_checkpoint(tmp_path / "a" / "windows" / "last.ckpt").extra["precision"]
    # the first eight steps overflowed and halved the scale from 2**16 to 2**8
    assert saved["loss_scaler"]["scale"] == 256.0
    assert part.scaler(run.trainer.optimizer).get_scale() == 256.0
    assert part.scaler(run.reference.optimizer).get_scale() == 256.0
    assert run.identical, run.mismatched
    # without the scaler's state the resumed run restarts at 2**16, skips steps, and differs
    monkeypatch.setattr(recipes.MixedPrecision, "load_state_dict", lambda self, opt, state: None)
    forgetful, _ = _fp16_windows(tmp_path / "b", [9, 3], compare=False)
    same, _ = train.same_weights(forgetful.final_state, run.final_state)
    assert not same


# ---------------------------------------------------------------- federated availability
def test_fl_clients_take_their_eligibility_from_a_usage_trace():
    from odtlab import fl, models

    digits = _digits(64)
    # eligible (charging, idle, Wi-Fi) from minute 60 to 120 only: round 2 of hourly rounds
    trace = devices.UsageTrace.from_events(180, charging=[(60, 120)], wifi=[(0, 180)])
    phone = fl.Client("phone", digits, availability=trace)
    always = fl.Client("always", digits, availability=1.0)
    never = fl.Client("never", digits, availability=0.0)
    # round 4 starts at minute 180, which wraps round to minute 0; round 5 to minute 60
    assert [phone.eligible_in_round(r, 0.0) for r in (1, 2, 3, 4, 5)] == [False, True, False, False, True]
    assert always.eligible_in_round(1, 0.99) and not never.eligible_in_round(1, 0.0)
    run = fl.run_federation(models.mlp(seed=0), [phone, always, never], fl.FedAvg(), rounds=3,
                            batch_size=32, progress=False)  # fmt: skip
    assert [r.trained for r in run.rounds] == [("always",), ("phone", "always"), ("always",)]
    week = devices.usage_trace("student", seed=0)
    student = fl.Client("student", digits, availability=week, round_minutes=30)
    rounds = [student.eligible_in_round(r, 0.0) for r in range(1, 7 * 48 + 1)]
    assert rounds == list(week.eligible()[::30])
    with pytest.raises(ValueError, match="probability"):
        fl.Client("bad", digits, availability=1.5)

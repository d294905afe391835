"""Pretrain the capstone tutor's population models on simulated students; ship them.

The tutor app of chapter 9 arrives on a phone with a *population* model: one
trained on many students, none of them the phone's owner. This script trains
the two shipped ones on a simulated population and writes them beside the
other shipped weights:

* ``kt-mlp``: :func:`odtlab.models.tracing_mlp` on the context features of
  :func:`odtlab.data.tracing_features` (topic, attempts, days since practice,
  difficulty; nothing about the student's record);
* ``kt-gru``: :func:`odtlab.models.tracing_gru` on the last 16 interactions
  of :func:`odtlab.data.tracing_sequences`.

Recipe (seeded; torch's global random state is forked and restored): the
population is ``simulate_students(300, days=28, seed=0)``; Adam, learning rate
3e-3, batch 128, 3,000 steps, cross-entropy, fp32. The AUC in the metadata is
measured on another cohort, ``simulate_students(100, days=28, seed=1)``, all
interactions pooled.

Run it from the repository root (about a minute on 2 cores)::

    python scripts/pretrain_tutor.py

This script imports :mod:`odtlab.data` and :mod:`odtlab.models`; the library
does not import it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score

from odtlab.data import simulate_students, tracing_features, tracing_sequences
from odtlab.models import tracing_gru, tracing_mlp

WEIGHTS = Path(__file__).resolve().parents[1] / "odtlab" / "models" / "weights"
POPULATION = {"n": 300, "days": 28, "seed": 0}
HELD_OUT = {"n": 100, "days": 28, "seed": 1}
TRAINING = {"optimizer": "Adam", "lr": 3e-3, "batch_size": 128, "steps": 3000}


def _train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    started = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), TRAINING["lr"])
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(TRAINING["steps"]):
        i = torch.randint(len(y), (TRAINING["batch_size"],), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - started


def main(out: Path) -> None:
    population = simulate_students(
        POPULATION["n"], days=POPULATION["days"], seed=POPULATION["seed"]
    )
    held_out = simulate_students(HELD_OUT["n"], days=HELD_OUT["days"], seed=HELD_OUT["seed"])
    kinds = {
        "kt-mlp": ("odtlab.models.tracing_mlp", tracing_features, {}, "in_features"),
        "kt-gru": ("odtlab.models.tracing_gru", tracing_sequences, {"length": 16}, "step_features"),
    }
    for name, (builder, features, options, width) in kinds.items():
        train, test = features(population, **options), features(held_out, **options)
        arch = {width: int(train.x.shape[-1])} | ({"hidden": 64} if name == "kt-gru" else {})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = (tracing_mlp if name == "kt-mlp" else tracing_gru)(**arch, seed=0)
            seconds = _train(model, train.x, train.y)
        model.eval()
        with torch.no_grad():
            p = model(test.x).softmax(-1)[:, 1].numpy()
        auc = float(roc_auc_score(test.y.numpy(), p))
        torch.save(model.state_dict(), out / f"{name}.pt")
        meta = {
            "name": name, "builder": builder, "architecture": arch,
            "data": {"function": f"odtlab.data.{features.__name__}", "options": options,
                     "population": POPULATION, "held_out": HELD_OUT, "columns": list(train.names)},
            "training": TRAINING, "seed": 0, "train_seconds": round(seconds, 1),
            "threads": torch.get_num_threads(), "torch_version": str(torch.__version__),
            "date": dt.date.today().isoformat(), "storage_dtype": "fp32",
            "file_bytes": (out / f"{name}.pt").stat().st_size, "held_out_auc": round(auc, 4),
        }  # fmt: skip
        (out / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"{name}: held-out AUC {auc:.3f}, {seconds:.1f} s, {meta['file_bytes']} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    main(args.out)

"""How faithful is odtlab.memory? Analytic vs measured vs torch.profiler, per zoo model.

For every zoo model (small sizes, CPU) it prints one line:

* activations: analytic formulas (on ``meta``) vs measured (autograd's
  saved-tensor hooks), and their ratio (1.000 means equal to the byte);
* training peak: the timeline model vs ``torch.profiler`` on one real SGD
  step (and Adam), with the ratio model / profiler;
* inference peak: the same under ``torch.no_grad()``.

Then the wall time of the analytic report of a 224x224 MobileNetV2 with
batch 8 on the ``meta`` device.

Run: ``python benchmarks/memory_fidelity.py``
"""

from __future__ import annotations

import time

import torch

from odtlab import memory, models

SMALL: dict[str, tuple[dict, dict]] = {
    "mlp": ({}, {}),
    "cnn": ({}, {"resolution": 16}),
    "mobilenetv2": ({"width_mult": 0.35, "num_classes": 10}, {"resolution": 32}),
    "mcunet": ({}, {"resolution": 32}),
    "transformer": ({"seq_len": 16}, {}),
}


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; bytes; batch 2")
    print(
        f"{'model':<12} {'act analytic':>12} {'act measured':>12} {'ratio':>6} | "
        f"{'peak model':>11} {'peak prof':>11} {'ratio':>6} | "
        f"{'adam model':>11} {'adam prof':>11} {'ratio':>6} | "
        f"{'inf model':>10} {'inf prof':>10} {'ratio':>6}"
    )
    for name in models.available():
        build_kw, batch_kw = SMALL.get(name, ({}, {}))
        model = models.build(name, **build_kw)
        batch = models.example_batch(name, 2, **batch_kw, **build_kw)
        analytic = memory.analytic_saved_tensors(model, batch).total_bytes
        measured = memory.measure_saved_tensors(model, batch).total_bytes
        sgd = memory.profile_training(model, batch, optimizer="sgd", flops=False)
        adam = memory.profile_training(model, batch, optimizer="adam", flops=False)
        prof_sgd = memory.profiled_training_peak(model, batch, optimizer="sgd")
        prof_adam = memory.profiled_training_peak(model, batch, optimizer="adam")
        prof_inf = memory.profiled_inference_peak(model, batch[0])
        print(
            f"{name:<12} {analytic:>12} {measured:>12} {analytic / measured:>6.3f} | "
            f"{sgd.totals['peak']:>11} {prof_sgd:>11} {sgd.totals['peak'] / prof_sgd:>6.3f} | "
            f"{adam.totals['peak']:>11} {prof_adam:>11} {adam.totals['peak'] / prof_adam:>6.3f} | "
            f"{sgd.inference_peak:>10} {prof_inf:>10} {sgd.inference_peak / prof_inf:>6.3f}"
        )

    model = models.build("mobilenetv2", device="meta")
    batch = models.example_batch("mobilenetv2", 8, device="meta")
    memory.analytic_report(model, batch)  # warm-up (imports, first-call caches)
    start = time.perf_counter()
    report = memory.analytic_report(model, batch)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    memory.analytic_report(model, batch, flops=False)
    seconds_no_flops = time.perf_counter() - start
    print(
        f"\nMobileNetV2 224x224, batch 8, meta device: analytic report in {seconds:.2f} s "
        f"({seconds_no_flops:.2f} s without FLOPs); activations "
        f"{memory.format_bytes(report.totals['activations'])}, peak "
        f"{memory.format_bytes(report.totals['peak'])}, "
        f"{report.flops['total'] / 1e9:.1f} GFLOPs per step"
    )


if __name__ == "__main__":
    main()

"""odtlab.memory: how many bytes does training take, and where do they go?

Honest measurement is the spine of the course, so every number here comes
from PyTorch itself or is checked against it:

* **activations** are *measured* by asking autograd which tensors it saves
  for backward (:func:`measure_saved_tensors`), and *predicted* by per-layer
  formulas on the ``meta`` device (:func:`analytic_saved_tensors`); the
  tests hold the two equal to the byte on every zoo model, in fp32 and in
  mixed precision (``autocast=torch.bfloat16``);
* **optimizer state** is measured from a real optimizer after one step;
* the **peak** comes from a timeline of one training step, checked against
  ``torch.profiler`` on the CPU (:mod:`odtlab.memory.torch_profiler`);
* **FLOPs** come from ``torch.utils.flop_counter.FlopCounterMode``.

Start with :func:`profile_training`::

    >>> from odtlab import models, memory
    >>> model = models.build("cnn")
    >>> report = memory.profile_training(model, models.example_batch("cnn", 8))
    >>> report.totals["activations"] > 0
    True

What PyTorch 2.13 keeps for backward (CPU, fp32), when anything in the
layer needs grad:

==============================  ============================================
layer                           kept (activations only; weights excluded)
==============================  ============================================
Linear                          input (2-D view), only if weight trainable
Conv2d (dense, depthwise)       input, whenever anything needs grad
BatchNorm2d (train)             input + mean + invstd (C floats each)
ReLU / ReLU(inplace)            output (in place: the same storage)
ReLU6 / Hardtanh                input; in place: a *clone* of the input
GELU, SiLU, Hardswish           input
Sigmoid, Tanh, Softmax          output
MaxPool2d                       input + int64 indices (output shape)
AvgPool2d                       input
AdaptiveAvgPool2d(1)            nothing (it is a mean)
Dropout (train, p > 0)          mask, same dtype as the input
Flatten, views, residual add    nothing
LayerNorm                       input + mean + rstd (one float per row)
GroupNorm                       input + mean + rstd (one float per sample
                                and group)
Embedding                       indices, only if the table is trainable
a @ b (attention)               operands, copied when split heads are
                                not viewable as a 3-D batch
cross-entropy                   log-softmax + targets + 4-byte total weight
==============================  ============================================

Mixed precision (``autocast=torch.bfloat16`` or ``torch.float16``, the
forward of :class:`odtlab.recipes.MixedPrecision`), CPU policy:

==============================  ============================================
layer                           kept under autocast
==============================  ============================================
Conv2d, Linear, a @ b           16-bit copies of input and weight (as
                                above); the weight copy is not a parameter,
                                so it is an activation; a trainable weight
                                is cast once per forward, a frozen one (and
                                any activation) at every use
BatchNorm, ReLU, ReLU6, GELU,   as above, in the dtype of their input (16
softmax, pooling, dropout       bits after a conv); statistics stay fp32
LayerNorm                       as above: the CPU does not cast it, so an
                                fp32 residual stream stays fp32
residual add                    nothing; 16-bit + fp32 gives fp32
cross-entropy, mse_loss         run in fp32: an fp32 log-softmax (the
                                logits are cast up); mse an fp32 input copy
==============================  ============================================

The full policy, and how it is replayed on ``meta`` (where ``torch.autocast``
does nothing), is in :mod:`odtlab.memory.autocast`.

Modules, one job each: ``saved`` (measured activations), ``formulas`` and
``registry`` (per-layer formulas) with ``analytic`` (the meta-device
prediction), ``autocast`` (mixed precision's casts), ``engine`` (the memory-optimised accounting),
``optimizer_state``, ``timeline`` and ``inference`` (peak memory over a
step), ``workspace`` (CPU kernel scratch), ``profiler`` (the real
``torch.profiler`` peak), ``flops``, ``report``/``plots``/``compare``
(what a learner reads), ``paper_rules`` (the papers' own counting rules:
TinyTL's profiler, the 256 KB paper's sparse-update count), ``profiling``
(:func:`profile_training`), and
``trace``/``records`` (the recorded forward pass all of them share).

Devices. The formulas predict the device the model lives on, the CPU for a
model on ``meta``. On CUDA (checked with torch 2.11 on an H100) the saved
activations of every zoo model agree with the formulas to the byte too,
once dropout's mask is counted as CUDA keeps it (``bool``, 1 byte per
element, instead of the CPU's fp32), and the timeline's peak came within
2.5 % of ``torch.cuda.max_memory_allocated`` on the zoo at small sizes,
except that cuBLAS grabs a ~32 MiB workspace at its first use, which the
timeline does not model.

Known limits: on ``meta`` an eval-mode BatchNorm reports per-channel
statistics where the CPU keeps empty ones, so *measured on meta* differs
from the CPU there (train mode agrees; the formulas follow the CPU); the
timeline's kernel-scratch rules are those of CPU oneDNN kernels (left out
for CUDA models); the profiler check (:mod:`odtlab.memory.torch_profiler`) runs
on the CPU only. Under autocast the activations are exact, but the timeline
does not model the short-lived casts (16-bit copies nobody keeps, the
16-bit gradients cast back to fp32 in backward): against ``torch.profiler``
(bf16, batch 2, the fidelity sizes) its peak is 16 % low for MCUNet, 10 %
low for the MLP, within 5 % for the others; and the analytic model knows
the CPU autocast policy only (it refuses autocast for a CUDA model).
"""

from odtlab.memory.analytic import analytic_saved_tensors, predict_saved_tensors
from odtlab.memory.compare import AccountingComparison, compare_accountings
from odtlab.memory.engine import engine_saved_tensors, index_bytes, mask_bytes
from odtlab.memory.errors import AnalyticUnsupported, MemoryArgumentError
from odtlab.memory.extend import engine_fresh, engine_int8, engine_mask, register_layer
from odtlab.memory.flops import training_flops
from odtlab.memory.optimizer_state import OptimizerState, measure_optimizer_state
from odtlab.memory.paper_rules import (
    PAPER_RULES,
    PaperMemory,
    paper_report,
    sparse_update_memory,
    tinytl_memory,
    tinytl_parameter_bytes,
)
from odtlab.memory.records import SavedTensor
from odtlab.memory.report import LayerMemory, TrainingMemoryReport
from odtlab.memory.saved import SavedActivations, measure_saved_tensors, saved_activation_bytes
from odtlab.memory.timeline import Timeline, TimelineEvent
from odtlab.memory.torch_profiler import profiled_inference_peak, profiled_training_peak
from odtlab.memory.training import analytic_report, profile_training
from odtlab.memory.units import format_bytes

__all__ = [
    "profile_training",
    "analytic_report",
    "compare_accountings",
    "AccountingComparison",
    "TrainingMemoryReport",
    "LayerMemory",
    "measure_saved_tensors",
    "saved_activation_bytes",
    "analytic_saved_tensors",
    "predict_saved_tensors",
    "engine_saved_tensors",
    "SavedActivations",
    "SavedTensor",
    "measure_optimizer_state",
    "OptimizerState",
    "training_flops",
    "Timeline",
    "TimelineEvent",
    "profiled_training_peak",
    "profiled_inference_peak",
    "format_bytes",
    "mask_bytes",
    "index_bytes",
    "MemoryArgumentError",
    "AnalyticUnsupported",
    "register_layer",
    "engine_int8",
    "engine_mask",
    "engine_fresh",
    "PAPER_RULES",
    "PaperMemory",
    "paper_report",
    "tinytl_memory",
    "tinytl_parameter_bytes",
    "sparse_update_memory",
]

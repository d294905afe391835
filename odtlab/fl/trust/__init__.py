"""odtlab.fl.trust: privacy and secure aggregation for federations (chapter 7).

Needs ``pip install -e ".[trust]"`` (Opacus 1.6 for the accountant and
per-sample gradients, ``cryptography`` for X25519); without it, importing
this package raises :class:`~odtlab.fl.TrustNotInstalled` with that command.
It is imported on demand (``from odtlab.fl import trust``), so ``import
odtlab`` stays fast and works without the extra. The robust aggregators and
the attacks need nothing more and live in :mod:`odtlab.fl` itself.

* Client-level differential privacy (:mod:`~odtlab.fl.trust.privacy`):
  :class:`DPFedAvg` (clipping, Gaussian noise, adaptive clipping), accounted by
  Opacus's RDP accountant: :func:`epsilon_after`, :func:`noise_for_epsilon`.
* Sample-level DP-SGD on the device (:mod:`~odtlab.fl.trust.dpsgd`):
  :func:`dp_sgd_train` with Opacus, :func:`dp_sgd_memory` (what per-sample
  gradients cost and whether the step still fits a device).
* Secure aggregation (:mod:`~odtlab.fl.trust.secagg`, Bonawitz et al. 2017):
  :func:`secure_sum` with its four rounds as functions, :class:`SecureFedAvg`,
  :func:`secagg_cost`; Shamir sharing in :mod:`~odtlab.fl.trust.shamir`.

Examples
--------
>>> from odtlab.fl import trust
>>> round(trust.epsilon_after(1.0, sample_rate=0.01, rounds=1000, delta=1e-5), 1)
2.1
"""

from odtlab.fl.trust import requirement  # first: a clear error when the extra is missing
from odtlab.fl.trust.dpsgd import (
    DPSGDMemory,
    DPSGDResult,
    dp_sgd_memory,
    dp_sgd_train,
    per_sample_gradient_bytes,
)
from odtlab.fl.trust.privacy import DPFedAvg, epsilon_after, noise_for_epsilon
from odtlab.fl.trust.secagg import (
    MODULUS,
    SCALE,
    ClientKeys,
    SecAggCost,
    SecureSum,
    advertise_keys,
    decode,
    encode,
    mask_input,
    pairwise_seed,
    prg,
    secagg_cost,
    secure_sum,
    share_keys,
    unmask,
)
from odtlab.fl.trust.secure_fedavg import SecureFedAvg
from odtlab.fl.trust.shamir import PRIME, combine_shares, lagrange_at_zero, split_secret

__all__ = [
    "requirement",
    "DPFedAvg",
    "epsilon_after",
    "noise_for_epsilon",
    "dp_sgd_train",
    "dp_sgd_memory",
    "per_sample_gradient_bytes",
    "DPSGDMemory",
    "DPSGDResult",
    "MODULUS",
    "SCALE",
    "encode",
    "decode",
    "prg",
    "ClientKeys",
    "advertise_keys",
    "share_keys",
    "pairwise_seed",
    "mask_input",
    "unmask",
    "secure_sum",
    "SecureSum",
    "secagg_cost",
    "SecAggCost",
    "SecureFedAvg",
    "PRIME",
    "split_secret",
    "combine_shares",
    "lagrange_at_zero",
]

"""Secure aggregation: the server learns the sum of the updates and nothing about any one of them.

The protocol of Bonawitz et al. ("Practical Secure Aggregation for
Privacy-Preserving Machine Learning", CCS 2017), simulated in one process
with real cryptography, in its four rounds:

0. **advertise keys**: each client ``u`` makes an X25519 key pair and
   publishes the public key (:func:`advertise_keys`);
1. **share keys**: ``u`` splits its secret key ``sk_u`` and a fresh
   self-mask seed ``b_u`` into ``n`` Shamir shares with threshold ``t``
   (:mod:`odtlab.fl.trust.shamir`) and gives one of each to every client
   (:func:`share_keys`; the paper encrypts them for the recipient and routes
   them through the server, a channel simulated here by handing them over);
2. **masked input**: every pair ``u, v`` agrees on a seed
   ``s_uv = HKDF(X25519(sk_u, pk_v))``, the same on both sides. ``u``
   encodes its update in fixed point modulo ``2**32`` (:func:`encode`) and
   sends ``y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)``
   (:func:`mask_input`). Each pairwise mask is added by one side and
   subtracted by the other, so they cancel *exactly* in the sum (integers
   modulo ``2**32`` wrap, never round); ``y_u`` alone is uniformly random;
3. **unmasking** (:func:`unmask`): for a client ``v`` that dropped out
   after round 1, ``t`` survivors' shares rebuild ``sk_v`` and the server
   removes ``v``'s pairwise masks from the survivors' sum; for a survivor
   ``u`` they rebuild ``b_u`` and the server removes its self-mask. The self
   mask is why the server cannot unmask a slow client it called dropped:
   it never gets both ``sk_u`` and ``b_u`` of one client (double masking).
   With fewer than ``t`` survivors nothing can be rebuilt:
   :class:`~odtlab.fl.errors.TooManyDropouts`.

:class:`SecureFedAvg` runs FedAvg through the protocol in a federation;
:func:`secagg_cost` measures bytes and seconds per client against ``n``.
Robust aggregators (median, Krum) need the individual updates that secure
aggregation hides: the two do not combine as they are.

Examples
--------
>>> import numpy as np
>>> xs = [encode(torch.tensor([0.5, -1.0])), encode(torch.tensor([0.25, 2.0])), encode(torch.tensor([1.0, 0.0]))]
>>> out = secure_sum(xs, threshold=2, dropped=[2], seed=0)
>>> decode(out.total)
tensor([0.7500, 1.0000], dtype=torch.float64)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from odtlab.fl.errors import EncodingOverflow, TooManyDropouts
from odtlab.fl.trust.shamir import PRIME, Share, lagrange_at_zero, share_bytes, split_secret

__all__ = [
    "MODULUS", "SCALE", "encode", "decode", "prg", "ClientKeys", "advertise_keys", "share_keys",
    "pairwise_seed", "mask_input", "unmask", "SecureSum", "secure_sum", "SecAggCost", "secagg_cost",
]  # fmt: skip

MODULUS = 2**32
#: Default fixed-point scale: 16 fractional bits, a resolution of 1.5e-5.
SCALE = 2**16


def encode(x: torch.Tensor, scale: int = SCALE) -> np.ndarray:
    """``round(x * scale) mod 2**32`` as ``uint32``: fixed point in two's complement.

    Sums of encodings decode to the sum of the values as long as that sum
    stays within ``+-2**31 / scale`` (32768 with the default scale).

    Raises
    ------
    EncodingOverflow
        When a value is outside ``+-2**31 / scale``.

    Examples
    --------
    >>> encode(torch.tensor([1.0, -1.0]), scale=4)
    array([         4, 4294967292], dtype=uint32)
    """
    ints = torch.round(x.detach().double().flatten() * scale)
    if ints.numel() and float(ints.abs().max()) >= 2**31:
        raise EncodingOverflow(
            f"a value of {float(x.abs().max()):.4g} does not fit fixed point with scale {scale} "
            f"(limit {2**31 / scale:.4g}): lower the scale, or clip the updates first"
        )
    return (ints.to(torch.int64).numpy() % MODULUS).astype(np.uint32)


def decode(v: np.ndarray, scale: int = SCALE) -> torch.Tensor:
    """The float64 values of fixed-point ``uint32`` numbers (the inverse of :func:`encode`)."""
    signed = np.asarray(v, dtype=np.uint32).view(np.int32).astype(np.float64)
    return torch.from_numpy(signed / scale)


def prg(seed: bytes, length: int) -> np.ndarray:
    """``length`` pseudo-random ``uint32`` from a 32-byte seed (NumPy's PCG64 seeded with it).

    The same seed gives the same mask on every machine; without the seed
    the output is indistinguishable from uniform. (PCG64 is a statistical
    generator, not a cryptographic one; a deployment uses AES in counter
    mode, as the paper does.)
    """
    return np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big"))).integers(
        0, MODULUS, size=length, dtype=np.uint32
    )


@dataclass
class ClientKeys:
    """One client's secrets for a round: its X25519 key and its self-mask seed (32 bytes each)."""

    index: int
    secret_key: X25519PrivateKey
    self_seed: bytes

    @property
    def public_key(self) -> bytes:
        """The 32 bytes published in round 0."""
        return self.secret_key.public_key().public_bytes_raw()


def advertise_keys(n: int, rng: np.random.Generator | None = None) -> list[ClientKeys]:
    """Round 0: ``n`` clients' key pairs and self-mask seeds (from ``rng``, or the OS without one)."""
    out = []
    for i in range(n):
        raw = rng.bytes(32) if rng is not None else None
        sk = X25519PrivateKey.from_private_bytes(raw) if raw else X25519PrivateKey.generate()
        seed = rng.bytes(32) if rng is not None else os.urandom(32)
        out.append(ClientKeys(index=i, secret_key=sk, self_seed=seed))
    return out


def share_keys(keys: Sequence[ClientKeys], threshold: int, rng: np.random.Generator) -> list[list[tuple[Share, Share]]]:
    """Round 1: ``held[v][u]`` is the pair (share of ``sk_u``, share of ``b_u``) that client ``v`` holds."""
    n = len(keys)
    held: list[list[tuple[Share, Share]]] = [[] for _ in range(n)]
    for k in keys:
        sk_shares = split_secret(int.from_bytes(k.secret_key.private_bytes_raw(), "big"), n=n, threshold=threshold, rng=rng)
        b_shares = split_secret(int.from_bytes(k.self_seed, "big"), n=n, threshold=threshold, rng=rng)
        for v in range(n):
            held[v].append((sk_shares[v], b_shares[v]))
    return held


def pairwise_seed(secret_key: X25519PrivateKey, other_public: bytes) -> bytes:
    """``s_uv``: 32 bytes from X25519 key agreement and HKDF-SHA256; symmetric in ``u, v``."""
    shared = secret_key.exchange(X25519PublicKey.from_public_bytes(other_public))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"odtlab secagg pairwise mask").derive(shared)


def mask_input(x: np.ndarray, keys: ClientKeys, public_keys: Sequence[bytes]) -> np.ndarray:
    """Round 2: ``y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv)  (mod 2**32)``."""
    y = x.astype(np.uint32) + prg(keys.self_seed, len(x))  # uint32 arithmetic wraps modulo 2**32
    for v, pk in enumerate(public_keys):
        if v == keys.index:
            continue
        mask = prg(pairwise_seed(keys.secret_key, pk), len(x))
        y = y + mask if keys.index < v else y - mask
    return y


def _recover(shares_by_owner: list[list[Share]], threshold: int) -> list[int]:
    """Each owner's secret from the first ``threshold`` holders' shares (same holders for all)."""
    weights = lagrange_at_zero([x for x, _ in shares_by_owner[0][:threshold]])
    return [sum(w * y for w, (_, y) in zip(weights, shares[:threshold], strict=True)) % PRIME for shares in shares_by_owner]


def unmask(
    masked: dict[int, np.ndarray],
    public_keys: Sequence[bytes],
    held: Sequence[Sequence[tuple[Share, Share]]],
    threshold: int,
) -> np.ndarray:
    """Round 3: the sum of the survivors' inputs from their masked vectors and ``t`` survivors' shares.

    Parameters
    ----------
    masked : dict of int to uint32 array
        ``y_u`` of every client ``u`` that sent one (the survivors).
    public_keys : sequence of bytes
        Every client's public key from round 0.
    held : ``held[v][u]``
        The shares of :func:`share_keys`; only survivors' rows are read.
    threshold : int

    Raises
    ------
    TooManyDropouts
        When fewer than ``threshold`` clients survived.
    """
    n, survivors = len(public_keys), sorted(masked)
    if len(survivors) < threshold:
        raise TooManyDropouts(len(survivors), threshold, n)
    dropped = [v for v in range(n) if v not in masked]
    helpers = survivors[:threshold]
    total = np.zeros_like(masked[survivors[0]])
    for u in survivors:
        total = total + masked[u]
    seeds = _recover([[held[h][u][1] for h in helpers] for u in survivors], threshold)
    for b in seeds:  # every survivor's self-mask
        total = total - prg(b.to_bytes(32, "big"), len(total))
    keys = _recover([[held[h][v][0] for h in helpers] for v in dropped], threshold) if dropped else []
    for v, sk in zip(dropped, keys, strict=True):
        secret = X25519PrivateKey.from_private_bytes(sk.to_bytes(32, "big"))
        for u in survivors:  # u added +PRG(s_uv) if u < v, and -PRG(s_uv) if u > v: undo it
            mask = prg(pairwise_seed(secret, public_keys[u]), len(total))
            total = total - mask if u < v else total + mask
    return total


@dataclass(frozen=True)
class SecureSum:
    """What one run of the protocol gives: the sum, what the server saw, and its cost.

    Attributes
    ----------
    total : uint32 array
        The survivors' inputs summed modulo ``2**32``.
    survivors : tuple of int
    masked : dict of int to uint32 array
        Every ``y_u`` the server received.
    client_seconds : float
        Mean measured compute time per client (key generation, sharing, masking).
    server_seconds : float
        Measured time of the unmasking.
    """

    total: np.ndarray
    survivors: tuple[int, ...]
    masked: dict[int, np.ndarray]
    client_seconds: float
    server_seconds: float


def secure_sum(
    inputs: Sequence[np.ndarray], *, threshold: int, dropped: Sequence[int] = (), seed: int | None = None
) -> SecureSum:
    """Run the four rounds on ``inputs`` (``uint32`` vectors, one per client).

    Clients in ``dropped`` take part in rounds 0 and 1 and leave before
    sending their masked input; every survivor also answers round 3 (the
    paper's further dropouts during unmasking are not simulated: only ``t``
    of the survivors' answers are used anyway). ``seed`` makes keys, seeds
    and shares repeat (``None``: fresh keys from the operating system).

    Raises
    ------
    TooManyDropouts
        When more than ``n - threshold`` clients dropped.
    """
    n = len(inputs)
    if n < 1:
        raise ValueError("secure_sum needs at least one client's input")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= n:
        raise ValueError(f"secure_sum(threshold={threshold!r}): give an int in 1..{n} (the number of clients)")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    keys = advertise_keys(n, rng if seed is not None else None)
    public = [k.public_key for k in keys]
    held = share_keys(keys, threshold, rng)
    gone = set(int(d) for d in dropped)
    masked = {u: mask_input(inputs[u], keys[u], public) for u in range(n) if u not in gone}
    client_s = (time.perf_counter() - start) / n
    start = time.perf_counter()
    total = unmask(masked, public, held, threshold)
    return SecureSum(total=total, survivors=tuple(sorted(masked)), masked=masked,
                     client_seconds=client_s, server_seconds=time.perf_counter() - start)  # fmt: skip


@dataclass(frozen=True)
class SecAggCost:
    """Cost of one secure-aggregation round per client, for ``n`` clients and ``m`` numbers.

    Bytes on the wire per client (round 0: one 32-byte public key; round 1:
    ``2 (n - 1)`` shares out and in; round 2: ``4 m`` bytes of masked input;
    round 3: ``n - 1`` shares out), the plain upload ``4 m`` for comparison,
    and measured seconds.
    """

    n_clients: int
    vector_length: int
    bytes_up: int
    bytes_down: int
    plain_bytes_up: int
    client_seconds: float
    server_seconds: float

    @property
    def overhead(self) -> float:
        """``bytes_up / plain_bytes_up``: how much more a client uploads than without masking."""
        return self.bytes_up / self.plain_bytes_up


def secagg_cost(n_clients: Sequence[int], vector_length: int, *, threshold_fraction: float = 2 / 3,
                dropout_fraction: float = 0.0, seed: int = 0) -> list[SecAggCost]:  # fmt: skip
    """Bytes and measured seconds per client of one round, for each ``n`` in ``n_clients``.

    Each ``n`` runs :func:`secure_sum` on random inputs of ``vector_length``
    numbers with threshold ``ceil(threshold_fraction * n)``; the last
    ``floor(dropout_fraction * n)`` clients drop out after sharing their keys,
    so the server's time includes their recovery.
    Client compute grows like ``n m`` (one mask per peer), bytes like
    ``n + m``: the chapter plots both against ``n``.
    """
    out = []
    share = share_bytes()
    for n in n_clients:
        rng = np.random.default_rng(seed)
        inputs = [rng.integers(0, MODULUS, size=vector_length, dtype=np.uint32) for _ in range(n)]
        gone = range(n - int(dropout_fraction * n), n)
        run = secure_sum(inputs, threshold=max(1, math.ceil(threshold_fraction * n)), dropped=gone, seed=seed)
        up = 32 + 2 * (n - 1) * share + 4 * vector_length + (n - 1) * share
        down = 32 * (n - 1) + 2 * (n - 1) * share + 4 * n  # peers' keys, shares, the survivor list
        out.append(SecAggCost(n, vector_length, up, down, 4 * vector_length, run.client_seconds, run.server_seconds))
    return out


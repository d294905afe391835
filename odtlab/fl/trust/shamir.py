"""Shamir's secret sharing over a prime field: any ``t`` of ``n`` shares give the secret back.

To share a secret ``s`` (an integer below the prime ``p``) with threshold
``t``, pick a random polynomial of degree ``t - 1`` whose constant term is
``s``: ``f(x) = s + a_1 x + ... + a_{t-1} x^{t-1} mod p``, and give party
``i`` the point ``(i, f(i))`` for ``i = 1..n``. Any ``t`` points fix the
polynomial, and Lagrange interpolation at ``x = 0`` gives ``s``; ``t - 1``
points say nothing about ``s``: every value of ``s`` fits them with some
polynomial, equally likely (Shamir, "How to Share a Secret", CACM 1979).

Secure aggregation (:mod:`odtlab.fl.trust.secagg`) shares each client's secret key
and self-mask seed this way, so that the server can remove the masks of
clients that drop out, as long as ``t`` clients remain.

The field is the integers modulo the Mersenne prime ``2**521 - 1``, large
enough for a 32-byte key. Python's integers do the arithmetic exactly.

Examples
--------
>>> import numpy as np
>>> shares = split_secret(1234, n=5, threshold=3, rng=np.random.default_rng(0))
>>> combine_shares(shares[:3]), combine_shares([shares[4], shares[0], shares[2]])
(1234, 1234)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from odtlab.fl.errors import NotEnoughShares

__all__ = ["PRIME", "Share", "split_secret", "combine_shares", "lagrange_at_zero", "share_bytes"]

#: The field's prime, the Mersenne prime 2**521 - 1.
PRIME = 2**521 - 1

Share = tuple[int, int]  # (x, f(x)), x in 1..n


def share_bytes() -> int:
    """Bytes of one share on the wire: its x (2 bytes) and f(x) (66 bytes, 521 bits rounded up)."""
    return 2 + (PRIME.bit_length() + 7) // 8


def _random_field_element(rng: np.random.Generator) -> int:
    return int.from_bytes(rng.bytes(66), "big") % PRIME


def split_secret(secret: int, *, n: int, threshold: int, rng: np.random.Generator) -> list[Share]:
    """``n`` shares of ``secret``, any ``threshold`` of which recover it.

    Parameters
    ----------
    secret : int
        In ``[0, PRIME)``.
    n : int
        Number of shares (parties), >= 1.
    threshold : int
        ``t``, in ``1..n``.
    rng : numpy.random.Generator
        Draws the polynomial's coefficients (in a deployment: a
        cryptographic generator such as ``secrets``; seeded here so that the
        course's runs repeat).

    Returns
    -------
    list of (x, y)
        Share ``i`` is ``(i, f(i))`` for ``i = 1..n``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"split_secret(n={n!r}): give the number of parties, an int >= 1")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= n:
        raise ValueError(f"split_secret(threshold={threshold!r}): give an int in 1..n={n}")
    if not 0 <= secret < PRIME:
        raise ValueError("split_secret: the secret must be an int in [0, 2**521 - 1)")
    coefficients = [secret] + [_random_field_element(rng) for _ in range(threshold - 1)]
    shares = []
    for x in range(1, n + 1):
        y = 0
        for c in reversed(coefficients):  # Horner's rule
            y = (y * x + c) % PRIME
        shares.append((x, y))
    return shares


def combine_shares(shares: Sequence[Share], threshold: int | None = None) -> int:
    """The secret from shares with distinct x, by Lagrange interpolation at 0.

    ``f(0) = sum_j y_j prod_{m != j} x_m / (x_m - x_j)  (mod p)``.

    Parameters
    ----------
    shares : sequence of (x, y)
        At least ``threshold`` of them (all are used).
    threshold : int or None
        If given, fewer shares raise :class:`~odtlab.fl.errors.NotEnoughShares`
        (with fewer than ``t`` shares interpolation silently gives a wrong value).
    """
    if threshold is not None and len(shares) < threshold:
        raise NotEnoughShares(len(shares), threshold)
    coefficients = lagrange_at_zero([x for x, _ in shares])
    return sum(c * y for c, (_, y) in zip(coefficients, shares, strict=True)) % PRIME


def lagrange_at_zero(xs: Sequence[int]) -> list[int]:
    """The weights ``l_j = prod_{m != j} x_m / (x_m - x_j) mod p`` with ``f(0) = sum_j l_j f(x_j)``.

    They depend only on which parties answered, so a server that recovers
    many secrets from the same parties computes them once.

    Examples
    --------
    >>> lagrange_at_zero([1, 2]) == [2, PRIME - 1]   # f(0) = 2 f(1) - f(2) for a line
    True
    """
    if len(set(xs)) != len(xs):
        raise ValueError(f"two shares have the same x ({sorted(xs)}); give shares of distinct parties")
    out = []
    for j, xj in enumerate(xs):
        num, den = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                num = num * xm % PRIME
                den = den * (xm - xj) % PRIME
        out.append(num * pow(den, -1, PRIME) % PRIME)
    return out

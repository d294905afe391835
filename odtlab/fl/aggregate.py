"""The server's arithmetic, as pure functions of client results (no engine, no state).

A *result* is what one client sends back after a round: ``(params,
num_examples)``, where ``params`` maps parameter names to tensors (only the
ones the client trained) and ``num_examples`` is how many examples it
trained on. A strategy (:mod:`odtlab.fl.strategies`) combines results with
these functions; engines check every update first with
:func:`check_update`, so that one broken client cannot spoil the model.

FedAvg's rule (McMahan et al., AISTATS 2017, Algorithm 1) weighs each
client by its share of the examples:

.. math:: w = \\sum_k \\frac{n_k}{n} w_k, \\qquad n = \\sum_k n_k.

Examples
--------
>>> import torch
>>> a = ({"w": torch.tensor([0.0, 2.0])}, 1)
>>> b = ({"w": torch.tensor([3.0, 5.0])}, 2)
>>> weighted_mean([a, b])["w"]
tensor([2., 4.])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from odtlab.fl.errors import InvalidUpdate

__all__ = ["Params", "Result", "weighted_mean", "check_update", "check_updates", "apply_to_global"]

Params = dict[str, torch.Tensor]
Result = tuple[Mapping[str, torch.Tensor], int]


def weighted_mean(results: Sequence[Result]) -> Params:
    """The example-weighted mean of the clients' tensors, key by key.

    Every result must hold the same keys (clients of one round train the
    same parameters). Integer tensors (counters such as BatchNorm's
    ``num_batches_tracked``) are averaged in float64 and rounded back.

    Raises
    ------
    ValueError
        For no results, a total of zero examples, or results with different keys.
    """
    if not results:
        raise ValueError("weighted_mean needs at least one (params, num_examples) result")
    keys = set(results[0][0])
    for params, _ in results[1:]:
        if set(params) != keys:
            raise ValueError(
                f"results hold different parameters: {sorted(keys ^ set(params))[:5]} are not in "
                "every result; clients of one round must train the same parameters"
            )
    total = sum(int(n) for _, n in results)
    if total <= 0:
        raise ValueError("the results hold 0 examples in all; weights n_k / n are undefined")
    weights = torch.tensor([int(n) / total for _, n in results], dtype=torch.float64)
    out: Params = {}
    for key, first in results[0][0].items():
        stacked = torch.stack([params[key] for params, _ in results]).detach().to("cpu", torch.float64)
        mean = torch.tensordot(weights, stacked, dims=1)
        out[key] = (mean.round() if not first.is_floating_point() else mean).to(first.dtype)
    return out


def check_update(
    global_params: Mapping[str, torch.Tensor],
    params: Mapping[str, torch.Tensor],
    num_examples: int,
    client: str,
) -> None:
    """Raise :class:`~odtlab.fl.errors.InvalidUpdate` if a client's update cannot be aggregated.

    Checks that ``num_examples`` is a positive int, that every key is a
    parameter of the global model, with the same shape, and that no value is
    NaN or infinite.
    """
    _check_structure(global_params, params, num_examples, client)
    for key, value in params.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise InvalidUpdate(client, f"{key!r} holds {bad} NaN or infinite values")


def _check_structure(
    global_params: Mapping[str, torch.Tensor],
    params: Mapping[str, torch.Tensor],
    num_examples: int,
    client: str,
) -> None:
    """Every check of :func:`check_update` but the NaN test."""
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1:
        raise InvalidUpdate(client, f"num_examples={num_examples!r} is not a positive count")
    if not params:
        raise InvalidUpdate(client, "the update holds no parameters")
    for key, value in params.items():
        if key not in global_params:
            close = [k for k in global_params if k.endswith(key.rsplit(".", 1)[-1])][:3]
            raise InvalidUpdate(
                client, f"{key!r} is not a parameter of the global model (similar: {close})"
            )
        if not isinstance(value, torch.Tensor):
            raise InvalidUpdate(client, f"{key!r} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(global_params[key].shape):
            raise InvalidUpdate(
                client,
                f"{key!r} has shape {tuple(value.shape)}, the global model's has "
                f"{tuple(global_params[key].shape)}",
            )


def check_updates(
    global_params: Mapping[str, torch.Tensor],
    updates: Sequence[tuple[Mapping[str, torch.Tensor], int, str]],
) -> list[str | None]:
    """:func:`check_update` for many clients at once: per update, ``None`` or what is wrong.

    The same checks, with the NaN test run once per parameter over all the
    updates stacked (a round of a thousand clients checks in milliseconds).
    """
    problems: list[str | None] = []
    for params, n, client in updates:
        try:
            _check_structure(global_params, params, n, client)
            problems.append(None)
        except InvalidUpdate as err:
            problems.append(str(err))
    ok = [i for i, p in enumerate(problems) if p is None]
    if ok:
        for key in updates[ok[0]][0]:
            values = [updates[i][0][key] for i in ok]
            if not values[0].is_floating_point():
                continue
            flat = torch.stack(values).detach().reshape(len(values), -1)
            bad = (~torch.isfinite(flat)).sum(dim=1)
            for i, count in zip(ok, bad.tolist(), strict=True):
                if count and problems[i] is None:
                    problems[i] = str(InvalidUpdate(updates[i][2], f"{key!r} holds {count} NaN or infinite values"))
    return problems


def apply_to_global(global_params: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor]) -> Params:
    """A copy of ``global_params`` with the keys of ``new`` replaced: what clients do not train stays."""
    out = {k: v.detach().clone() for k, v in global_params.items()}
    for k, v in new.items():
        out[k] = v.detach().to(out[k].dtype).clone()
    return out

"""The vectorized engine: all sampled clients of a round train at once, with ``torch.func``.

A federated round is the same small training loop run by many clients on
different data. Instead of looping over clients, :func:`train_clients`
stacks their parameters along a new first dimension and runs every local
step of every client as *one* call: ``torch.func.vmap`` over
``torch.func.grad`` of the loss of ``torch.func.functional_call``. On a
thousand clients with a small model this turns a thousand tiny
matrix products into one big one.

Clients hold different amounts of data. All clients' examples are gathered
into one tensor, and each step takes a ``(clients, batch)`` index matrix
into it, padded where a client's last batch is short (padding examples have
weight 0 in the loss) or where a client has already finished (the whole
step is masked: no update). The batches are those of the plain engine
(:func:`odtlab.fl.client.local_batches`), so both engines give the same
result (a test holds them together at 1e-5).

What it supports, and why: plain SGD (momentum 0, any weight decay), a
trainable-set part, FedProx's proximal term. BatchNorm in training mode
computes statistics across the batch, which does not vmap per client: use
GroupNorm or frozen statistics (``R.BatchNormPolicy("frozen")``). Dropout
would draw other random masks than the plain engine: build the model
without it. Anything else raises :class:`~odtlab.errors.InvalidRecipe`
naming the plain engine as the way out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from odtlab.data import as_tensors
from odtlab.errors import InvalidRecipe
from odtlab.fl.client import Client, ClientResult, epoch_orders
from odtlab.recipes import SGD

__all__ = ["train_clients"]


def _check(clients: Sequence[Client], net: nn.Module) -> SGD:
    recipe = clients[0].recipe
    if any(c.recipe.parts != recipe.parts for c in clients[1:]):
        raise InvalidRecipe(
            "the vectorized engine trains every client of a round with one recipe; these clients "
            "have different ones: use engine='loop'"
        )
    opt = recipe.optimizer_part
    if type(opt) is not SGD or opt.momentum != 0:
        raise InvalidRecipe(
            f"the vectorized engine runs plain SGD (momentum 0); recipe {recipe.name!r} uses "
            f"{opt.name!r}: use engine='loop', or R.SGD(lr=...)"
        )
    extra = [p.kind for p in recipe.parts if p.kind not in ("trainable", "optimizer", "batchnorm")]
    if extra:
        raise InvalidRecipe(
            f"the vectorized engine supports trainable-set and SGD parts only; recipe "
            f"{recipe.name!r} also has {extra}: use engine='loop'"
        )
    for name, m in net.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise InvalidRecipe(
                f"{name or 'the model'} is a BatchNorm in training mode: its statistics mix the "
                "examples of a batch, which does not vectorize per client. Use GroupNorm, or "
                "freeze the statistics with R.BatchNormPolicy('frozen') in the clients' recipe"
            )
        if isinstance(m, nn.Dropout) and m.p > 0 and m.training:
            raise InvalidRecipe(
                f"{name} is a Dropout(p={m.p}): its random masks would differ from the plain "
                "engine's; build the model with dropout=0 or use engine='loop'"
            )
    return opt


def _index_matrix(
    sizes: Sequence[int], batch_size: int, epochs: int, seeds: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clients, steps, batch)`` indices into the concatenated data (-1: padding), and steps per client.

    Row ``t`` of client ``k`` is its ``t``-th batch of :func:`~odtlab.fl.client.local_batches`.
    """
    offset, per_client = 0, []
    for n, seed in zip(sizes, seeds, strict=True):
        steps = -(-n // batch_size)
        padded = torch.full((epochs, steps * batch_size), -1, dtype=torch.int64)
        padded[:, :n] = torch.stack(epoch_orders(n, epochs, seed)) + offset
        per_client.append(padded.view(epochs * steps, batch_size))
        offset += n
    counts = torch.tensor([len(r) for r in per_client])
    out = torch.full((len(sizes), int(counts.max()), batch_size), -1, dtype=torch.int64)
    for k, rows in enumerate(per_client):
        out[k, : len(rows)] = rows
    return out, counts


def train_clients(
    model: nn.Module,
    clients: Sequence[Client],
    global_params: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    *,
    epochs: int,
    batch_size: int,
    seeds: Sequence[int],
) -> list[ClientResult]:
    """Train ``clients`` from ``global_params`` in lockstep; the results of :meth:`Client.fit` for each.

    ``seeds[k]`` is client ``k``'s seed, as the plain engine passes it.
    """
    data = [as_tensors(c.data) for c in clients]
    costs = [c.step_cost(model, batch_size) for c in clients]
    net = copy.deepcopy(model)
    net.load_state_dict(dict(global_params))
    net = clients[0].recipe.prepare(net).train()
    opt = _check(clients, net)
    trained = [n for n, p in net.named_parameters() if p.requires_grad]
    fixed = {n: p.detach() for n, p in net.named_parameters() if not p.requires_grad}
    fixed.update(dict(net.named_buffers()))
    anchors = {n: global_params[n].detach().clone() for n in trained}
    mu = float(config.get("proximal_mu", 0.0))
    k = len(clients)
    stacked = {n: anchors[n].unsqueeze(0).repeat(k, *[1] * anchors[n].dim()) for n in trained}

    x_all = torch.cat([x for x, _ in data] + [torch.zeros_like(data[0][0][:1])])
    y_all = torch.cat([y for _, y in data] + [torch.zeros(1, dtype=torch.int64)])
    pad = len(y_all) - 1
    index, counts = _index_matrix([len(y) for _, y in data], batch_size, epochs, seeds)

    def loss(params: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
        out = functional_call(net, {**fixed, **params}, (xb,))
        per_example = torch.nn.functional.cross_entropy(out, yb, reduction="none")
        task = (per_example * wb).sum() / wb.sum().clamp(min=1.0)
        if mu > 0:
            task = task + 0.5 * mu * sum(((params[n] - anchors[n]) ** 2).sum() for n in trained)
        return task

    step = vmap(grad_and_value(loss))
    last_epoch_start = counts - counts // epochs  # the loss reported is the last epoch's mean
    loss_sum, loss_steps = torch.zeros(k), torch.zeros(k)
    for t in range(index.shape[1]):
        rows = index[:, t]
        weights = (rows >= 0).to(x_all.dtype)
        picked = torch.where(rows >= 0, rows, pad)
        grads, losses = step(stacked, x_all[picked], y_all[picked], weights)
        active = (t < counts).to(x_all.dtype)
        with torch.no_grad():
            for n in trained:
                g = grads[n] + opt.weight_decay * stacked[n] if opt.weight_decay else grads[n]
                shape = (k,) + (1,) * (g.dim() - 1)
                stacked[n] = stacked[n] - opt.lr * active.view(shape) * g
            counted = active * (t >= last_epoch_start).to(x_all.dtype)
            loss_sum += losses.detach() * counted
            loss_steps += counted
    buffers = {n: b.detach().clone() for n, b in net.named_buffers() if b.is_floating_point()}
    results = []
    for c, client in enumerate(clients):
        params = {n: stacked[n][c] for n in trained}  # views: this round's tensors, not shared later
        params.update(buffers)
        upload = sum(v.numel() * v.element_size() for v in params.values())
        uplink = getattr(client.device, "uplink_bytes_per_s", 0) or 0
        step_s, step_j = costs[c]
        results.append(ClientResult(
            client=client.id, params=params, num_examples=len(data[c][1]) * epochs,
            loss=float(loss_sum[c] / loss_steps[c].clamp(min=1)),
            steps=int(counts[c]), compute_s=step_s * int(counts[c]), energy_j=step_j * int(counts[c]),
            upload_bytes=int(upload), upload_s=float(upload / uplink) if uplink else 0.0,
        ))  # fmt: skip
    return results

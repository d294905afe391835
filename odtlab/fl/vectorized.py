"""The vectorized engine: all sampled clients of a round train at once, with ``torch.func``.

A federated round is the same small training loop run by many clients on
different data. Instead of looping over clients, :func:`train_clients`
stacks their parameters along a new first dimension and runs every local
step of every client as *one* forward and one backward: ``torch.func.vmap``
of ``torch.func.functional_call`` gives every client's outputs, and one
``torch.autograd.grad`` of the sum of the clients' losses gives every
client's own gradient (clients share no parameter, so the sum separates;
this is a little faster here than ``vmap(grad(...))``). On a
thousand clients with a small model this turns a thousand tiny
matrix products into one batched product per layer.

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
from torch.func import functional_call, vmap

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
    Each client's orders are its own seeded permutations; the padding and
    reshaping are done once for all clients that hold the same number of examples.
    """
    offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0).tolist()
    steps = [-(-n // batch_size) for n in sizes]
    counts = torch.tensor(steps) * epochs
    out = torch.full((len(sizes), int(counts.max()), batch_size), -1, dtype=torch.int64)
    groups: dict[int, list[int]] = {}
    for k, n in enumerate(sizes):
        groups.setdefault(n, []).append(k)
    for n, members in groups.items():
        orders = torch.stack([torch.stack(epoch_orders(n, epochs, seeds[k])) for k in members])
        orders += torch.tensor([offsets[k] for k in members]).view(-1, 1, 1)
        padded = torch.full((len(members), epochs, steps[members[0]] * batch_size), -1, dtype=torch.int64)
        padded[:, :, :n] = orders
        rows = epochs * steps[members[0]]
        out[torch.tensor(members), :rows] = padded.view(len(members), rows, batch_size)
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

    forward = vmap(lambda params, xb: functional_call(net, {**fixed, **params}, (xb,)))
    last_epoch_start = counts - counts // epochs  # the loss reported is the last epoch's mean
    loss_sum, loss_steps = torch.zeros(k), torch.zeros(k)
    for t in range(index.shape[1]):
        rows = index[:, t]
        weights = (rows >= 0).to(x_all.dtype)
        picked = torch.where(rows >= 0, rows, pad)
        # Clients are independent, so the gradient of the SUM of their losses with
        # respect to the stacked parameters is every client's own gradient, side by side.
        leaves = {n: stacked[n].detach().requires_grad_() for n in trained}
        out = forward(leaves, x_all[picked])
        per_example = torch.nn.functional.cross_entropy(
            out.flatten(0, 1), y_all[picked].flatten(), reduction="none"
        ).view_as(weights)
        losses = (per_example * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if mu > 0:  # FedProx: each client's own distance to the global model
            losses = losses + 0.5 * mu * sum(((leaves[n] - anchors[n]) ** 2).flatten(1).sum(1) for n in trained)
        grads = dict(zip(trained, torch.autograd.grad(losses.sum(), [leaves[n] for n in trained]), strict=True))
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
    per_client = {n: stacked[n].unbind(0) for n in trained}  # views: this round's tensors only
    upload = sum(v[0].numel() * v[0].element_size() for v in per_client.values())
    upload += sum(b.numel() * b.element_size() for b in buffers.values())
    mean_loss = (loss_sum / loss_steps.clamp(min=1)).tolist()
    steps = counts.tolist()
    results = []
    for c, client in enumerate(clients):
        params = {n: per_client[n][c] for n in trained}
        params.update(buffers)
        uplink = getattr(client.device, "uplink_bytes_per_s", 0) or 0
        step_s, step_j = costs[c]
        results.append(ClientResult(
            client=client.id, params=params, num_examples=len(data[c][1]) * epochs,
            loss=mean_loss[c], steps=steps[c], compute_s=step_s * steps[c], energy_j=step_j * steps[c],
            upload_bytes=int(upload), upload_s=float(upload / uplink) if uplink else 0.0,
        ))  # fmt: skip
    return results

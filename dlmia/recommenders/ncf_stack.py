"""Many NCF (NeuMF) models trained at once on stacked parameters (`NCF.fit_many`).

Every parameter of R NeuMF networks is stacked along a leading R dimension (item tables padded
to the largest catalogue with rows that are never read); one step computes the R models' losses
on their own minibatches with batched matrix products (`torch.bmm`) over their (user, item)
pairs padded to the longest, sums them, and takes one fused Adam step, which is R independent
Adam steps, since Adam is elementwise and no parameter is shared.

What is kept from each model's own `fit`: its initial weights (each network is built with its
own seed, then copied in), its minibatches and negatives (drawn from its own generator in the
same order), its per-model mean loss, its validation users, its early stopping on its own
NDCG@10 and its best epoch's weights. What is not: bit equality. A batched product sums in
another order than the model's own `nn.Linear` (and the padded layout changes the blocking), so
weights differ by float rounding from the first step; Adam over thousands of steps carries such
differences on, and the trained models are as different as two runs of one model on two
machines: each serves lists of the same quality, not the same lists (bench/pools.py measures how
close). A model whose early stopping has ended is still stepped with the others (its stacked
slice is simply not read again) until every model has stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlmia.data.histories import Histories
from dlmia.optim import adam
from dlmia.recommenders.neural import (
    EVAL_K,
    EarlyStopping,
    EpochLog,
    ranking_metrics,
    validation_rows,
)
from dlmia.seeding import seed_torch, torch_generator

if TYPE_CHECKING:
    from dlmia.recommenders.ncf import NCF, NeuMFNet, PairBatch


class StackedNeuMF(nn.Module):
    """R NeuMF networks' parameters, stacked: every tensor has a leading R dimension."""

    def __init__(self, nets: Sequence[NeuMFNet]) -> None:
        super().__init__()
        self.gmf_dim = nets[0].gmf_dim
        self.n_max = max(net.items.num_embeddings for net in nets)
        self.items = nn.Parameter(_padded([net.items.weight for net in nets], self.n_max))
        self.history = nn.Parameter(_padded([net.history.weight for net in nets], self.n_max))
        linears = [_linears(net) for net in nets]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([layers[j].weight.detach() for layers in linears]))
            for j in range(len(linears[0]))
        )  # (R, out, in): user_in, item_in, the tower's layers, head
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([_bias(layers[j]) for layers in linears]))
            for j in range(len(linears[0]))
        )  # (R, out); item_in has none (zeros, never trained)
        self.biases[1].requires_grad_(False)

    def unstack(self, r: int, net: NeuMFNet) -> None:
        """Copy model r's parameters into `net` (its own network)."""
        with torch.no_grad():
            n = net.items.num_embeddings
            net.items.weight.copy_(self.items[r, :n])
            net.history.weight.copy_(self.history[r, :n])
            for j, layer in enumerate(_linears(net)):
                layer.weight.copy_(self.weights[j][r])
                if layer.bias is not None:
                    layer.bias.copy_(self.biases[j][r])

    def losses(self, batches: Sequence[PairBatch]) -> torch.Tensor:
        """(R,) each model's mean binary cross-entropy on its own minibatch."""
        pairs = _Pairs.of(batches, self.n_max, self.items.device)
        flat_history = self.history.reshape(-1, self.history.shape[-1])  # (R * n_max, width)
        sums = F.embedding_bag(pairs.history_items, flat_history, pairs.history_offsets,
                               mode="sum")  # (users, width)
        counts = pairs.counts[:, None]  # (users, 1)
        left_out = (sums[pairs.users] - flat_history[pairs.items]) / (
            counts[pairs.users] - 1
        ).clamp(min=1)
        plain = sums[pairs.users] / counts[pairs.users].clamp(min=1)
        users = torch.where(pairs.positive[:, None], left_out, plain)  # (N, width)
        q = self.items.reshape(-1, self.items.shape[-1])[pairs.items]  # (N, width)
        n_models = self.items.shape[0]
        u = _scatter(users, pairs.slot, n_models, pairs.longest)  # (R, P, width)
        v = _scatter(q, pairs.slot, n_models, pairs.longest)
        logits = self._logits(u, v)  # (R, P)
        labels = _scatter(pairs.positive.float()[:, None], pairs.slot, n_models, pairs.longest)
        mask = _scatter(torch.ones_like(labels.new_empty(len(pairs.slot), 1)), pairs.slot,
                        n_models, pairs.longest)  # fmt: skip
        loss = F.binary_cross_entropy_with_logits(logits, labels[..., 0], reduction="none")
        mask = mask[..., 0]  # (R, P): 1 at a real pair, 0 at padding
        return (loss * mask).sum(1) / mask.sum(1).clamp(min=1)

    def _logits(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(R, P) logits of padded user vectors and item vectors, each (R, P, width)."""
        g, w, b = self.gmf_dim, self.weights, self.biases
        x = torch.baddbmm(b[0][:, None], u[..., g:], w[0].transpose(1, 2))
        x = x + torch.bmm(v[..., g:], w[1].transpose(1, 2))  # the first MLP layer
        for j in range(2, len(w) - 1):
            x = torch.baddbmm(b[j][:, None], x.relu(), w[j].transpose(1, 2))
        top = torch.cat([u[..., :g] * v[..., :g], x.relu()], 2)  # (R, P, g + last)
        return torch.baddbmm(b[-1][:, None], top, w[-1].transpose(1, 2))[..., 0]


@dataclass(frozen=True, eq=False)
class _Pairs:
    """The (user, item) pairs of R minibatches, flattened over models, with where each goes in
    the padded (R, longest) layout."""

    history_items: torch.Tensor  # (entries,) rows of the flattened history table
    history_offsets: torch.Tensor  # (users,) where each user's entries start
    counts: torch.Tensor  # (users,) float history lengths
    users: torch.Tensor  # (N,) the user of each pair (over all models' users)
    items: torch.Tensor  # (N,) its row of the flattened item table
    positive: torch.Tensor  # (N,) bool: an observed pair (its item left out of the mean)
    slot: torch.Tensor  # (N,) model * longest + position within the model's pairs
    longest: int  # pairs of the model with the most

    @classmethod
    def of(cls, batches: Sequence[PairBatch], n_max: int, device: torch.device) -> _Pairs:
        entries, offsets, counts, users, items, positive, slot = [], [], [], [], [], [], []
        longest = max(len(h.items) + len(neg[0]) for h, neg in batches)
        first_user, first_entry = 0, 0
        for m, (histories, (neg_rows, neg_items)) in enumerate(batches):
            base = m * n_max
            entries.append(torch.from_numpy(histories.items) + base)
            offsets.append(torch.from_numpy(histories.indptr[:-1]) + first_entry)
            counts.append(torch.from_numpy(histories.lengths))
            rows = torch.from_numpy(histories.row_of_entries())
            users += [rows + first_user, neg_rows.cpu() + first_user]
            items += [entries[-1], neg_items.cpu() + base]
            n = len(rows) + len(neg_rows)
            positive.append(torch.arange(n) < len(rows))
            slot.append(m * longest + torch.arange(n))
            first_user += histories.n_users
            first_entry += len(histories.items)
        def cat(parts: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat(parts).to(device)

        return cls(cat(entries), cat(offsets), cat(counts).float(), cat(users), cat(items),
                   cat(positive), cat(slot), longest)  # fmt: skip


def stacking_pays(device: torch.device) -> bool:
    """Whether NeuMFs train faster stacked on `device`: on CUDA, where one model's small steps
    leave the device idle. Not on a CPU: ML-1M, 4 NCFs (bench/pools.py) took about 5.5 minutes
    one by one and over 16 stacked (every model steps until the last one stops early, and
    the padded batched products do work the separate fits skip)."""
    return device.type == "cuda"


def train_stacked(models: Sequence[NCF], histories: Sequence[Histories]) -> None:
    """Fit `models` (NCFs of one config and device) each on its `histories`, at once."""
    cfg, device = models[0].config, models[0].device
    setups = []
    for model, full in zip(models, histories, strict=True):  # each model's own fit, to its data
        model.n_items = full.n_items
        train, targets = model.training_prefix(full), full.last_items()
        watched = validation_rows(full.n_users, cfg.validation_users, model.seed, model.name)
        seed_torch(model.seed, model.name, "init")
        model.net = cast("NeuMFNet", model.build(train).to(device))
        generator = torch_generator(model.seed, model.name, "batches")
        setups.append((train, targets, watched, generator, EarlyStopping(cfg.patience)))
        model.log = []
    stacked = StackedNeuMF([model.net for model in models]).to(device)
    optimiser = adam((p for p in stacked.parameters() if p.requires_grad), lr=cfg.lr,
                     weight_decay=cfg.weight_decay)  # fmt: skip
    running = list(range(len(models)))
    for epoch in range(1, cfg.epochs + 1):
        start = perf_counter()
        losses = _train_epoch(stacked, models, [s[0] for s in setups], [s[3] for s in setups],
                              optimiser)  # fmt: skip
        train_share = (perf_counter() - start) / len(running)
        for r in list(running):
            model, (train, targets, watched, _, stopper) = models[r], setups[r]
            middle = perf_counter()
            stacked.unstack(r, model.net)
            hr, ndcg = ranking_metrics(model, train.rows(watched), targets[watched], k=EVAL_K)
            model.log.append(EpochLog(epoch, losses[r], hr, ndcg, train_share,
                                      perf_counter() - middle))  # fmt: skip
            if stopper.update(epoch, ndcg, model.net):
                running.remove(r)
        if not running:
            break
    for model, setup in zip(models, setups):
        setup[4].restore(model.net)
        model.best_epoch = setup[4].best_epoch


def _train_epoch(
    stacked: StackedNeuMF,
    models: Sequence[NCF],
    data: Sequence[Histories],
    generators: Sequence[torch.Generator],
    optimiser: torch.optim.Optimizer,
) -> list[float]:
    """One epoch of every model, its minibatches drawn in its own `fit`'s order; each model's
    mean loss over its steps."""
    stacked.train()
    epochs = [list(m.batches(d, g)) for m, d, g in zip(models, data, generators)]
    steps = max(len(batches) for batches in epochs)
    total = torch.zeros(len(models), device=stacked.items.device)
    for t in range(steps):
        batch = [batches[t] if t < len(batches) else _empty(d) for batches, d in zip(epochs, data)]
        losses = stacked.losses(batch)  # (R,)
        optimiser.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimiser.step()
        total += losses.detach()
    return (total / torch.tensor([max(len(b), 1) for b in epochs], device=total.device)).tolist()


def _empty(data: Histories) -> PairBatch:
    """No pairs: the step of a model that has run out of minibatches (one of its minibatches
    held only empty prefixes, so it has fewer than the others: rare). Its loss is 0, but Adam's
    momentum still moves it in that step."""
    none = torch.zeros(0, dtype=torch.long)
    return data.rows(np.zeros(0, dtype=np.int64)), (none, none)


def _padded(tables: Sequence[torch.Tensor], rows: int) -> torch.Tensor:
    """(R, rows, width) the tables, each padded with zero rows."""
    out = tables[0].new_zeros(len(tables), rows, tables[0].shape[1])
    for r, table in enumerate(tables):
        out[r, : len(table)] = table.detach()
    return out


def _linears(net: NeuMFNet) -> list[nn.Linear]:
    """The network's linear layers in order: user_in, item_in, the tower's, head."""
    tower = [layer for layer in net.tower if isinstance(layer, nn.Linear)]
    return [net.user_in, net.item_in, *tower, net.head]


def _bias(layer: nn.Linear) -> torch.Tensor:
    return layer.bias.detach() if layer.bias is not None else layer.weight.new_zeros(
        layer.out_features
    )


def _scatter(values: torch.Tensor, slot: torch.Tensor, models: int, longest: int) -> torch.Tensor:
    """(models, longest, d) `values` (N, d) placed at `slot`, zeros elsewhere."""
    out = values.new_zeros(models * longest, values.shape[1])
    return out.index_put((slot,), values).view(models, longest, -1)


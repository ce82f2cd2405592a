"""K DL-MIA networks side by side: every layer's parameters stacked on a leading trial axis and
padded to the largest latent sizes, so one batched matmul serves all K models of a search.

A trial's network is its own `DLMIAModel` (built and initialised exactly as a lone fit builds it),
copied into its row (`StackedNet.load`) and copied back after training (`StackedNet.store`).
Padding is exact: a padded latent coordinate has zero weights and zero bias everywhere, so it is
0 in every sample (its noise is 0 too), adds 0 to every KL, distance and logit, and gets a zero
gradient, which keeps it 0 under Adam, weight decay and clipping. A head a trial does not build
(mixing weight 0) is a zero row whose loss is multiplied by 0. The norm feature is one more
input column, 0 for a trial without it.

What may differ between the K trials: latent sizes, KL, alignment and head-mixing weights,
norm feature, tau, period, lambda_w and learning rate (`STACKABLE`); every other setting, the
seed and the device are shared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, cast

import torch
from torch import nn

from dlmia.attacks.dlmia import vmf
from dlmia.attacks.dlmia.config import DLMIAConfig
from dlmia.attacks.dlmia.encoder import vmf_parameters
from dlmia.attacks.dlmia.estimator import WeightEstimator
from dlmia.attacks.dlmia.model import DLMIAModel

STACKABLE = frozenset({
    "latent_inv", "latent_spe", "kl_inv", "kl_spe", "lambda_align", "alpha", "beta",
    "norm_feature", "tau", "period", "lambda_w", "lr",
})  # fmt: skip
HEAD_WIDTHS = (32, 8, 2)  # membership_mlp's hidden layers and logits


def stackable(configs: Sequence[DLMIAConfig]) -> bool:
    """True when the configs differ only in `STACKABLE` settings and use the structure the
    stacked network implements (encoder on, vMF specific latent, mixed heads)."""
    first = configs[0]
    shared = [f.name for f in fields(DLMIAConfig) if f.name not in STACKABLE]
    return all(
        c.use_encoder and c.spe_dist == "vmf" and c.head == "mix"
        and all(getattr(c, key) == getattr(first, key) for key in shared)
        for c in configs
    )


Layers = list[tuple[torch.Tensor, torch.Tensor]]  # an MLP's (weight (A, out, in), bias (A, out))


class StackedLinear(nn.Module):
    """K linear layers' parameters: weight (K, fan_out, fan_in), bias (K, fan_out)."""

    def __init__(self, k: int, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(k, fan_out, fan_in))
        self.bias = nn.Parameter(torch.zeros(k, fan_out))


class StackedMLP(nn.Module):
    """K MLPs of the same widths, `activation` between layers; `rows` picks the MLPs to run."""

    def __init__(self, k: int, widths: Sequence[int], activation: Callable[..., torch.Tensor]):
        super().__init__()
        self.layers = nn.ModuleList(
            StackedLinear(k, a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.activation = activation

    def rows(self, index: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The MLPs of `index` (all when None) as a function (A, B, in) -> (A, B, out); their
        parameters are gathered once, so gradients flow back to those rows only."""
        layers: Layers = [
            (layer.weight, layer.bias) if index is None
            else (layer.weight[index], layer.bias[index])
            for layer in self.linears()
        ]  # fmt: skip
        return partial(_run, layers, self.activation)

    def linears(self) -> list[StackedLinear]:
        return [cast(StackedLinear, layer) for layer in self.layers]


def _run(
    layers: Layers, activation: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    for i, (weight, bias) in enumerate(layers):
        x = torch.baddbmm(
            bias.unsqueeze(1), x if i == 0 else activation(x), weight.transpose(1, 2)
        )
    return x


@dataclass(frozen=True)
class Posteriors:
    """The K encoders' outputs for a (K, B, d) batch, padded."""

    mu_inv: torch.Tensor  # (K, B, Mi)
    logvar_inv: torch.Tensor  # (K, B, Mi)
    mu_spe: torch.Tensor  # (K, B, Ms) unit vectors
    kappa: torch.Tensor  # (K, B)


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _span(*parts: tuple[int, int]) -> torch.Tensor:
    """Indices: for each (start, size) the range start .. start + size - 1, concatenated."""
    return torch.cat([torch.arange(start, start + size) for start, size in parts])


class StackedNet(nn.Module):
    """The VAEs, heads and weight estimators of K trials (module doc)."""

    def __init__(self, dim: int, configs: Sequence[DLMIAConfig], n_samples: int) -> None:
        super().__init__()
        k, hidden = len(configs), configs[0].hidden
        self.configs, self.dim = list(configs), dim
        self.mi = max(c.latent_inv for c in configs)
        self.ms = max(c.latent_spe for c in configs)
        self.enc_inv = StackedMLP(k, (dim, hidden, 2 * self.mi), torch.relu)
        self.enc_spe = StackedMLP(k, (dim, hidden, self.ms + 1), torch.relu)
        self.dec = StackedMLP(k, (self.mi + self.ms, hidden, dim), torch.relu)
        self.heads = nn.ModuleList(
            StackedMLP(k, (width + 1, *HEAD_WIDTHS), torch.relu)
            for width in (dim, self.mi, self.ms)
        )
        self.theta = nn.Parameter(torch.zeros(k, n_samples))  # estimator scores' logits
        self.map = StackedMLP(k, (1, 8, 1), torch.tanh)  # estimator's weight map
        self.mix: torch.Tensor
        self.register_buffer("mix", torch.tensor([c.mix_weights for c in configs]))  # (K, 3)

    def vae_parameters(self) -> list[nn.Parameter]:
        return [*self.enc_inv.parameters(), *self.enc_spe.parameters(), *self.dec.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.heads.parameters())

    def head_mlps(self) -> list[StackedMLP]:
        """The raw, invariant and specific heads."""
        return [cast(StackedMLP, head) for head in self.heads]

    def estimator_parameters(self) -> list[nn.Parameter]:
        return [self.theta, *self.map.parameters()]

    # Packing: each of a trial's nn.Linear layers lands in the rows and columns of its stacked
    # layer given by (rows, cols) index vectors.
    def _slots(
        self, t: int, model: DLMIAModel
    ) -> list[tuple[nn.Linear, StackedLinear, torch.Tensor, torch.Tensor]]:
        config, d, h = self.configs[t], self.dim, self.configs[t].hidden
        ki, ks, mi, ms = config.latent_inv, config.latent_spe, self.mi, self.ms
        vae = model.vae
        assert vae is not None
        full_h, full_d = _span((0, h)), _span((0, d))
        slots = []
        plan: list[tuple[nn.Module, StackedMLP, list[tuple[torch.Tensor, torch.Tensor]]]] = [
            (vae.enc_inv, self.enc_inv, [(full_h, full_d), (_span((0, ki), (mi, ki)), full_h)]),
            (vae.enc_spe, self.enc_spe, [(full_h, full_d), (_span((0, ks), (ms, 1)), full_h)]),
            (vae.dec, self.dec, [(full_h, _span((0, ki), (mi, ks))), (full_d, full_h)]),
        ]
        extra = 0 if config.norm_feature == "off" else 1
        inputs = [(0, d, d), (1, ki, mi), (2, ks, ms)]  # slot, own width, padded width
        for mlp, slot in zip(model.heads.mlps, model.heads.slots, strict=True):
            _, width, padded = inputs[slot]
            first = _span((0, width), (padded, extra))
            widths = (HEAD_WIDTHS[0], *HEAD_WIDTHS)
            layers = [(_span((0, HEAD_WIDTHS[0])), first)] + [
                (_span((0, b)), _span((0, a))) for a, b in zip(widths[1:-1], widths[2:],
                                                                  strict=True)
            ]  # fmt: skip
            plan.append((mlp, self.head_mlps()[slot], layers))
        for module, stacked, layers in plan:
            for linear, target, (rows, cols) in zip(
                _linears(module), stacked.linears(), layers, strict=True
            ):
                slots.append((linear, target, rows, cols))
        return slots

    @torch.no_grad()
    def load(self, t: int, model: DLMIAModel, estimator: WeightEstimator) -> None:
        """Copy trial t's own network and estimator into row t."""
        for linear, stacked, rows, cols in self._slots(t, model):
            stacked.weight[t, rows[:, None], cols] = linear.weight
            stacked.bias[t, rows] = linear.bias
        self.theta[t] = estimator.theta
        for linear, stacked in zip(_linears(estimator.map), self.map.linears(), strict=True):
            stacked.weight[t] = linear.weight
            stacked.bias[t] = linear.bias

    @torch.no_grad()
    def store(self, t: int, model: DLMIAModel) -> None:
        """Copy row t back into trial t's own network."""
        for linear, stacked, rows, cols in self._slots(t, model):
            linear.weight.copy_(stacked.weight[t, rows[:, None], cols])
            linear.bias.copy_(stacked.bias[t, rows])

    def view(self, trials: Sequence[int] | None = None) -> NetView:
        """The networks of `trials` (all K when None), ready to run for one step."""
        return NetView(self, trials)


class NetView:
    """A step's view of some rows of a `StackedNet`: their parameters gathered once (all K
    rows: the parameters themselves), their settings, and the forward pieces of a lone fit's
    model on (A, B, ...) batches, row a being trial trials[a]."""

    def __init__(self, net: StackedNet, trials: Sequence[int] | None) -> None:
        self.trials = list(range(len(net.configs))) if trials is None else list(trials)
        index = None if trials is None else torch.tensor(self.trials, device=net.mix.device)
        self.index = index
        self.configs = [net.configs[t] for t in self.trials]
        self.mi, self.ms = net.mi, net.ms
        self.enc_inv, self.enc_spe, self.dec = (m.rows(index) for m in (net.enc_inv, net.enc_spe,
                                                                      net.dec))  # fmt: skip
        self.heads = [head.rows(index) for head in net.head_mlps()]
        self.map = net.map.rows(index)
        self.theta = net.theta if index is None else net.theta[index]
        self.mix = net.mix if index is None else net.mix[index]  # (A, 3)

    def pick(self, values: torch.Tensor) -> torch.Tensor:
        """The rows of a per-trial tensor (K, ...) that this view runs."""
        return values if self.index is None else values[self.index]

    def encode(self, x: torch.Tensor) -> Posteriors:
        """Padded posterior parameters of x (A, B, d)."""
        mu_inv, logvar_inv = self.enc_inv(x).split(self.mi, dim=-1)  # (A, B, Mi) each
        mu_spe, kappa = vmf_parameters(self.enc_spe(x), self.ms)  # (A, B, Ms), (A, B)
        return Posteriors(mu_inv, logvar_inv.clamp(-10, 10), mu_spe, kappa)

    def sample(
        self, post: Posteriors, generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised draws (z_inv (A, B, Mi), z_spe (A, B, Ms)); each trial draws from
        its own generator (generators[t] for trial t) in a lone fit's order: invariant noise,
        then Wood's eps, then the direction."""
        rows, batch = post.kappa.shape
        opts: dict[str, Any] = {"device": post.kappa.device, "dtype": post.kappa.dtype}
        gens = [generators[t] for t in self.trials]
        noise = torch.zeros(rows, batch, self.mi, **opts)
        v = torch.zeros(rows, batch, self.ms - 1, **opts)
        for a, (config, g) in enumerate(zip(self.configs, gens, strict=True)):
            noise[a, :, : config.latent_inv] = torch.randn((batch, config.latent_inv),
                                                           generator=g, **opts)  # fmt: skip
        dims = [c.latent_spe for c in self.configs]
        b = vmf.wood_b(post.kappa, post.kappa.new_tensor(dims)[:, None] - 1.0)  # (A, B)
        eps = vmf.accepted_eps_rows(b.detach(), dims, gens)
        for a, (dim, g) in enumerate(zip(dims, gens, strict=True)):
            v[a, :, : dim - 1] = torch.randn(batch, dim - 1, generator=g, **opts)
        z_inv = post.mu_inv + torch.exp(0.5 * post.logvar_inv) * noise
        w = vmf.sample_w(b, eps).unsqueeze(-1)  # (A, B, 1)
        return z_inv, vmf.rotate_to(post.mu_spe, w, v)

    def decode(self, z_inv: torch.Tensor, z_spe: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.cat([z_inv, z_spe], dim=-1))

    def kl_spe(self, kappa: torch.Tensor) -> torch.Tensor:
        """(A, B) exact vMF KLs to the uniform prior, each trial at its own latent size."""
        return vmf.kl_to_uniform(kappa, [config.latent_spe for config in self.configs])

    def logits(
        self, raw: torch.Tensor, inv: torch.Tensor, spe: torch.Tensor, norm: torch.Tensor
    ) -> list[torch.Tensor]:
        """(A, B, 2) logits of the raw, invariant and specific heads; norm (A, B, 1)."""
        return [
            head(torch.cat([part, norm], dim=-1))
            for head, part in zip(self.heads, (raw, inv, spe), strict=True)
        ]

    def head_loss(self, logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """(A, B) mixed per-sample cross-entropy for labels (A, B)."""
        ce = torch.stack(
            [-lg.log_softmax(-1).gather(-1, labels[..., None]).squeeze(-1) for lg in logits], -1
        )  # (A, B, 3)
        return (ce * self.mix[:, None, :]).sum(-1)

    def head_proba(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """(A, B) mixed member probability."""
        probs = torch.stack([lg.softmax(-1)[..., 1] for lg in logits], -1)  # (A, B, 3)
        return (probs * self.mix[:, None, :]).sum(-1)

    @torch.no_grad()
    def proba(self, x: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        """(A, n) deterministic member probabilities of x (A, n, d) at the posterior means."""
        post = self.encode(x)
        return self.head_proba(self.logits(x, post.mu_inv, post.mu_spe, norm))

    def sample_weights(self, ids: torch.Tensor) -> torch.Tensor:
        """(A, B) estimator weights w(p) of samples ids (A, B), mean 1 per trial."""
        return self.raw_weights(torch.sigmoid(self.theta.gather(1, ids)))

    def raw_weights(self, p: torch.Tensor) -> torch.Tensor:
        w = nn.functional.softplus(self.map(p.unsqueeze(-1)).squeeze(-1))  # (A, B)
        return w / w.mean(-1, keepdim=True).clamp_min(1e-8)

"""DL-MIA's attack model: membership MLPs (the Biased attack's shape) on the raw vector, the
invariant latent and the specific latent, mixed by probability (`head: mix`), or one MLP on
their concatenation (`head: concat`).

Mixing (method.md section 6): P(member) = alpha g_raw + beta g_inv + (1 - alpha - beta) g_spe.
Training minimises the same mix of the heads' own cross-entropies, so every head with a non-zero
weight is a classifier in its own right (a head with weight 0 is not built).

The norm feature (method.md section 8; `norm_feature: side` by default, see config.py for the
measurements, `off` drops it): the log Euclidean norm of the *unstandardised*
difference vector, a rotation-invariant signal (smaller = member) that survives unaligned item
spaces. `attack.Scaler` z-scores it with the statistics of all vectors of its own side (`side`:
shadow or target; no labels, each side is half members by construction) or of both sides pooled
(`pooled`); it is appended as one extra input column to every head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlmia.attacks.dlmia.config import DLMIAConfig
from dlmia.attacks.mlp import membership_mlp


@dataclass(frozen=True)
class HeadInputs:
    """What the heads read for a batch of B vectors (None = not used)."""

    raw: torch.Tensor  # (B, d) standardised difference vectors
    inv: torch.Tensor | None  # (B, latent_inv) invariant latent (sample or posterior mean)
    spe: torch.Tensor | None  # (B, latent_spe) specific latent
    norm: torch.Tensor | None  # (B, 1) z-scored log norm feature


class AttackHeads(nn.Module):
    """The attack model; `forward` gives per-head logits, `loss` and `proba` mix them."""

    def __init__(self, dim: int, config: DLMIAConfig) -> None:
        super().__init__()
        self.concat = config.head == "concat" and config.use_encoder
        extra = 0 if config.norm_feature == "off" else 1
        sizes = (dim, config.latent_inv, config.latent_spe)
        if self.concat:
            weights: tuple[float, ...] = (1.0,)
            self.slots: tuple[int, ...] = (-1,)  # -1 = the concatenation
            self.mlps = nn.ModuleList([membership_mlp(sum(sizes) + extra)])
        else:
            pairs = [(i, w) for i, w in enumerate(config.mix_weights) if w > 0]
            self.slots = tuple(i for i, _ in pairs)  # 0 raw, 1 invariant, 2 specific
            weights = tuple(w for _, w in pairs)
            self.mlps = nn.ModuleList([membership_mlp(sizes[i] + extra) for i in self.slots])
        self.mix: torch.Tensor
        self.register_buffer("mix", torch.tensor(weights))  # (n_heads,) mixing weights

    def forward(self, inputs: HeadInputs) -> list[torch.Tensor]:
        """One (B, 2) logit tensor per built head."""
        parts = (inputs.raw, inputs.inv, inputs.spe)
        tail = [] if inputs.norm is None else [inputs.norm]
        logits = []
        for slot, mlp in zip(self.slots, self.mlps, strict=True):
            if slot == -1:
                features = [p for p in parts if p is not None]
            else:
                features = [parts[slot]]  # type: ignore[list-item]
            logits.append(mlp(torch.cat([*features, *tail], dim=1)))  # (B, 2)
        return logits

    def loss(self, inputs: HeadInputs, labels: torch.Tensor) -> torch.Tensor:
        """(B,) per-sample mix of the heads' cross-entropies for labels (B,) in {0, 1}."""
        ce = [nn.functional.cross_entropy(lg, labels, reduction="none") for lg in self(inputs)]
        return torch.stack(ce, 1) @ self.mix  # (B,)

    def proba(self, inputs: HeadInputs) -> torch.Tensor:
        """(B,) mixed member probability."""
        probs = [lg.softmax(dim=1)[:, 1] for lg in self(inputs)]
        return torch.stack(probs, 1) @ self.mix  # (B,)


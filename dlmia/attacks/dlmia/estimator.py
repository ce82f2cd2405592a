"""DL-MIA's weight estimator: a truth-level score p_i in (0, 1) per training vector, kept by
sample id, and a small trainable map w(p) to per-sample loss weights (method.md section 6).

Sample ids: 0 .. n_shadow-1 are the shadow training vectors, n_shadow .. n-1 the target vectors.
Both parts are trained in the weight phase of stage 3, with the attack model and the VAE frozen:

- the scores: p_i = sigmoid(theta_i) is fit so that D1_i / p_i ~ D2_i, i.e. by minimising
  (D1_i / p_i - D2_i)^2, where D1_i is the stage-2 ("biased") attack loss of vector i and D2_i the
  current model's loss on it (shadow: true label; target: the model's own pseudo-label).
- the map: w(p) = softplus(MLP 1 -> 8 -> 1 (p)), divided by its mean over the batch (weights have
  mean 1, so the loss scale does not drift). Its objective is self-paced reweighting,
  mean_i w(p_i) D2_i + lambda_w mean_i (w(p_i) - 1)^2 with p detached: it learns how the
  truth-level score predicts a sample's current loss and down-weights the scores that go with
  badly fit (unreliable) vectors, while lambda_w bounds how far any weight moves from 1.
  The published code never trains w (reference-implementation.md 8.5, B3); this objective is
  this project's choice and is ablated by `use_weights=False`.

In the joint phase the weights w(p_i) are detached constants on each sample's attack and
reconstruction loss.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightEstimator(nn.Module):
    """Per-sample truth-level scores and the weight map."""

    def __init__(self, n_samples: int, lambda_w: float) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(n_samples))  # (n,) logits of p, p starts at 0.5
        self.map = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
        self.lambda_w = lambda_w

    def scores(self, ids: torch.Tensor) -> torch.Tensor:
        """(B,) truth-level scores p of the samples with ids (B,)."""
        return torch.sigmoid(self.theta[ids])

    def raw_weights(self, p: torch.Tensor) -> torch.Tensor:
        """(B,) positive weights w(p) normalised to mean 1 over the batch p (B,)."""
        w = nn.functional.softplus(self.map(p.unsqueeze(1)).squeeze(1))  # (B,)
        return w / w.mean().clamp_min(1e-8)

    @torch.no_grad()
    def weights(self, ids: torch.Tensor) -> torch.Tensor:
        """(B,) detached sample weights (mean 1) for the joint phase."""
        return self.raw_weights(self.scores(ids))

    def loss(self, ids: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        """Scalar weight-phase loss of samples ids (B,), biased losses d1 (B,), current d2 (B,)."""
        p = self.scores(ids)  # (B,)
        fit = (d1 / p - d2).square().mean()
        w = self.raw_weights(p.detach())  # (B,)
        paced = (w * d2).mean() + self.lambda_w * (w - 1).square().mean()
        return fit + paced

"""The membership MLP the Biased attack (and DL-MIA's heads) use: its shape, its predictions,
and a fast hand-written SGD step for it.

The reference trains the Biased head with one sample per optimizer step (method.md section 5):
about 40,000 steps on 2,000 shadow users. With autograd, `clip_grad_norm_` and `torch.optim.SGD`
each step costs ~0.5 ms of Python and dispatch overhead on CPU; `FusedMLPSGD` does the same
forward, backward, clipping and momentum update in ~25 tensor ops on one flat parameter buffer,
with no per-step allocation of gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from dlmia.errors import TrainingError


def membership_mlp(in_dim: int, hidden: Sequence[int] = (32, 8)) -> nn.Sequential:
    """The baseline's head: Linear/ReLU layers in_dim -> 32 -> 8 -> 2 logits (non-member, member).

    Parameters are initialised from torch's global generator: seed it first (`seed_torch`).
    """
    layers: list[nn.Module] = []
    widths = [in_dim, *hidden]
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], 2))
    return nn.Sequential(*layers)


@torch.no_grad()
def member_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 65536) -> np.ndarray:
    """(n,) float64 member probabilities, softmax of the (n, 2) logits of `model` on x (n, d).

    Raises:
        TrainingError: a non-finite logit (the head diverged).
    """
    logits = torch.cat([model(chunk) for chunk in x.split(batch_size)])  # (n, 2)
    if not torch.isfinite(logits).all():
        raise TrainingError(
            "the attack head outputs non-finite values (it diverged in training); "
            "lower the learning rate or enable gradient clipping"
        )
    return logits.softmax(dim=1)[:, 1].double().cpu().numpy()


class FusedMLPSGD:
    """SGD with momentum and gradient-norm clipping for a `membership_mlp`, hand-differentiated.

    Same update as cross-entropy on logits + `clip_grad_norm_(max_norm)` + `torch.optim.SGD(lr,
    momentum)` (dampening 0, no weight decay, no Nesterov), checked against them by a test.
    The model's parameters are re-pointed into one flat buffer, so the model stays usable for
    prediction and clipping and momentum are one op each.
    """

    def __init__(
        self, model: nn.Sequential, *, lr: float, momentum: float, grad_clip: float | None
    ) -> None:
        linears = [m for m in model if isinstance(m, nn.Linear)]
        params = [p for layer in linears for p in (layer.weight, layer.bias)]
        self.flat = torch.cat([p.detach().reshape(-1) for p in params])  # (P,)
        self.grad = torch.zeros_like(self.flat)  # (P,)
        self.velocity = torch.zeros_like(self.flat)  # (P,) momentum buffer
        views, grads, offset = [], [], 0
        for p in params:
            views.append(self.flat[offset : offset + p.numel()].view_as(p))
            grads.append(self.grad[offset : offset + p.numel()].view_as(p))
            p.data = views[-1]
            offset += p.numel()
        # Per layer: (weight (out, in), weight.T (in, out), bias (out,), their gradient views).
        self.layers = [
            (views[i], views[i].t(), views[i + 1], grads[i], grads[i + 1])
            for i in range(0, len(views), 2)
        ]
        self.lr, self.momentum, self.grad_clip = lr, momentum, grad_clip

    @torch.no_grad()
    def step(self, x: torch.Tensor, target: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """One update on a batch; adds the batch's summed cross-entropy to `loss_sum` in place.

        Args:
            x: (B, d) inputs.
            target: (B, 2) one-hot labels as floats.
            loss_sum: () accumulator (summing, not checking, keeps the step free of syncs).
        """
        activations = [x]
        for _, weight_t, bias, _, _ in self.layers[:-1]:
            activations.append(torch.addmm(bias, activations[-1], weight_t).relu_())  # (B, h)
        _, weight_t, bias, _, _ = self.layers[-1]
        log_p = torch.addmm(bias, activations[-1], weight_t).log_softmax(dim=1)  # (B, 2)
        loss_sum.sub_(torch.vdot(log_p.view(-1), target.view(-1)))
        delta = log_p.exp_().sub_(target).div_(x.shape[0])  # (B, 2) d(mean loss)/d(logits)
        for i in range(len(self.layers) - 1, -1, -1):
            weight, _, _, weight_grad, bias_grad = self.layers[i]
            torch.mm(delta.t(), activations[i], out=weight_grad)
            torch.sum(delta, dim=0, out=bias_grad)
            if i:  # back through the ReLU that made activations[i]: zero where it output 0
                delta = torch.ops.aten.threshold_backward(delta.mm(weight), activations[i], 0.0)
        if self.grad_clip is not None:
            scale = self.grad_clip / (torch.linalg.vector_norm(self.grad) + 1e-6)
            self.grad.mul_(scale.clamp_(max=1.0))
        self.velocity.mul_(self.momentum).add_(self.grad)
        self.flat.sub_(self.velocity, alpha=self.lr)

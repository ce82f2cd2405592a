"""FlatAdam: torch.optim.Adam's update with clip_grad_norm_'s clipping, on one flat buffer."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from dlmia.optim import FlatAdam


def _model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))


@pytest.mark.parametrize(("weight_decay", "clip"), [(0.0, None), (1e-2, 0.05), (1e-5, 100.0)])
def test_flat_adam_takes_the_steps_of_torch_adam_with_clipping(
    weight_decay: float, clip: float | None
) -> None:
    mine, reference = _model(0), _model(0)
    flat = FlatAdam(mine.parameters(), lr=0.01, weight_decay=weight_decay, clip=clip)
    adam = torch.optim.Adam(reference.parameters(), lr=0.01, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(1)
    for _ in range(25):
        x = torch.randn(16, 6, generator=gen)
        flat.step(mine(x).square().sum())
        adam.zero_grad()
        reference(x).square().sum().backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(reference.parameters(), clip)
        adam.step()
    for a, b in zip(mine.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
        assert a.data_ptr() != b.data_ptr()
    assert mine[0].weight.data_ptr() == flat.data.data_ptr()  # the parameters live in the buffer


def test_flat_adam_survives_loading_a_state_and_a_second_flattening() -> None:
    """A state loaded into the model lands in the buffer; a new FlatAdam over a superset keeps
    the values and trains every parameter it holds."""
    model = _model(2)
    FlatAdam(model[0].parameters(), lr=0.1).step(model(torch.ones(1, 6)).sum())
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    whole = FlatAdam(model.parameters(), lr=0.1)
    model.load_state_dict(saved)
    assert torch.equal(whole.data[: model[0].weight.numel()], saved["0.weight"].reshape(-1))
    whole.step(model(torch.ones(1, 6)).sum())
    for key, value in model.state_dict().items():
        assert not torch.equal(value, saved[key]), key


def test_flat_adam_refuses_what_one_buffer_cannot_hold() -> None:
    with pytest.raises(ValueError, match="empty"):
        FlatAdam([], lr=0.1)
    mixed = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    with pytest.raises(ValueError, match="one dtype"):
        FlatAdam(mixed, lr=0.1)


def test_a_dlmia_fit_does_not_import_torch_dynamo() -> None:
    """torch.optim.Optimizer imports torch._dynamo (1.5 s) in each fresh process: a search trial's
    worker trains only DL-MIA and so never pays it."""
    code = (
        "import sys, numpy as np\n"
        "from dlmia.attacks.dlmia import DLMIAAttack, DLMIAConfig\n"
        "rng = np.random.default_rng(0)\n"
        "x, y = rng.normal(size=(80, 8)).astype('float32'), np.repeat([0, 1], 40)\n"
        "config = DLMIAConfig(latent_inv=2, latent_spe=3, hidden=8, epochs_vae=1, "
        "epochs_heads=1, epochs_joint=2, period=1, batch_size=32)\n"
        "DLMIAAttack(config, device='cpu').fit(x, y, x)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

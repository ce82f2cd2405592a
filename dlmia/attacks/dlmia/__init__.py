"""DL-MIA (Wang et al., "Debiasing Learning for Membership Inference Attacks Against Recommender
Systems", KDD 2022), built as method.md section 6 specifies, not as the published code runs.

Modules: `vmf.py` (von Mises-Fisher sampler and exact KL), `encoder.py` (the disentangled VAE
and the MMD), `heads.py` (attack heads), `estimator.py` (per-sample weight estimator),
`model.py` (the network and its per-sample losses), `schedule.py` (the three-stage schedule),
`attack.py` (the `Attack` interface and input scaling), `config.py` (settings).

Details the method leaves open, decided here (each is a setting unless noted):
- Mixing order: P = alpha g_raw + beta g_inv + (1 - alpha - beta) g_spe, the order in which
  method.md lists the heads (the published code's alpha weighted the vMF head instead).
- Reconstruction: unit-variance Gaussian likelihood as per-coordinate MSE; KLs are per sample.
- MMD on the invariant posterior means (what the heads read at test time).
- The estimator's map w(p) is trained by a self-paced objective (estimator.py); D1 and D2
  use the mixed model's -log P(label), with the model's own hard labels on target vectors.
- Model selection by the held-out shadow users' mixed log-loss (not a setting).
- A norm feature (method.md section 8), on by default (`norm_feature: side`; config.py has the
  measurements): it survives the unaligned item spaces of cross-dataset cells.
"""

from __future__ import annotations

from dlmia.attacks.dlmia.attack import DLMIAAttack
from dlmia.attacks.dlmia.config import DLMIAConfig

__all__ = ["DLMIAAttack", "DLMIAConfig"]

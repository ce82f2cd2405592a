"""Reference pools side by side: R recommenders of one kind trained as one batched fit.

A reference pool (method.md section 7) is R sides of one recommender and settings, each trained
on its own seeded half of a population with a seed of its own (`dlmia.sides.model_seed`).
`build_pool` returns exactly the sides `build_side` would build one by one, but trains the
recommenders of a kind that can train many at once together (`Recommender.fit_many`):

- LFM on stacked factor tables, every SGD step updating every model's batch at once, on CUDA
  (`dlmia.factorization.train_mf_many`; each model bit-identical to its own fit; on a CPU,
  where stacking measured slower, one by one);
- ItemCF, each half's exact similarity, the halves spread over torch's threads (identical);
- NCF on stacked parameters with batched products, on CUDA (`dlmia.recommenders.ncf_stack`):
  each model its own initialisation, minibatches and early stopping, but not bit-identical
  weights, so its lists agree closely with its own fit's rather than exactly.

Every other kind (GRU4Rec, Caser, BERT4Rec, Popularity, your own) is built side after side, as
`build_side` does, holding one model at a time. Serving the lists, the difference vectors and
the statistics stay per side.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from dlmia.recommenders import recommender_class
from dlmia.recommenders.base import Recommender
from dlmia.sides import (
    FittedSide,
    PreparedDataset,
    SideOutput,
    SideSpec,
    build_side,
    check_k,
    serve_lists,
    side_model,
    side_users,
    vectorise,
)


def build_pool(data: PreparedDataset, specs: Sequence[SideSpec]) -> list[SideOutput]:
    """The sides of `specs` on `data`, in order: each the side `build_side(data, spec)` builds.

    Specs of one batchable recommender, settings and device are trained together; a side's
    `fit_seconds` is then its share of the batched fit (the fit's seconds over its models).
    """
    for spec in specs:
        check_k(data, spec)
    sides: dict[int, SideOutput] = {}
    for group in pool_groups(specs):
        if not batchable(specs[group[0]].recommender) or len(group) == 1:
            sides.update((i, build_side(data, specs[i])) for i in group)
            continue
        fitted = fit_together(data, [specs[i] for i in group])
        for i, fit in zip(group, fitted, strict=True):
            served = serve_lists(data, specs[i], fit)
            sides[i] = vectorise(data, specs[i], served, reused=False)
    return [sides[i] for i in range(len(specs))]


def pool_groups(specs: Sequence[SideSpec]) -> list[list[int]]:
    """Indices of `specs` grouped by recommender, settings and device (first seen first)."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, spec in enumerate(specs):
        settings = json.dumps(spec.settings, sort_keys=True, default=repr)
        groups.setdefault((spec.recommender, settings, spec.device), []).append(i)
    return list(groups.values())


def batchable(recommender: str) -> bool:
    """Whether recommender `recommender` trains many models at once (overrides `fit_many`)."""
    owner = next(c for c in recommender_class(recommender).__mro__ if "fit_many" in vars(c))
    return owner is not Recommender


def fit_together(data: PreparedDataset, specs: Sequence[SideSpec]) -> list[FittedSide]:
    """Train the recommenders of `specs` (one kind, settings and device) in one batched fit."""
    started = time.perf_counter()
    models = [side_model(spec) for spec in specs]
    train = [
        model.adopt(data.histories.rows(side_users(data.parts, spec)[0]))
        for model, spec in zip(models, specs)
    ]
    recommender_class(specs[0].recommender).fit_many([m.model for m in models], train)
    share = (time.perf_counter() - started) / len(specs)
    return [FittedSide(model, share) for model in models]

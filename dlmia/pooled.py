"""Pooled evaluation of the reference attack: many targets, so that low FPRs mean something.

One side's 668 non-members cannot resolve 0.1% FPR. LiRA and RMIA evaluate instead on M models
trained on random halves of one population, each in turn the target and the other M - 1 its
references. Here the population is a dataset's shadow and target parts: model i is an online
reference side (trained on its seeded half, serving every user of the population: members
their lists, the others the non-member policy's); each user's statistic under model i is
scored against the other models (online: those that did and did not train on the user;
offline: only those that did not), and the raw scores of all M targets are pooled into one set
of metrics: M x (population) users, about half of them non-members.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from dlmia.attacks import attack_config
from dlmia.attacks.baselines import percentile_ranks
from dlmia.attacks.reference import ReferenceConfig, calibrated_score
from dlmia.cell import CellConfig, cached_dataset, reference_view
from dlmia.errors import ConfigError
from dlmia.metrics import attack_metrics
from dlmia.pools import build_pool
from dlmia.records import CellResult
from dlmia.sides import ReferenceSpec, SideOutput, SideSpec


def pooled_models(config: CellConfig, models: int) -> list[SideSpec]:
    """The `models` sides of a pooled evaluation of cell `config`: its target's recommender as
    online reference sides (seeded halves of the shadow and target parts, each serving both)."""
    if config.attack != "reference":
        raise ConfigError(f"a pooled evaluation scores the reference attack, not {config.attack}")
    if models < 3:
        raise ConfigError(f"a pooled evaluation needs at least 3 models, got {models}")
    shadow, target = config.shadow, config.target
    if (shadow.recommender, shadow.settings) != (target.recommender, target.settings):
        raise ConfigError(
            "a pooled evaluation trains one kind of recommender (each model is in turn the "
            f"target and a reference); shadow {shadow.recommender} and target "
            f"{target.recommender} differ"
        )
    return [
        dataclasses.replace(target, role="reference", reference=ReferenceSpec(index, online=True))
        for index in range(models)
    ]


def pooled_evaluation(config: CellConfig, models: int) -> CellResult:
    """Train the pooled evaluation's models (in this process) and score them (`pooled_scores`)."""
    started = time.perf_counter()
    data = cached_dataset(config.target.dataset)
    sides = build_pool(data, pooled_models(config, models))
    settings = attack_config(config.attack, config.attack_settings)
    result = pooled_scores(sides, settings, seed=config.seed)
    return dataclasses.replace(result, seconds=time.perf_counter() - started)


def pooled_scores(sides: list[SideOutput], settings: ReferenceConfig, seed: int) -> CellResult:
    """Each side in turn the target, the others (at most `settings.references`) its references;
    the raw scores of all targets pooled into one set of metrics.

    Every side must serve the same users (`pooled_models`); a side's labels say whom it trained
    on, and are read only by the metrics (as the target's) and as the references' masks.
    """
    started = time.perf_counter()
    users = sides[0].users
    scores, labels = [], []
    for i, target in enumerate(sides):
        others = [side for j, side in enumerate(sides) if j != i][: settings.references]
        view = reference_view(others, target.users)
        assert view is not None and np.array_equal(target.users, users)
        scores.append(calibrated_score(
            target.statistics[settings.statistic], view.statistics[settings.statistic],
            view.inside, settings.variant, settings.spread,
        ))  # fmt: skip
        labels.append(target.labels)
    pooled = percentile_ranks(np.concatenate(scores))
    truth = np.concatenate(labels)
    metrics = attack_metrics(truth, pooled, seed=seed)
    evaluation = {
        "trained": False, "evaluation": "pooled", "n_models": len(sides),
        "n_references": min(len(sides) - 1, settings.references), "n_population": len(users),
    }  # fmt: skip
    return CellResult(
        metrics, pooled, truth, np.tile(users, len(sides)),
        n_shadow=0,  # no shadow side: the models are each other's references
        n_target=len(truth), attack_settings=dataclasses.asdict(settings),
        attack_seconds=time.perf_counter() - started, attack=evaluation,
    )  # fmt: skip

"""A finished judge run's output stored as AI labels, in the caller's transaction.

Each judged task becomes one comparison of source "ai" naming the judge model, the run, the
guideline version and (generative judges) the template version, with an item per response
(its 1-7 score and rank) and the pairs its ranking gives, derived as for a labeler's
comparison. An AI label has no assignment, so it never fills a place of the task's overlap,
and the agreement figures, the task's stored agreement and default snapshots count labels of
source "labeler" (and imports) only.

Reward judges: the ranking is by reward, best first; a response whose reward is within
`tie_epsilon` of the one ranked just above it shares its rank. The 1-7 score is
4 + 3·tanh((reward - the task's mean reward) / score_scale), rounded half up: 4 for an
average response of the task, towards 7 (1) the further above (below) the mean it is. The
rewards themselves are stored as the model's ResponseScores too (replacing its older scores
of the same responses, as a score run does), where the loop audit and the agreement page read
them. Generative judges: the reply is parsed strictly (templates.parse_reply); a reply that
does not parse is counted and skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    JudgeTemplate,
    LabelSource,
    Model,
    Pair,
    ResponseScore,
    Run,
)
from app.schemas.judging import JudgeHyperparameters
from app.services.judging.templates import parse_reply
from app.services.pairs import RankedResponse, expand_pairs
from app.services.queues import chunks

OUTPUT_FILE = "judgements.jsonl"


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def reward_ranks(rewards: list[float], epsilon: float) -> list[int]:
    """Dense ranks, 1 best, by reward; within `epsilon` of the next better one is a tie."""
    order = sorted(range(len(rewards)), key=lambda index: (-rewards[index], index))
    ranks = [0] * len(rewards)
    rank = 1
    for position, index in enumerate(order):
        if position and rewards[order[position - 1]] - rewards[index] >= epsilon:
            rank += 1
        ranks[index] = rank
    return ranks


def reward_scores(rewards: list[float], scale: float) -> list[int]:
    """The 1-7 score of each reward (module docstring)."""
    mean = sum(rewards) / len(rewards)
    return [
        min(7, max(1, math.floor(4 + 3 * math.tanh((reward - mean) / scale) + 0.5)))
        for reward in rewards
    ]


def record_judgements(db: Session, run: Run, output: Path) -> dict[str, float]:
    """Stores the run's labels; returns the counts recorded on the run."""
    params = JudgeHyperparameters(**run.hyperparameters)
    model = db.get(Model, run.base_model_id)
    assert model is not None
    template_id = None
    if params.mode == "generative":
        template_id = db.scalar(
            select(JudgeTemplate.id).where(
                JudgeTemplate.project_id == run.project_id,
                JudgeTemplate.version == params.template_version,
            )
        )
    labels = unparsed = 0
    rewards: dict[int, float] = {}
    for row in _lines(output / OUTPUT_FILE):
        ids: list[int] = [int(rid) for rid in row["response_ids"]]
        if params.mode == "reward":
            values = [float(value) for value in row["rewards"]]
            ranks = reward_ranks(values, params.tie_epsilon)
            scores: list[int] | None = reward_scores(values, params.score_scale)
            rewards.update(zip(ids, values, strict=True))
        else:
            parsed = parse_reply(str(row["reply"]), len(ids))
            if parsed is None:
                unparsed += 1
                continue
            ranks, scores = parsed.ranks, parsed.scores
        _store(db, run, model, row, ids, ranks, scores, template_id, params)
        labels += 1
    if rewards:
        _store_rewards(db, run, rewards)
    db.flush()
    return {"labels": labels, "unparsed": unparsed, "tasks": labels + unparsed}


def _store(
    db: Session,
    run: Run,
    model: Model,
    row: dict[str, Any],
    ids: list[int],
    ranks: list[int],
    scores: list[int] | None,
    template_id: int | None,
    params: JudgeHyperparameters,
) -> None:
    comparison = Comparison(
        task_id=row.get("task_id"),
        prompt_id=int(row["prompt_id"]),
        source=LabelSource.ai,
        source_name=model.name,
        model_id=model.id,
        run_id=run.id,
        judge_template_id=template_id,
        guideline_version_id=params.guideline_version_id,
    )
    db.add(comparison)
    db.flush()
    given = scores or [None] * len(ids)
    db.add_all(
        ComparisonItem(comparison_id=comparison.id, response_id=rid, score=score, rank=rank)
        for rid, rank, score in zip(ids, ranks, given, strict=True)
    )
    db.add_all(
        Pair(
            comparison_id=comparison.id,
            prompt_id=comparison.prompt_id,
            winner_response_id=pair.winner_response_id,
            loser_response_id=pair.loser_response_id,
            margin=pair.margin,
        )
        for pair in expand_pairs(
            [
                RankedResponse(rid, rank, score)
                for rid, rank, score in zip(ids, ranks, given, strict=True)
            ]
        )
    )


def _store_rewards(db: Session, run: Run, rewards: dict[int, float]) -> None:
    for chunk in chunks(sorted(rewards)):
        db.execute(
            delete(ResponseScore).where(
                ResponseScore.model_id == run.base_model_id, ResponseScore.response_id.in_(chunk)
            )
        )
    db.add_all(
        ResponseScore(response_id=rid, model_id=run.base_model_id, run_id=run.id, score=value)
        for rid, value in rewards.items()
    )

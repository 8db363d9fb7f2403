"""Preference rows: one per labeler pair (source "pairs") or per consensus pair ("consensus").

Every row carries a consensus weight and its provenance, and the score margin when the
snapshot asks for one (SnapshotCreate.margin "score_gap"; no margin column otherwise, since
TRL's RewardTrainer puts any `margin` column into its loss). A margin is the chosen response's
score minus the rejected one's: on the 1-7 scale for labelers and for imported 1-7 scores,
the dataset's own rating difference for other imported ratings (UltraFeedback's overall_score,
1-10, or the mean of its 1-5 aspect ratings), and 0.0 (the plain Bradley-Terry term) where
either response is unscored (HH-RLHF, Open-Assistant, plain preference rows). The weight of a
labeler's pair is the export weight its task's consensus gives that ordered pair (0 when the
consensus ties or reverses it; null when the pair has no task or its task has no labeler
judgement, imports and rewrites). A consensus row has no labeler, comparison or pair (and
so no such columns); its margin is the mean score difference over the task's labeler
comparisons that scored both, its flags the union of every flag a labeler gave the response
in the task, and its guideline version the one all those comparisons share (null when they
differ). Consensus is over a task's labelers: imported comparisons belong to no task and are
never part of it (service.py refuses a consensus snapshot that would be empty, saying so).

Labeler pairs are the million-row path: pairs.py builds them column by column.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem, LabelSource, Prompt, Queue, Response, Task
from app.schemas.snapshots import SnapshotFilters
from app.services.agreement.service import task_consensus
from app.services.reviews import comparison_not_rejected
from app.services.snapshots.filters import agreeing_tasks
from app.services.snapshots.formats import (
    Chunk,
    assistant,
    chunk_from_rows,
    in_test,
    preference_schema,
    turns,
)

TASK_BATCH = 1_000  # tasks per consensus call


def _prompts(db: Session, ids: set[int]) -> dict[int, tuple[list[dict[str, str]], str]]:
    found = db.execute(
        select(Prompt.id, Prompt.messages, Prompt.content_hash).where(Prompt.id.in_(ids))
    )
    return {row.id: (turns(row.messages), row.content_hash) for row in found}


def _contents(db: Session, ids: set[int]) -> dict[int, str]:
    found = db.execute(select(Response.id, Response.content).where(Response.id.in_(ids)))
    return {response_id: content for response_id, content in found}


def consensus_chunks(
    db: Session, project_id: int, filters: SnapshotFilters, *, margin: bool = False
) -> Iterator[Chunk]:
    schema = preference_schema(margin=margin, consensus=True)
    keep = (
        None
        if filters.min_agreement is None
        else agreeing_tasks(db, project_id, filters.min_agreement)
    )
    # Rejected labels never make a consensus row (the filter that would include them does not
    # apply to consensus: app/services/snapshots/filters.py).
    counted = exists().where(
        Comparison.task_id == Task.id,
        Comparison.source == LabelSource.labeler,
        Comparison.all_unacceptable.is_(False),
        comparison_not_rejected(),
    )
    query = (
        select(Task.id, Task.prompt_id)
        .join(Queue, Queue.id == Task.queue_id)
        .where(Queue.project_id == project_id, counted)
        .order_by(Task.id)
    )
    if filters.queue_ids:
        query = query.where(Task.queue_id.in_(filters.queue_ids))
    if filters.exclude_gold:
        query = query.where(Task.is_gold.is_(False))
    tasks = [(task, prompt) for task, prompt in db.execute(query) if keep is None or task in keep]
    for start in range(0, len(tasks), TASK_BATCH):
        rows, test = _consensus_rows(db, tasks[start : start + TASK_BATCH], filters)
        if rows:
            yield chunk_from_rows(
                [{name: row[name] for name in schema.names} for row in rows], schema, test
            )


def _consensus_rows(
    db: Session, tasks: list[tuple[int, int]], filters: SnapshotFilters
) -> tuple[list[dict[str, Any]], list[bool]]:
    task_ids = [task for task, _ in tasks]
    items = db.execute(
        select(
            Comparison.task_id,
            Comparison.id,
            Comparison.guideline_version_id,
            Comparison.all_unacceptable,
            ComparisonItem.response_id,
            ComparisonItem.score,
            ComparisonItem.flags,
        )
        .join(ComparisonItem, ComparisonItem.comparison_id == Comparison.id)
        .where(
            Comparison.task_id.in_(task_ids),
            Comparison.source == LabelSource.labeler,
            comparison_not_rejected(),
        )
    ).all()
    flags: dict[tuple[int, int], set[str]] = {}
    versions: dict[int, set[int | None]] = {}
    scores: dict[int, dict[int, dict[int, int]]] = {}  # task -> comparison -> response: score
    for task, comparison, version, unacceptable, response, score, found in items:
        flags.setdefault((task, response), set()).update(found or [])
        versions.setdefault(task, set()).add(version)
        if not unacceptable and score is not None:
            scores.setdefault(task, {}).setdefault(comparison, {})[response] = score
    prompts = _prompts(db, {prompt for _, prompt in tasks})
    consensus = task_consensus(db, task_ids, without_rejected=True)
    contents = _contents(
        db,
        {p.winner_response_id for c in consensus for p in c.pairs}
        | {p.loser_response_id for c in consensus for p in c.pairs},
    )
    rows: list[dict[str, Any]] = []
    test: list[bool] = []
    for (task, prompt_id), found in zip(tasks, consensus, strict=True):
        messages, content_hash = prompts[prompt_id]
        task_versions = versions.get(task, set())
        version = next(iter(task_versions)) if len(task_versions) == 1 else None
        for pair in found.pairs:
            chosen, rejected = pair.winner_response_id, pair.loser_response_id
            flags_chosen = sorted(flags.get((task, chosen), ()))
            flags_rejected = sorted(flags.get((task, rejected), ()))
            if filters.exclude_flagged and (flags_chosen or flags_rejected):
                continue
            differences = [
                given[chosen] - given[rejected]
                for given in scores.get(task, {}).values()
                if chosen in given and rejected in given
            ]
            margin = sum(differences) / len(differences) if differences else None
            rows.append(
                {
                    "prompt": messages,
                    "chosen": assistant(contents[chosen]),
                    "rejected": assistant(contents[rejected]),
                    "margin": 0.0 if margin is None else float(margin),
                    "weight": pair.weight,
                    "labeler_id": None,
                    "comparison_id": None,
                    "pair_id": None,
                    "flags_chosen": flags_chosen,
                    "flags_rejected": flags_rejected,
                    "guideline_version_id": version,
                    "task_id": task,
                    "prompt_id": prompt_id,
                    "chosen_response_id": chosen,
                    "rejected_response_id": rejected,
                }
            )
            test.append(in_test(filters.seed, content_hash, filters.test_fraction))
    return rows, test

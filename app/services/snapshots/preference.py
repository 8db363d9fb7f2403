"""Preference rows: one per labeler pair (source "pairs") or per consensus pair ("consensus").

Every row carries the score margin, a consensus weight and its provenance. The weight of a
labeler's pair is the export weight its task's consensus gives that ordered pair (0 when the
consensus ties or reverses it; null when the pair has no task or its task has no labeler
judgement, imports and rewrites). A consensus row has no labeler, comparison or pair; its
margin is the mean score difference over the task's labeler comparisons that scored both,
its flags the union of every flag a labeler gave the response in the task, and its guideline
version the one all those comparisons share (null when they differ).

Labeler pairs are the million-row path, so they are built column-wise: each prompt,
response and flag list of a batch is encoded once (JSON and Arrow) and repeated by index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import pyarrow as pa
from sqlalchemy import Row, exists, select
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem, LabelSource, Pair, Prompt, Queue, Response, Task
from app.schemas.snapshots import SnapshotFilters
from app.services.agreement.service import task_consensus
from app.services.snapshots.filters import agreeing_tasks, label_conditions
from app.services.snapshots.formats import (
    FLAGS,
    MESSAGES,
    PREFERENCE,
    Chunk,
    assistant,
    chunk_from_rows,
    dumps,
    in_test,
    turns,
)

BATCH = 20_000  # rows per database fetch and per Parquet row group
TASK_BATCH = 1_000  # tasks per consensus call


def _num(value: int | float | None) -> str:
    return "null" if value is None else repr(value)


def pair_chunks(db: Session, project_id: int, filters: SnapshotFilters) -> Iterator[Chunk]:
    keep = (
        None
        if filters.min_agreement is None
        else agreeing_tasks(db, project_id, filters.min_agreement)
    )
    query = (
        select(
            Pair.id,
            Pair.comparison_id,
            Pair.prompt_id,
            Pair.winner_response_id,
            Pair.loser_response_id,
            Pair.margin,
            Comparison.labeler_id,
            Comparison.guideline_version_id,
            Comparison.task_id,
        )
        .join(Comparison, Comparison.id == Pair.comparison_id)
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .outerjoin(Task, Task.id == Comparison.task_id)
        .where(*label_conditions(Comparison, project_id, filters))
        .order_by(Pair.id)
    )
    result = db.execute(query, execution_options={"yield_per": BATCH})
    for rows in result.partitions():
        if keep is not None:
            rows = [row for row in rows if row.task_id in keep]
        chunk = _pair_chunk(db, rows, filters)
        if chunk.lines:
            yield chunk


def _prompts(db: Session, ids: set[int]) -> dict[int, tuple[list[dict[str, str]], str]]:
    found = db.execute(
        select(Prompt.id, Prompt.messages, Prompt.content_hash).where(Prompt.id.in_(ids))
    )
    return {row.id: (turns(row.messages), row.content_hash) for row in found}


def _contents(db: Session, ids: set[int]) -> dict[int, str]:
    found = db.execute(select(Response.id, Response.content).where(Response.id.in_(ids)))
    return {response_id: content for response_id, content in found}


def _weights(db: Session, task_ids: set[int]) -> tuple[dict[tuple[int, int, int], float], set[int]]:
    """({(task, winner, loser): consensus weight}, tasks that have a consensus)."""
    weights: dict[tuple[int, int, int], float] = {}
    judged: set[int] = set()
    ordered = sorted(task_ids)
    for start in range(0, len(ordered), TASK_BATCH):
        for found in task_consensus(db, ordered[start : start + TASK_BATCH]):
            if found.comparisons:
                judged.add(found.task_id)
            for pair in found.pairs:
                weights[found.task_id, pair.winner_response_id, pair.loser_response_id] = (
                    pair.weight
                )
    return weights, judged


class PairRow(NamedTuple):
    id: int
    comparison_id: int
    prompt_id: int
    winner_response_id: int
    loser_response_id: int
    margin: float | None
    labeler_id: int | None
    guideline_version_id: int | None
    task_id: int | None


def _pair_chunk(db: Session, found: Sequence[Row[Any]], filters: SnapshotFilters) -> Chunk:
    # Plain named tuples: a database Row's attribute access costs more than all the rest.
    rows = [PairRow._make(row) for row in found]
    comparison_ids = {row.comparison_id for row in rows}
    flags: dict[tuple[int, int], list[str]] = {}
    if comparison_ids:
        items = db.execute(
            select(
                ComparisonItem.comparison_id, ComparisonItem.response_id, ComparisonItem.flags
            ).where(ComparisonItem.comparison_id.in_(comparison_ids))
        )
        flags = {(item[0], item[1]): list(item[2] or []) for item in items}
    if filters.exclude_flagged:
        rows = [
            row
            for row in rows
            if not flags.get((row.comparison_id, row.winner_response_id))
            and not flags.get((row.comparison_id, row.loser_response_id))
        ]
    prompts = _prompts(db, {row.prompt_id for row in rows})
    contents = _contents(
        db, {row.winner_response_id for row in rows} | {row.loser_response_id for row in rows}
    )
    weights, judged = _weights(db, {row.task_id for row in rows if row.task_id is not None})

    # Each distinct prompt, response and flag list once: its index, JSON and Arrow value.
    prompt_index: dict[int, int] = {}
    prompt_json: list[str] = []
    prompt_values: list[list[dict[str, str]]] = []
    response_index: dict[int, int] = {}
    response_json: list[str] = []
    response_values: list[list[dict[str, str]]] = []
    flag_index: dict[tuple[str, ...], int] = {}
    flag_json: list[str] = []
    test_of: dict[int, bool] = {}

    def prompt_at(prompt_id: int) -> int:
        if prompt_id not in prompt_index:
            messages, content_hash = prompts[prompt_id]
            prompt_index[prompt_id] = len(prompt_values)
            prompt_values.append(messages)
            prompt_json.append(dumps(messages))  # type: ignore[arg-type]
            test_of[prompt_id] = in_test(filters.seed, content_hash, filters.test_fraction)
        return prompt_index[prompt_id]

    def response_at(response_id: int) -> int:
        if response_id not in response_index:
            turn = assistant(contents[response_id])
            response_index[response_id] = len(response_values)
            response_values.append(turn)
            response_json.append(dumps(turn))  # type: ignore[arg-type]
        return response_index[response_id]

    def flags_at(found: list[str] | None) -> int:
        key = tuple(found or ())
        if key not in flag_index:
            flag_index[key] = len(flag_json)
            flag_json.append(dumps(list(key)))  # type: ignore[arg-type]
        return flag_index[key]

    columns: dict[str, list[Any]] = {name: [] for name in PREFERENCE.names}
    lines: list[str] = []
    test: list[bool] = []
    for row in rows:
        p = prompt_at(row.prompt_id)
        c = response_at(row.winner_response_id)
        r = response_at(row.loser_response_id)
        fc = flags_at(flags.get((row.comparison_id, row.winner_response_id)))
        fr = flags_at(flags.get((row.comparison_id, row.loser_response_id)))
        task = row.task_id
        weight = (
            weights.get((task, row.winner_response_id, row.loser_response_id), 0.0)
            if task in judged
            else None
        )
        margin = None if row.margin is None else float(row.margin)
        values = (
            p, c, r, margin, weight, row.labeler_id, row.comparison_id, row.id, fc, fr,
            row.guideline_version_id, task, row.prompt_id, row.winner_response_id,
            row.loser_response_id,
        )  # fmt: skip
        for column, value in zip(columns.values(), values, strict=True):
            column.append(value)
        lines.append(
            f'{{"prompt":{prompt_json[p]},"chosen":{response_json[c]},'
            f'"rejected":{response_json[r]},"margin":{_num(margin)},"weight":{_num(weight)},'
            f'"labeler_id":{_num(row.labeler_id)},"comparison_id":{row.comparison_id},'
            f'"pair_id":{row.id},"flags_chosen":{flag_json[fc]},'
            f'"flags_rejected":{flag_json[fr]},'
            f'"guideline_version_id":{_num(row.guideline_version_id)},"task_id":{_num(task)},'
            f'"prompt_id":{row.prompt_id},"chosen_response_id":{row.winner_response_id},'
            f'"rejected_response_id":{row.loser_response_id}}}'
        )
        test.append(test_of[row.prompt_id])

    prompt_array = pa.array(prompt_values, MESSAGES)
    response_array = pa.array(response_values, MESSAGES)
    flag_array = pa.array([list(key) for key in flag_index], FLAGS)
    repeated = {
        "prompt": prompt_array,
        "chosen": response_array,
        "rejected": response_array,
        "flags_chosen": flag_array,
        "flags_rejected": flag_array,
    }
    arrays = [
        repeated[name].take(pa.array(columns[name], pa.int32()))
        if name in repeated
        else pa.array(columns[name], PREFERENCE.field(name).type)
        for name in PREFERENCE.names
    ]
    return Chunk(pa.Table.from_arrays(arrays, schema=PREFERENCE), lines, test)


def consensus_chunks(db: Session, project_id: int, filters: SnapshotFilters) -> Iterator[Chunk]:
    keep = (
        None
        if filters.min_agreement is None
        else agreeing_tasks(db, project_id, filters.min_agreement)
    )
    counted = exists().where(
        Comparison.task_id == Task.id,
        Comparison.source == LabelSource.labeler,
        Comparison.all_unacceptable.is_(False),
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
            yield chunk_from_rows(rows, PREFERENCE, test)


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
        .where(Comparison.task_id.in_(task_ids), Comparison.source == LabelSource.labeler)
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
    consensus = task_consensus(db, task_ids)
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
                    "margin": None if margin is None else float(margin),
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

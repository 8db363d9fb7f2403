"""The reward model against people: where a reward model's scores disagree with the labelers'
consensus, and queueing those pairs for another look.

Judged pairs are the consensus pairs of the project's comparison tasks (weighted Borda, see
app/services/agreement/consensus.py) that at least one labeler ordered: the same counting
comparisons and labeler reliability as the agreement page. A response pair judged in several
tasks (queued again for another look) is judged by its latest task: the new look replaces the
old one rather than being outvoted by it.

The model agrees with a pair when it scores the winner strictly higher than the loser; an
equal score is not agreement (the model cannot tell them apart). Pairs whose two responses
do not both have a ResponseScore of the model are counted as not scored: a score run fills
them in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    Model,
    ModelRole,
    Prompt,
    Queue,
    QueueKind,
    Response,
    ResponseScore,
    Run,
    RunKind,
    Task,
    TaskResponse,
    User,
)
from app.schemas.audit import AuditPair, AuditRequeueOut, PairRef, RewardAudit
from app.schemas.queues import MAX_TASK_ITEMS, TaskItem, TasksAdd
from app.schemas.training import RunCreate
from app.services import registry, runs
from app.services.agreement.consensus import consensus
from app.services.agreement.loading import load_ratings
from app.services.agreement.reliability import project_reliability
from app.services.prompts import get_project_checked
from app.services.queues import chunks, get_queue
from app.services.tasks import add_tasks
from app.settings import Settings

DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class JudgedPair:
    task_id: int
    winner: int
    loser: int
    labelers: int
    agreeing: int
    support: float | None


def audited_reward_model(db: Session, project_id: int | None, model_id: int) -> tuple[Model, int]:
    """(the model, the project audited), refusing a model that is not a reward model usable
    in the project. No project given: the model's own."""
    model = registry.get_model(db, model_id)
    if project_id is None:
        if model.project_id is None:
            raise InvalidInput(
                f"model {model.id} is registered for every project: say which project",
                field="project_id",
            )
        project_id = model.project_id
    get_project_checked(db, project_id)
    if model.role != ModelRole.reward:
        raise InvalidInput(
            f"model {model.id} is a {model.role.value} model; only a reward model scores "
            "responses to audit",
            field="model_id",
        )
    if model.project_id is not None and model.project_id != project_id:
        raise InvalidInput(
            f"model {model.id} belongs to project {model.project_id}, not {project_id}",
            field="model_id",
        )
    return model, project_id


def judged_pairs(db: Session, project_id: int) -> list[JudgedPair]:
    """Every response pair the labelers' consensus ordered (see the module docstring)."""
    ratings = load_ratings(db, project_ids=[project_id])
    if len(ratings) == 0:
        return []
    result = consensus(ratings, project_reliability(ratings))
    latest: dict[frozenset[int], tuple[int, int, int, float]] = {}
    for task, winner, loser, ordered, share in zip(
        result.pair_task.tolist(),
        result.winner.tolist(),
        result.loser.tolist(),
        result.labelers.tolist(),
        result.support.tolist(),
        strict=True,
    ):
        key = frozenset((winner, loser))
        if ordered > 0 and (key not in latest or latest[key][0] < task):
            latest[key] = (task, winner, loser, share)

    # Unweighted counts, from each counting judgement's ranks in the pair's task.
    tasks = sorted({task for task, *_ in latest.values()})
    rows = np.isin(ratings.task, tasks)
    ranks: dict[tuple[int, int], dict[int, float]] = {}
    for task, labeler, response, rank in zip(
        ratings.task[rows].tolist(),
        ratings.labeler[rows].tolist(),
        ratings.response[rows].tolist(),
        ratings.rank[rows].tolist(),
        strict=True,
    ):
        if not math.isnan(rank):
            ranks.setdefault((task, labeler), {})[response] = rank
    by_task: dict[int, list[dict[int, float]]] = {}
    for (task, _), ranked in ranks.items():
        by_task.setdefault(task, []).append(ranked)

    found = []
    for task, winner, loser, share in latest.values():
        votes = [
            ranked[winner] < ranked[loser]
            for ranked in by_task.get(task, [])
            if winner in ranked and loser in ranked and ranked[winner] != ranked[loser]
        ]
        found.append(
            JudgedPair(
                task_id=task,
                winner=winner,
                loser=loser,
                labelers=len(votes),
                agreeing=sum(votes),
                support=None if math.isnan(share) else share,
            )
        )
    return sorted(found, key=lambda pair: (pair.task_id, pair.winner, pair.loser))


def _scores(db: Session, model_id: int, response_ids: Sequence[int]) -> dict[int, float]:
    found: dict[int, float] = {}
    for chunk in chunks(sorted(set(response_ids))):
        rows = db.execute(
            select(ResponseScore.response_id, ResponseScore.score).where(
                ResponseScore.model_id == model_id, ResponseScore.response_id.in_(chunk)
            )
        )
        found.update((rid, score) for rid, score in rows)
    return found


def _texts(db: Session, response_ids: Sequence[int]) -> dict[int, tuple[int, str, str]]:
    """{response id: (prompt id, the prompt's last turn, the response)}."""
    found: dict[int, tuple[int, str, str]] = {}
    for chunk in chunks(sorted(set(response_ids))):
        rows = db.execute(
            select(Response.id, Response.prompt_id, Prompt.messages, Response.content)
            .join(Prompt, Prompt.id == Response.prompt_id)
            .where(Response.id.in_(chunk))
        )
        for response_id, prompt_id, messages, content in rows:
            last = str(messages[-1].get("content", "")) if messages else ""
            found[response_id] = (prompt_id, last, content)
    return found


def _disagreements(
    db: Session, model_id: int, pairs: list[JudgedPair]
) -> tuple[int, int, list[tuple[JudgedPair, float, float]]]:
    """(pairs checked, agreeing, disagreeing pairs with their scores, most confident first)."""
    scores = _scores(db, model_id, [r for pair in pairs for r in (pair.winner, pair.loser)])
    checked = agreeing = 0
    against = []
    for pair in pairs:
        if pair.winner not in scores or pair.loser not in scores:
            continue
        checked += 1
        winner_score, loser_score = scores[pair.winner], scores[pair.loser]
        if winner_score > loser_score:
            agreeing += 1
        else:
            against.append((pair, winner_score, loser_score))
    against.sort(key=lambda found: (-(found[2] - found[1]), found[0].task_id, found[0].winner))
    return checked, agreeing, against


def reward_audit(
    db: Session, project_id: int | None, model_id: int, *, limit: int | None = DEFAULT_LIMIT
) -> RewardAudit:
    """How often the reward model agrees with the labelers' consensus, and the pairs where it
    disagrees most confidently (at most `limit`; None lists them all)."""
    if limit is not None and limit < 0:
        raise InvalidInput("limit cannot be negative", field="limit")
    model, project_id = audited_reward_model(db, project_id, model_id)
    pairs = judged_pairs(db, project_id)
    checked, agreeing, against = _disagreements(db, model.id, pairs)
    shown = against if limit is None else against[:limit]
    texts = _texts(db, [r for pair, _, _ in shown for r in (pair.winner, pair.loser)])
    return RewardAudit(
        project_id=project_id,
        model_id=model.id,
        model_name=model.name,
        judged_pairs=len(pairs),
        checked_pairs=checked,
        agreeing_pairs=agreeing,
        agreement_rate=agreeing / checked if checked else None,
        not_scored_pairs=len(pairs) - checked,
        needs_score_run=checked < len(pairs),
        disagreeing_pairs=len(against),
        disagreements=[
            AuditPair(
                task_id=pair.task_id,
                prompt_id=texts[pair.winner][0],
                prompt_text=texts[pair.winner][1],
                winner_response_id=pair.winner,
                loser_response_id=pair.loser,
                winner_text=texts[pair.winner][2],
                loser_text=texts[pair.loser][2],
                winner_score=winner_score,
                loser_score=loser_score,
                score_gap=loser_score - winner_score,
                labelers=pair.labelers,
                agreeing_labelers=pair.agreeing,
                support=pair.support,
            )
            for pair, winner_score, loser_score in shown
        ],
    )


# --- queueing pairs for another look -----------------------------------------------------------


def _audit_queue(db: Session, project_id: int, queue_id: int) -> Queue:
    queue = get_queue(db, queue_id)
    if queue.project_id != project_id:
        raise InvalidInput(f"queue {queue.id} is not in project {project_id}", field="queue_id")
    if queue.kind != QueueKind.comparison:
        raise InvalidInput(
            f"queue {queue.id} is a {queue.kind.value} queue; pairs go to a comparison queue",
            field="queue_id",
        )
    return queue


def _checked_pairs(db: Session, project_id: int, pairs: Sequence[PairRef]) -> list[tuple[int, ...]]:
    """(prompt id, response a, response b) per pair, a < b; refuses responses that are not two
    different responses to one prompt of the project."""
    ids = sorted({r for pair in pairs for r in (pair.winner_response_id, pair.loser_response_id)})
    owners: dict[int, tuple[int, int]] = {}
    for chunk in chunks(ids):
        rows = db.execute(
            select(Response.id, Response.prompt_id, Prompt.project_id)
            .join(Prompt, Prompt.id == Response.prompt_id)
            .where(Response.id.in_(chunk))
        )
        owners.update((rid, (prompt, project)) for rid, prompt, project in rows)
    found = []
    for index, pair in enumerate(pairs):
        where = f"pairs.{index}"
        a, b = sorted((pair.winner_response_id, pair.loser_response_id))
        if a == b:
            raise InvalidInput("a pair needs two different responses", field=where)
        for response_id in (a, b):
            if response_id not in owners:
                raise InvalidInput(f"no response with id {response_id}", field=where)
            if owners[response_id][1] != project_id:
                raise InvalidInput(
                    f"response {response_id} is not in project {project_id}", field=where
                )
        if owners[a][0] != owners[b][0]:
            raise InvalidInput(f"responses {a} and {b} answer different prompts", field=where)
        found.append((owners[a][0], a, b))
    return found


def _live_pairs(db: Session, queue_id: int, prompt_ids: Sequence[int]) -> set[tuple[int, int]]:
    """Response pairs (a < b) that a live (not retired) two-response task of the queue shows."""
    shown: dict[int, list[int]] = {}
    for chunk in chunks(sorted(set(prompt_ids))):
        rows = db.execute(
            select(TaskResponse.task_id, TaskResponse.response_id)
            .join(Task, Task.id == TaskResponse.task_id)
            .where(Task.queue_id == queue_id, Task.retired_at.is_(None), Task.prompt_id.in_(chunk))
        )
        for task_id, response_id in rows:
            shown.setdefault(task_id, []).append(response_id)
    return {(min(ids), max(ids)) for ids in shown.values() if len(ids) == 2}


def queue_audit_pairs(
    db: Session,
    project_id: int | None,
    model_id: int,
    queue_id: int,
    pairs: Sequence[PairRef] | None = None,
    *,
    acting: User,
) -> AuditRequeueOut:
    """One two-response comparison task per pair (every disagreement of the audit when
    `pairs` is None) in a comparison queue of the project; a pair the queue already shows in
    a live task is skipped. The responses are stored lower id first, so the stored order
    says nothing about the consensus (the workbench shuffles the display anyway). `acting`
    is who asked; tasks record no creator, so it is not stored yet."""
    _, project_id = audited_reward_model(db, project_id, model_id)
    queue = _audit_queue(db, project_id, queue_id)
    if pairs is None:
        audit = reward_audit(db, project_id, model_id, limit=None)
        pairs = [
            PairRef(winner_response_id=p.winner_response_id, loser_response_id=p.loser_response_id)
            for p in audit.disagreements
        ]
    wanted = _checked_pairs(db, project_id, pairs)
    taken = _live_pairs(db, queue.id, [prompt for prompt, _, _ in wanted])
    items = []
    for prompt_id, a, b in wanted:
        if (a, b) in taken:
            continue
        taken.add((a, b))  # the same pair twice in one request: one task
        items.append(TaskItem(prompt_id=prompt_id, response_ids=[a, b]))
    task_ids: list[int] = []
    for start in range(0, len(items), MAX_TASK_ITEMS):
        batch = TasksAdd(items=items[start : start + MAX_TASK_ITEMS])
        task_ids.extend(task.id for task in add_tasks(db, queue.id, batch))
    return AuditRequeueOut(
        queue_id=queue.id,
        created=len(task_ids),
        skipped=len(wanted) - len(task_ids),
        task_ids=task_ids,
    )


def launch_score_run(
    db: Session, settings: Settings, project_id: int | None, model_id: int, *, acting: User
) -> Run:
    """A score run of the reward model over every response the labelers judged, so the audit
    can check the pairs it could not yet."""
    model, project_id = audited_reward_model(db, project_id, model_id)
    data = RunCreate(
        kind=RunKind.score,
        base_model_id=model.id,
        reward_model_id=model.id,
        hyperparameters={"responses": "judged"},
    )
    return runs.create_run(db, settings, project_id, data, acting=acting)

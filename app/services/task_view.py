"""One task with everything its labels say, for an admin or researcher to compare: the
prompt, its responses, each labeler's judgement side by side, the consensus, and how often
each two labelers order each response pair the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import (
    Comparison,
    ComparisonItem,
    Demonstration,
    LabelReview,
    LabelSource,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    Task,
    TaskResponse,
    User,
)
from app.schemas.agreement import TaskConsensus
from app.services.agreement.service import task_consensus
from app.services.prompts import storable_id


@dataclass(frozen=True)
class Judgement:
    comparison: Comparison
    labeler: str
    # response id -> its item (score, rank, flags, flag note)
    items: dict[int, ComparisonItem]
    review: LabelReview | None


@dataclass(frozen=True)
class Written:
    demonstration: Demonstration
    labeler: str
    review: LabelReview | None


@dataclass(frozen=True)
class PairAgreement:
    first: int  # response ids
    second: int
    # Labelers who ordered the pair (a tie orders nothing), and their pairs that agree.
    labelers: int
    agreeing_pairs: int
    labeler_pairs: int

    @property
    def rate(self) -> float | None:
        return None if self.labeler_pairs == 0 else self.agreeing_pairs / self.labeler_pairs


@dataclass
class TaskView:
    task: Task
    queue: Queue
    project: Project
    prompt: Prompt
    responses: list[Response]
    judgements: list[Judgement] = field(default_factory=list)
    demonstrations: list[Written] = field(default_factory=list)
    consensus: TaskConsensus | None = None
    pairs: list[PairAgreement] = field(default_factory=list)


def task_view(db: Session, task_id: int) -> TaskView:
    task = db.get(Task, task_id) if storable_id(task_id) else None
    if task is None:
        raise NotFound(f"no task with id {task_id}")
    queue = db.get(Queue, task.queue_id)
    prompt = db.get(Prompt, task.prompt_id)
    assert queue is not None and prompt is not None  # foreign keys
    project = db.get(Project, queue.project_id)
    assert project is not None
    responses = list(
        db.scalars(
            select(Response)
            .join(TaskResponse, TaskResponse.response_id == Response.id)
            .where(TaskResponse.task_id == task.id)
            .order_by(TaskResponse.position)
        )
    )
    view = TaskView(task=task, queue=queue, project=project, prompt=prompt, responses=responses)
    if queue.kind == QueueKind.demonstration:
        rows = db.execute(
            select(Demonstration, User.username, LabelReview)
            .outerjoin(User, User.id == Demonstration.labeler_id)
            .outerjoin(LabelReview, LabelReview.demonstration_id == Demonstration.id)
            .where(Demonstration.task_id == task.id)
            .order_by(Demonstration.id)
        ).all()
        view.demonstrations.extend(Written(row[0], row[1] or "import", row[2]) for row in rows)
        return view

    rows = db.execute(
        select(Comparison, User.username, LabelReview)
        .outerjoin(User, User.id == Comparison.labeler_id)
        .outerjoin(LabelReview, LabelReview.comparison_id == Comparison.id)
        .where(Comparison.task_id == task.id, Comparison.rewrite_in_comparison_id.is_(None))
        .order_by(Comparison.id)
    ).all()
    ids = [row[0].id for row in rows]
    items: dict[int, dict[int, ComparisonItem]] = {comparison: {} for comparison in ids}
    if ids:
        for item in db.scalars(select(ComparisonItem).where(ComparisonItem.comparison_id.in_(ids))):
            items[item.comparison_id][item.response_id] = item
    view.judgements.extend(
        Judgement(row[0], row[1] or _unnamed(row[0]), items[row[0].id], row[2]) for row in rows
    )
    # The pairs' agreement is the people's: a judge's label is shown, not counted.
    people = [j for j in view.judgements if j.comparison.source != LabelSource.ai]
    view.pairs.extend(_pair_agreement(people, [r.id for r in responses]))
    view.consensus = task_consensus(db, [task.id])[0]
    return view


def _unnamed(comparison: Comparison) -> str:
    if comparison.source == LabelSource.ai:
        return f"{comparison.source_name} (AI judge)"
    return "import"


def _pair_agreement(judgements: list[Judgement], response_ids: list[int]) -> list[PairAgreement]:
    """Per response pair: of the labeler pairs who both ordered it, how many ordered it the
    same way (the definition of pairwise agreement, for this task alone)."""
    found = []
    for first, second in combinations(response_ids, 2):
        orders = []
        for judgement in judgements:
            a, b = judgement.items.get(first), judgement.items.get(second)
            if a is None or b is None or a.rank is None or b.rank is None or a.rank == b.rank:
                continue
            orders.append(a.rank < b.rank)
        labeler_pairs = len(orders) * (len(orders) - 1) // 2
        agreeing = sum(x == y for x, y in combinations(orders, 2))
        found.append(PairAgreement(first, second, len(orders), agreeing, labeler_pairs))
    return found

"""The project dashboard on a hand-made project whose every figure is worked out below.

Project "Support": cost 2.50 per demonstration, 0.40 per comparison; flags fails_instruction,
hallucination, harmful_advice (labelled "@risk: harmful advice", a formula for a spreadsheet),
private_information. Labelers ann, bob, cat; dan only holds a lease. NOW = 2024-05-03 12:00.

  queue "demos" (demonstration, overlap 2): D1 generation, D2 generation, D3 open_qa
    ann D1 30 s, ann D2 90 s (finished 30 min before NOW), bob D1 60 s;
    an import on D3 (not counted); cat holds an active lease on D1.
  queue "pairs" (comparison, overlap 3): C1 brainstorming (r1 r2 r3), C2 chat (r4 r5, gold
  r4 > r5)
    ann C1 ranks 1 2 3 (3 pairs), 45 s, day 1; flags r1 hallucination, r3 hallucination +
      harmful_advice; her rewrite of r1 (a comparison inside hers: not counted again)
    bob C1 ranks 1 2 2 (2 pairs), 20 s, day 1; flags r2 hallucination
    cat C1 all unacceptable, 100 s, day 1; flags r1 r2 fails_instruction, r3 legacy_flag
    cat C2 ranks 2 1 (1 pair), 40 s, day 2
    bob C2 ranks 1 2 (1 pair), no time, day 2 (assignment since superseded)
    an import on C2 with a pair and a hallucination flag (not counted)
  a summarization prompt with no task. Another project's labels count nowhere here.

  assignments: ann submitted D1 D2 C1, skipped D3 C2 -> 2 of 5 = 40%
               bob submitted D1 C1, superseded C2, skipped D2, expired D3 -> 1 of 4 = 25%
               cat submitted C1 C2, active D1 -> 0 of 2 = 0%; dan active C2 -> no row
  medians: ann (30, 45, 90) 45; bob (20, 60) 40; cat (40, 100) 70
  agreement (counted: ann C1, bob C1, bob C2, cat C2): C1 (r1,r2), (r1,r3): ann and bob agree;
    (r2,r3) bob tied; C2 (r4,r5): bob and cat disagree. ann 2/2, bob 2/3, cat 0/1, overall 2/3.
    Gold C2: bob right (1 of 1), cat wrong (0 of 1).
  spend: 3 demonstrations x 2.50 = 7.50, 5 comparisons x 0.40 = 2.00, 9.50 in all;
    usable pairs 3 + 2 + 1 + 1 = 7; 2.00 / 7 = 0.2857 per pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    Demonstration,
    LabelSource,
    Pair,
    Project,
    Prompt,
    PromptCategory,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Role,
    Task,
    TaskResponse,
    User,
)
from app.schemas.agreement import AgreementPoint
from app.schemas.dashboard import CategoryCount, CostSummary, FlagCount
from app.schemas.queues import QueueProgress
from app.services import dashboard
from app.services.agreement.service import agreement_report
from app.services.dashboard import exports

NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
DAY1 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
DAY2 = datetime(2024, 5, 2, 10, 0, tzinfo=UTC)

SCHEMA = {
    "flags": [
        {"key": "fails_instruction", "label": "Fails to follow the instruction"},
        {"key": "hallucination", "label": "Hallucination"},
        {"key": "harmful_advice", "label": "@risk: harmful advice"},
        {"key": "private_information", "label": "Contains private information"},
    ]
}


@dataclass
class DashboardWorld:
    project: Project
    other: Project
    demos: Queue
    pairs: Queue
    ann: User
    bob: User
    cat: User
    dan: User


def make_labeler(db: Session, username: str) -> User:
    user = User(username=username, role=Role.labeler, password_hash="not-a-hash")
    db.add(user)
    db.flush()
    return user


def _prompt(db: Session, project: Project, category: PromptCategory) -> Prompt:
    prompt = Prompt(
        project_id=project.id,
        messages=[{"role": "user", "content": f"a {category.value} prompt"}],
        category=category,
        source="test",
        content_hash="0" * 64,
    )
    db.add(prompt)
    db.flush()
    return prompt


def _task(
    db: Session, queue: Queue, prompt: Prompt, responses: int = 0, gold: bool = False
) -> tuple[Task, list[int]]:
    ids = []
    for number in range(responses):
        response = Response(
            prompt_id=prompt.id, content=f"answer {number}", source=ResponseSource.imported
        )
        db.add(response)
        db.flush()
        ids.append(response.id)
    task = Task(queue_id=queue.id, prompt_id=prompt.id, overlap=queue.overlap, is_gold=gold)
    if gold:
        task.gold_answer = {"ranking": [[response_id] for response_id in ids]}
    db.add(task)
    db.flush()
    for position, response_id in enumerate(ids):
        db.add(TaskResponse(task_id=task.id, response_id=response_id, position=position))
    db.flush()
    return task, ids


def _assign(
    db: Session,
    task: Task,
    labeler: User,
    status: AssignmentStatus,
    finished: datetime | None = NOW - timedelta(hours=3),
) -> Assignment:
    leased = (finished or NOW) - timedelta(minutes=5)
    assignment = Assignment(
        task_id=task.id,
        labeler_id=labeler.id,
        status=status,
        leased_at=leased,
        lease_expires_at=leased + timedelta(hours=1),
        finished_at=None if status == AssignmentStatus.active else finished,
    )
    db.add(assignment)
    db.flush()
    return assignment


def _demonstrate(
    db: Session, task: Task, labeler: User | None, seconds: float | None, at: datetime = DAY1
) -> Demonstration:
    demonstration = Demonstration(
        task_id=task.id,
        prompt_id=task.prompt_id,
        labeler_id=labeler.id if labeler else None,
        source=LabelSource.labeler if labeler else LabelSource.imported,
        messages=[{"role": "assistant", "content": "Here you are."}],
        time_spent_seconds=seconds,
        created_at=at,
    )
    db.add(demonstration)
    db.flush()
    return demonstration


def _compare(
    db: Session,
    task: Task | None,
    prompt_id: int,
    labeler: User | None,
    ranks: dict[int, int | None],
    *,
    seconds: float | None = None,
    at: datetime = DAY1,
    flags: dict[int, list[str]] | None = None,
    all_unacceptable: bool = False,
    rewrite_of: Comparison | None = None,
) -> Comparison:
    """A comparison with its items and, as submit_comparison stores them, its pairs."""
    comparison = Comparison(
        task_id=task.id if task else None,
        prompt_id=prompt_id,
        labeler_id=labeler.id if labeler else None,
        source=LabelSource.labeler if labeler else LabelSource.imported,
        all_unacceptable=all_unacceptable,
        time_spent_seconds=seconds,
        created_at=at,
        rewrite_in_comparison_id=rewrite_of.id if rewrite_of else None,
    )
    db.add(comparison)
    db.flush()
    for response_id, rank in ranks.items():
        db.add(
            ComparisonItem(
                comparison_id=comparison.id,
                response_id=response_id,
                rank=rank,
                score=4,
                flags=(flags or {}).get(response_id, []),
            )
        )
    ranked = sorted((rank, rid) for rid, rank in ranks.items() if rank is not None)
    for index, (better_rank, better) in enumerate(ranked):
        for worse_rank, worse in ranked[index + 1 :]:
            if better_rank < worse_rank:
                db.add(
                    Pair(
                        comparison_id=comparison.id,
                        prompt_id=prompt_id,
                        winner_response_id=better,
                        loser_response_id=worse,
                    )
                )
    db.flush()
    return comparison


def build_dashboard_world(db: Session) -> DashboardWorld:
    project = Project(
        name="Support",
        label_schema=SCHEMA,
        cost_per_demonstration=Decimal("2.50"),
        cost_per_comparison=Decimal("0.40"),
    )
    other = Project(name="Elsewhere", label_schema=SCHEMA, cost_per_comparison=Decimal("9.00"))
    db.add_all([project, other])
    db.flush()
    demos = Queue(
        project_id=project.id, name="demos", kind=QueueKind.demonstration, overlap=2, max_overlap=2
    )
    pairs = Queue(
        project_id=project.id, name="pairs", kind=QueueKind.comparison, overlap=3, max_overlap=3
    )
    elsewhere = Queue(project_id=other.id, name="elsewhere", kind=QueueKind.comparison)
    db.add_all([demos, pairs, elsewhere])
    db.flush()
    ann, bob, cat, dan = (make_labeler(db, name) for name in ("ann", "bob", "cat", "dan"))

    d1, _ = _task(db, demos, _prompt(db, project, PromptCategory.generation))
    d2, _ = _task(db, demos, _prompt(db, project, PromptCategory.generation))
    d3, _ = _task(db, demos, _prompt(db, project, PromptCategory.open_qa))
    c1, (r1, r2, r3) = _task(db, pairs, _prompt(db, project, PromptCategory.brainstorming), 3)
    c2, (r4, r5) = _task(db, pairs, _prompt(db, project, PromptCategory.chat), 2, gold=True)
    _prompt(db, project, PromptCategory.summarization)

    _demonstrate(db, d1, ann, 30)
    _demonstrate(db, d2, ann, 90)
    _demonstrate(db, d1, bob, 60)
    _demonstrate(db, d3, None, None)

    ann_c1 = _compare(
        db,
        c1,
        c1.prompt_id,
        ann,
        {r1: 1, r2: 2, r3: 3},
        seconds=45,
        flags={r1: ["hallucination"], r3: ["hallucination", "harmful_advice"]},
    )
    edited = Response(prompt_id=c1.prompt_id, content="better", source=ResponseSource.human)
    edited.author_id = ann.id
    db.add(edited)
    db.flush()
    _compare(
        db,
        None,
        c1.prompt_id,
        ann,
        {edited.id: 1, r1: 2},
        seconds=12,
        flags={r1: ["harmful_advice"]},
        rewrite_of=ann_c1,
    )
    _compare(
        db, c1, c1.prompt_id, bob, {r1: 1, r2: 2, r3: 2}, seconds=20, flags={r2: ["hallucination"]}
    )
    _compare(
        db,
        c1,
        c1.prompt_id,
        cat,
        {r1: None, r2: None, r3: None},
        seconds=100,
        all_unacceptable=True,
        flags={r1: ["fails_instruction"], r2: ["fails_instruction"], r3: ["legacy_flag"]},
    )
    _compare(db, c2, c2.prompt_id, cat, {r4: 2, r5: 1}, seconds=40, at=DAY2)
    _compare(db, c2, c2.prompt_id, bob, {r4: 1, r5: 2}, seconds=None, at=DAY2 + timedelta(hours=1))
    _compare(db, c2, c2.prompt_id, None, {r4: 1, r5: 2}, flags={r4: ["hallucination"]})

    submitted, skipped = AssignmentStatus.submitted, AssignmentStatus.skipped
    _assign(db, d1, ann, submitted)
    _assign(db, d2, ann, submitted, NOW - timedelta(minutes=30))
    _assign(db, c1, ann, submitted)
    _assign(db, d3, ann, skipped)
    _assign(db, c2, ann, skipped)
    _assign(db, d1, bob, submitted)
    _assign(db, c1, bob, submitted)
    _assign(db, c2, bob, AssignmentStatus.superseded)
    _assign(db, d2, bob, skipped)
    _assign(db, d3, bob, AssignmentStatus.expired)
    _assign(db, c1, cat, submitted)
    _assign(db, c2, cat, submitted)
    _assign(db, d1, cat, AssignmentStatus.active, None)
    _assign(db, c2, dan, AssignmentStatus.active, None)

    # Another project: the same labelers, a flag, a pair, a skip; none of it counts above.
    e1, (e_r1, e_r2) = _task(db, elsewhere, _prompt(db, other, PromptCategory.chat), 2)
    _compare(
        db, e1, e1.prompt_id, ann, {e_r1: 1, e_r2: 2}, seconds=999, flags={e_r1: ["hallucination"]}
    )
    _assign(db, e1, ann, skipped)
    db.commit()
    return DashboardWorld(project, other, demos, pairs, ann, bob, cat, dan)


@pytest.fixture
def world(db: Session) -> DashboardWorld:
    return build_dashboard_world(db)


# --- queue progress ---------------------------------------------------------------------------


def test_queue_progress_of_every_queue(db: Session, world: DashboardWorld) -> None:
    found = dashboard.project_dashboard(db, world.project.id, now=NOW)

    assert [(row.queue_id, row.name, row.kind, row.is_paused) for row in found.queues] == [
        (world.demos.id, "demos", QueueKind.demonstration, False),
        (world.pairs.id, "pairs", QueueKind.comparison, False),
    ]
    # demos: 3 tasks x 2 = 6 labels, 3 done, cat's lease in progress, 2 left; one done in the
    # last hour gives an ETA of 2 hours. pairs: 2 x 3 = 6, 4 submitted (bob's C2 was
    # superseded), nothing in the last hour.
    assert found.queues[0].progress == QueueProgress(
        tasks=3, required=6, done=3, in_progress=1, left=2, per_hour=1, eta_seconds=7200
    )
    assert found.queues[1].progress == QueueProgress(
        tasks=2, required=6, done=4, in_progress=1, left=1, per_hour=0, eta_seconds=None
    )


# --- labelers ---------------------------------------------------------------------------------


def expected_labeler_rows(world: DashboardWorld) -> list[dict[str, object]]:
    """The per-labeler table of the world, worked out by hand (also the API's answer)."""
    return [
        {
            "labeler_id": world.ann.id,
            "username": "ann",
            "demonstrations": 2,
            "comparisons": 1,
            "labels": 3,
            "median_seconds": 45.0,
            "submitted": 3,
            "skipped": 2,
            "skip_rate": 0.4,
            "pairwise_agreement": 1.0,
            "agreement_pairs": 2,
            "gold_pairs": 0,
            "gold_accuracy": None,
        },
        {
            "labeler_id": world.bob.id,
            "username": "bob",
            "demonstrations": 1,
            "comparisons": 2,
            "labels": 3,
            "median_seconds": 40.0,
            "submitted": 3,
            "skipped": 1,
            "skip_rate": 0.25,
            "pairwise_agreement": 2 / 3,
            "agreement_pairs": 3,
            "gold_pairs": 1,
            "gold_accuracy": 1.0,
        },
        {
            "labeler_id": world.cat.id,
            "username": "cat",
            "demonstrations": 0,
            "comparisons": 2,
            "labels": 2,
            "median_seconds": 70.0,
            "submitted": 2,
            "skipped": 0,
            "skip_rate": 0.0,
            "pairwise_agreement": 0.0,
            "agreement_pairs": 1,
            "gold_pairs": 1,
            "gold_accuracy": 0.0,
        },
    ]


def test_labeler_rows_volume_medians_skips_agreement_and_gold(
    db: Session, world: DashboardWorld
) -> None:
    rows = dashboard.labeler_rows(db, world.project.id)

    assert [row.model_dump() for row in rows] == expected_labeler_rows(world)


def test_labeler_agreement_is_the_agreement_reports(db: Session, world: DashboardWorld) -> None:
    report = agreement_report(db, world.project.id)
    rows = dashboard.labeler_rows(db, world.project.id)

    assert [
        (row.labeler_id, row.pairwise_agreement, row.gold_pairs, row.gold_accuracy) for row in rows
    ] == [
        (row.labeler_id, row.pairwise_agreement, row.gold_pairs, row.gold_accuracy)
        for row in report.labelers
    ]


def test_an_even_count_of_times_takes_the_middle_two_and_none_gives_none(db: Session) -> None:
    project = Project(name="Timing", label_schema={"flags": []})
    db.add(project)
    db.flush()
    queue = Queue(project_id=project.id, name="q", kind=QueueKind.demonstration)
    db.add(queue)
    db.flush()
    eve, fay = make_labeler(db, "eve"), make_labeler(db, "fay")
    task, _ = _task(db, queue, _prompt(db, project, PromptCategory.chat))
    for seconds in (10, 200, 30, 20):
        _demonstrate(db, task, eve, seconds)
    _demonstrate(db, task, fay, None)
    db.commit()

    rows = dashboard.labeler_rows(db, project.id)

    assert [
        (row.username, row.demonstrations, row.median_seconds, row.skip_rate) for row in rows
    ] == [
        ("eve", 4, 25.0, None),
        ("fay", 1, None, None),
    ]


# --- categories and flags ---------------------------------------------------------------------


def test_category_counts_include_every_category(db: Session, world: DashboardWorld) -> None:
    found = dashboard.category_counts(db, world.project.id)

    def row(category: PromptCategory, prompts: int, demos: int, comparisons: int) -> CategoryCount:
        return CategoryCount(
            category=category,
            prompts=prompts,
            demonstrations=demos,
            comparisons=comparisons,
            labels=demos + comparisons,
        )

    assert found == [
        row(PromptCategory.generation, 2, 3, 0),
        row(PromptCategory.open_qa, 1, 0, 0),
        row(PromptCategory.brainstorming, 1, 0, 3),
        row(PromptCategory.chat, 1, 0, 2),
        row(PromptCategory.rewrite, 0, 0, 0),
        row(PromptCategory.summarization, 1, 0, 0),
        row(PromptCategory.classification, 0, 0, 0),
        row(PromptCategory.closed_qa, 0, 0, 0),
        row(PromptCategory.extraction, 0, 0, 0),
        row(PromptCategory.other, 0, 0, 0),
    ]


def test_flag_counts_in_schema_order_then_unknown_keys(db: Session, world: DashboardWorld) -> None:
    found = dashboard.flag_counts(db, world.project.id)

    assert found == [
        FlagCount(
            key="fails_instruction",
            label="Fails to follow the instruction",
            in_schema=True,
            items=2,
            comparisons=1,
        ),
        FlagCount(
            key="hallucination", label="Hallucination", in_schema=True, items=3, comparisons=2
        ),
        FlagCount(
            key="harmful_advice",
            label="@risk: harmful advice",
            in_schema=True,
            items=1,
            comparisons=1,
        ),
        FlagCount(
            key="private_information",
            label="Contains private information",
            in_schema=True,
            items=0,
            comparisons=0,
        ),
        FlagCount(key="legacy_flag", label="legacy_flag", in_schema=False, items=1, comparisons=1),
    ]


def test_a_flag_listed_twice_on_one_item_counts_once(db: Session, world: DashboardWorld) -> None:
    (item,) = [item for item in db.scalars(select(ComparisonItem)) if item.flags == ["legacy_flag"]]
    item.flags = ["legacy_flag", "legacy_flag"]
    db.commit()

    found = dashboard.flag_counts(db, world.project.id)

    assert (found[-1].key, found[-1].items, found[-1].comparisons) == ("legacy_flag", 1, 1)


# --- cost -------------------------------------------------------------------------------------


def test_cost_spend_to_date_and_cost_per_usable_pair(db: Session, world: DashboardWorld) -> None:
    assert dashboard.cost_summary(db, world.project.id) == CostSummary(
        cost_per_demonstration=Decimal("2.50"),
        cost_per_comparison=Decimal("0.40"),
        demonstrations=3,
        comparisons=5,
        demonstration_spend=Decimal("7.50"),
        comparison_spend=Decimal("2.00"),
        spend_to_date=Decimal("9.50"),
        usable_pairs=7,
        cost_per_usable_pair=Decimal("0.2857"),
    )


def test_spend_is_unknown_when_a_cost_needed_is_not_set(db: Session, world: DashboardWorld) -> None:
    world.project.cost_per_demonstration = None
    db.commit()

    cost = dashboard.cost_summary(db, world.project.id)

    assert (cost.demonstration_spend, cost.comparison_spend, cost.spend_to_date) == (
        None,
        Decimal("2.00"),
        None,
    )
    assert cost.cost_per_usable_pair == Decimal("0.2857")


def test_nothing_bought_costs_nothing_even_unpriced(db: Session, world: DashboardWorld) -> None:
    # "Elsewhere" has one labeler comparison at 9.00 and no demonstrations or their price.
    cost = dashboard.cost_summary(db, world.other.id)

    assert cost == CostSummary(
        cost_per_demonstration=None,
        cost_per_comparison=Decimal("9.00"),
        demonstrations=0,
        comparisons=1,
        demonstration_spend=Decimal("0.00"),
        comparison_spend=Decimal("9.00"),
        spend_to_date=Decimal("9.00"),
        usable_pairs=1,
        cost_per_usable_pair=Decimal("9.0000"),
    )


def test_an_empty_project(db: Session) -> None:
    project = Project(name="Empty", label_schema={"flags": [{"key": "other", "label": "Other"}]})
    db.add(project)
    db.commit()

    found = dashboard.project_dashboard(db, project.id, now=NOW)

    assert found.queues == []
    assert found.labelers == []
    assert found.agreement_over_time == []
    assert found.pairwise_agreement is None
    assert [row.prompts for row in found.categories] == [0] * 10
    assert found.flags == [
        FlagCount(key="other", label="Other", in_schema=True, items=0, comparisons=0)
    ]
    assert found.cost == CostSummary(
        cost_per_demonstration=None,
        cost_per_comparison=None,
        demonstrations=0,
        comparisons=0,
        demonstration_spend=Decimal("0.00"),
        comparison_spend=Decimal("0.00"),
        spend_to_date=Decimal("0.00"),
        usable_pairs=0,
        cost_per_usable_pair=None,
    )


# --- the whole dashboard, and errors ------------------------------------------------------------


def test_project_dashboard_gathers_every_part(db: Session, world: DashboardWorld) -> None:
    found = dashboard.project_dashboard(db, world.project.id, now=NOW)

    assert found.project_id == world.project.id
    assert found.pairwise_agreement == 2 / 3
    assert found.agreement_over_time == [
        AgreementPoint(
            start=date(2024, 5, 1), pairwise_agreement=1.0, agreeing_pairs=2, labeler_pairs=2
        ),
        AgreementPoint(
            start=date(2024, 5, 2), pairwise_agreement=0.0, agreeing_pairs=0, labeler_pairs=1
        ),
    ]
    assert found.labelers == dashboard.labeler_rows(db, world.project.id)
    assert found.categories == dashboard.category_counts(db, world.project.id)
    assert found.flags == dashboard.flag_counts(db, world.project.id)
    assert found.cost == dashboard.cost_summary(db, world.project.id)


@pytest.mark.parametrize(
    "read",
    [
        dashboard.project_dashboard,
        dashboard.queue_rows,
        dashboard.labeler_rows,
        dashboard.category_counts,
        dashboard.flag_counts,
        dashboard.cost_summary,
    ],
)
@pytest.mark.parametrize("project_id", [999_999, 2**63])
def test_an_unknown_project_is_not_found(db: Session, read: object, project_id: int) -> None:
    with pytest.raises(NotFound) as raised:
        read(db, project_id)  # type: ignore[operator]

    assert raised.value.message == f"no project with id {project_id}"


# --- CSV --------------------------------------------------------------------------------------


def test_csv_cells_that_a_spreadsheet_would_run_are_made_text() -> None:
    assert [exports.cell(value) for value in ("=1+1", "+1", "-1", "@a", "a=b", None, True)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@a",
        "a=b",
        "",
        "true",
    ]
    assert exports.cell(-1.5) == -1.5
    assert exports.cell(PromptCategory.open_qa) == "open_qa"


def test_csv_tables(db: Session, world: DashboardWorld) -> None:
    found = dashboard.project_dashboard(db, world.project.id, now=NOW)

    assert exports.labelers_csv(found.labelers) == (
        "labeler_id,username,demonstrations,comparisons,labels,median_seconds,submitted,"
        "skipped,skip_rate,pairwise_agreement,agreement_pairs,gold_pairs,gold_accuracy\n"
        f"{world.ann.id},ann,2,1,3,45.0,3,2,0.4,1.0,2,0,\n"
        f"{world.bob.id},bob,1,2,3,40.0,3,1,0.25,{2 / 3},3,1,1.0\n"
        f"{world.cat.id},cat,0,2,2,70.0,2,0,0.0,0.0,1,1,0.0\n"
    )
    assert exports.flags_csv(found.flags) == (
        "key,label,in_schema,items,comparisons\n"
        "fails_instruction,Fails to follow the instruction,true,2,1\n"
        "hallucination,Hallucination,true,3,2\n"
        "harmful_advice,'@risk: harmful advice,true,1,1\n"
        "private_information,Contains private information,true,0,0\n"
        "legacy_flag,legacy_flag,false,1,1\n"
    )
    assert exports.categories_csv(found.categories).splitlines() == [
        "category,prompts,demonstrations,comparisons,labels",
        "generation,2,3,0,3",
        "open_qa,1,0,0,0",
        "brainstorming,1,0,3,3",
        "chat,1,0,2,2",
        "rewrite,0,0,0,0",
        "summarization,1,0,0,0",
        "classification,0,0,0,0",
        "closed_qa,0,0,0,0",
        "extraction,0,0,0,0",
        "other,0,0,0,0",
    ]
    assert exports.cost_csv(found.cost) == (
        "figure,value\n"
        "cost_per_demonstration,2.50\n"
        "cost_per_comparison,0.40\n"
        "demonstrations,3\n"
        "comparisons,5\n"
        "demonstration_spend,7.50\n"
        "comparison_spend,2.00\n"
        "spend_to_date,9.50\n"
        "usable_pairs,7\n"
        "cost_per_usable_pair,0.2857\n"
    )
    assert exports.queues_csv(found.queues) == (
        "queue_id,name,kind,is_paused,tasks,required,done,in_progress,left,per_hour,eta_seconds\n"
        f"{world.demos.id},demos,demonstration,false,3,6,3,1,2,1,7200\n"
        f"{world.pairs.id},pairs,comparison,false,2,6,4,1,1,0,\n"
    )
    assert exports.agreement_over_time_csv(found.agreement_over_time) == (
        "day,pairwise_agreement,agreeing_pairs,labeler_pairs\n"
        "2024-05-01,1.0,2,2\n"
        "2024-05-02,0.0,0,1\n"
    )

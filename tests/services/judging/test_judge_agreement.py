"""The judge against the people, on the hand-worked world of tests/judge_world.py; and AI
labels kept out of everything that counts people's labels."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput
from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Model,
    ModelRole,
    Pair,
    Run,
    RunKind,
    Task,
    TaskAgreement,
)
from app.services.agreement.service import agreement_report, task_consensus
from app.services.browsing import LabelFilters, list_labels
from app.services.judging.agreement import judge_report
from app.services.judging.recording import OUTPUT_FILE, record_judgements
from app.services.judging.sending import send_back_tasks
from app.settings import Settings
from tests.judge_world import build_judge_world


def test_the_judge_is_measured_against_the_human_consensus(db: Session, settings: Settings) -> None:
    world = build_judge_world(db, settings.data_dir)
    assert world.counts == {"labels": 3, "unparsed": 1, "tasks": 4}
    report = judge_report(db, world.project.id)
    # T4 has a consensus pair too, but no judge labelled it.
    assert report.human_pairs == 5
    [judge] = report.judges
    assert (judge.model_name, judge.mode, judge.template_version, judge.labels) == (
        "judge-lm", "generative", 1, 3,
    )  # fmt: skip
    overall = judge.overall
    assert (overall.tasks, overall.pairs, overall.agreeing, overall.agreement) == (3, 5, 3, 0.6)
    assert overall.ci_low == pytest.approx(0.2307, abs=1e-4)
    assert overall.ci_high == pytest.approx(0.8824, abs=1e-4)
    categories = [
        (c.category.value, c.tasks, c.pairs, c.agreeing, c.agreement) for c in judge.categories
    ]
    assert categories == [
        ("brainstorming", 1, 1, 1, 1.0), ("chat", 2, 4, 2, 0.5),
    ]  # fmt: skip
    assert [(q.queue_name, q.pairs, q.agreeing) for q in judge.queues] == [
        ("main", 4, 2), ("side", 1, 1),
    ]  # fmt: skip
    (a, b), (_, d, e) = ([r.id for r in rs] for rs in world.responses[:2])
    assert [
        (x.task_id, x.human_winner_response_id, x.human_loser_response_id, x.labelers, x.margin,
         x.margin_kind)
        for x in judge.disagreements
    ] == [
        (world.tasks[0].id, a, b, 3, 4.0, "score"), (world.tasks[1].id, d, e, 3, 2.0, "score"),
    ]  # fmt: skip
    # One queue: the judge on its tasks only.
    only_side = judge_report(db, world.project.id, queue_id=world.side.id)
    assert [(j.overall.pairs, j.overall.agreeing) for j in only_side.judges] == [(1, 1)]


def test_ai_labels_are_stored_like_labels_but_count_for_no_person(
    db: Session, settings: Settings
) -> None:
    world = build_judge_world(db, settings.data_dir)
    ai = list(db.scalars(select(Comparison).where(Comparison.source == LabelSource.ai)))
    assert [(x.task_id, x.model_id, x.run_id, x.labeler_id, x.assignment_id) for x in ai] == [
        (task.id, world.judge.id, world.run.id, None, None) for task in world.tasks[:3]
    ]
    assert all(x.judge_template_id is not None and x.source_name == "judge-lm" for x in ai)
    # T2's ranking c > e > d gives three pairs, with the score gaps as margins.
    c, d, e = (r.id for r in world.responses[1])
    pairs = db.execute(
        select(Pair.winner_response_id, Pair.loser_response_id, Pair.margin)
        .where(Pair.comparison_id == ai[1].id)
        .order_by(Pair.id)
    ).all()
    assert [tuple(p) for p in pairs] == [(c, e, 2.0), (c, d, 4.0), (e, d, 2.0)]
    ranks = db.execute(
        select(ComparisonItem.response_id, ComparisonItem.rank, ComparisonItem.score)
        .where(ComparisonItem.comparison_id == ai[1].id)
        .order_by(ComparisonItem.response_id)
    ).all()
    assert [tuple(r) for r in ranks] == [(c, 1, 7), (d, 3, 3), (e, 2, 5)]

    # The labelers' figures are the labelers' alone: 3 labelers; T2's (c, d) split 2-1.
    report = agreement_report(db, world.project.id)
    assert [row.username for row in report.labelers] == [u.username for u in world.labelers]
    assert report.overall.comparisons == 9
    stored = db.scalar(select(TaskAgreement.rate).where(TaskAgreement.task_id == world.tasks[1].id))
    assert stored == pytest.approx(7 / 9)  # (c, d) 1 of 3 labeler pairs, (c, e) and (d, e) 3 of 3
    # Consensus of T1 is the people's a > b, not the judge's b > a.
    a, b = (r.id for r in world.responses[0])
    assert task_consensus(db, [world.tasks[0].id])[0].ranking == [[a], [b]]
    assert task_consensus(db, [world.tasks[0].id])[0].comparisons == 3
    # Overlap: T1 took its three people; the judge's label held no place.
    task = db.get(Task, world.tasks[0].id)
    db.refresh(task)  # held_slots is kept by triggers
    assert (task.overlap, task.held_slots) == (3, 3)


def test_disagreeing_tasks_go_back_for_another_human_label(db: Session, settings: Settings) -> None:
    world = build_judge_world(db, settings.data_dir)
    t1, t2 = world.tasks[0].id, world.tasks[1].id
    assert send_back_tasks(db, world.project.id, [t2, t1, t1]) == [t1, t2]
    assert [db.get(Task, t).overlap for t in (t1, t2)] == [4, 4]
    with pytest.raises(InvalidInput, match="no task with id 999999 in project"):
        send_back_tasks(db, world.project.id, [t1, 999999])
    assert db.get(Task, t1).overlap == 4
    world.tasks[2].retired_at = func.now()
    db.commit()
    with pytest.raises(Conflict, match="is retired"):
        send_back_tasks(db, world.project.id, [t1, world.tasks[2].id])
    assert db.get(Task, t1).overlap == 4


def test_the_data_browser_lists_ai_labels_under_their_model(
    db: Session, settings: Settings
) -> None:
    world = build_judge_world(db, settings.data_dir)
    page = list_labels(db, world.project.id, LabelFilters(source=LabelSource.ai))
    assert [(row.task_id, row.labeler, row.source, row.source_name) for row in page.items] == [
        (task.id, "judge-lm", "ai", "AI") for task in reversed(world.tasks[:3])
    ]
    people = list_labels(db, world.project.id, LabelFilters(source=LabelSource.labeler))
    assert len(people.items) == 9
    skips = list_labels(db, world.project.id, LabelFilters(kind="skip", source=LabelSource.ai))
    assert skips.items == []


def test_a_reward_judges_confidence_is_its_reward_margin(db: Session, settings: Settings) -> None:
    world = build_judge_world(db, settings.data_dir)
    rm = Model(name="rm", role=ModelRole.reward, path="models/rm")
    db.add(rm)
    db.flush()
    run = Run(
        project_id=world.project.id, kind=RunKind.judge, base_model_id=rm.id,
        hyperparameters={"queue_id": world.main.id, "mode": "reward"},
    )  # fmt: skip
    db.add(run)
    db.flush()
    (a, b), (c, d, e) = ([r.id for r in rs] for rs in world.responses[:2])
    output = settings.data_dir / "rm-output"
    output.mkdir(parents=True)
    (output / OUTPUT_FILE).write_text(
        "".join(
            json.dumps({"task_id": task.id, "prompt_id": task.prompt_id, "response_ids": ids,
                        "rewards": rewards}) + "\n"
            for task, ids, rewards in [
                (world.tasks[0], [a, b], [0.1, 0.9]), (world.tasks[1], [c, d, e], [2.0, 1.0, 1.5]),
            ]
        )
    )  # fmt: skip
    assert record_judgements(db, run, output) == {"labels": 2, "unparsed": 0, "tasks": 2}
    db.commit()
    judges = {judge.model_name: judge for judge in judge_report(db, world.project.id).judges}
    assert sorted(judges) == ["judge-lm", "rm"]
    judge = judges["rm"]
    assert (judge.mode, judge.template_id, judge.overall.pairs, judge.overall.agreeing) == (
        "reward", None, 4, 2,
    )  # fmt: skip
    assert [
        (x.human_winner_response_id, x.human_loser_response_id, x.margin_kind)
        for x in judge.disagreements
    ] == [(a, b, "reward"), (d, e, "reward")]
    assert [x.margin for x in judge.disagreements] == pytest.approx([0.8, 0.5])

"""The judge's suggestion on a queue: the mode each label records at submit, and labelers'
agreement with the suggestion per mode, on a hand-worked fixture."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Model,
    Project,
    QueueKind,
    Role,
    SuggestionMode,
    Task,
    User,
)
from app.schemas.critique import SuggestionAgreement
from app.schemas.labeling import ComparisonSubmit, ItemJudgement
from app.services import assignments, suggestions
from app.settings import Settings
from tests.conftest import make_user
from tests.factories import make_project, make_prompt, make_queue, make_responses, make_task
from tests.training_factories import make_model


def ai_ranking(db: Session, task: Task, judge: Model, ranks: dict[int, int]) -> Comparison:
    """What a judge run stores on a task (issue 20's judge half): a comparison of source ai."""
    judged = Comparison(
        task_id=task.id, prompt_id=task.prompt_id, source=LabelSource.ai, source_name="judge",
        model_id=judge.id,
    )  # fmt: skip
    db.add(judged)
    db.flush()
    db.add_all(
        ComparisonItem(comparison_id=judged.id, response_id=rid, rank=rank, flags=[])
        for rid, rank in ranks.items()
    )
    db.commit()
    return judged


def label(db: Session, queue_id: int, labeler: User, ranks: dict[int, int]) -> Comparison:
    assignment = assignments.lease_next_task(db, queue_id, labeler)
    assert assignment is not None
    items = [ItemJudgement(response_id=rid, score=4, rank=rank) for rid, rank in ranks.items()]
    done = assignments.submit_comparison(db, assignment.id, labeler, ComparisonSubmit(items=items))
    found = db.get(Comparison, done.label_id)
    assert found is not None
    return found


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


def test_agreement_with_the_judge_per_mode_on_a_hand_worked_fixture(
    db: Session, settings: Settings, project: Project
) -> None:
    """Task 1 (mode after), judge r1 > r2 > r3. Ann: r1 > r3 > r2 agrees on (r1,r2) and
    (r1,r3), not (r2,r3): 2 of 3. Ben: r1 = r2 > r3, his tie gives no pair, (r1,r3) and (r2,r3)
    agree: 2 of 2. Task 2 (mode before), judge r1 = r2 > r3: no pair for (r1,r2); Ann's
    r3 > r1 > r2 disagrees on both others: 0 of 2. Task 3 (mode off again): nothing recorded;
    task 4 (mode after) has no judge's ranking: nothing recorded.
    After: 2 labels, 4 of 5 pairs (0.8); before: 1 label, 0 of 2 (0.0)."""
    judge = make_model(db, settings, "judge", project=project)
    ann, ben = make_user(db, "ann", Role.labeler), make_user(db, "ben", Role.labeler)
    queue = make_queue(db, project, overlap=2, max_overlap=2)
    tasks, ids = [], []
    for index in range(4):
        prompt = make_prompt(db, project, f"prompt {index}")
        responses = make_responses(db, prompt, 3)
        tasks.append(make_task(db, queue, prompt, responses, priority=10 - index))
        ids.append([response.id for response in responses])
    db.commit()
    first = ai_ranking(db, tasks[0], judge, {ids[0][0]: 1, ids[0][1]: 2, ids[0][2]: 3})
    second = ai_ranking(db, tasks[1], judge, {ids[1][0]: 1, ids[1][1]: 1, ids[1][2]: 2})
    ai_ranking(db, tasks[2], judge, {ids[2][0]: 1, ids[2][1]: 2, ids[2][2]: 3})

    suggestions.set_suggestion_mode(db, queue.id, SuggestionMode.after)
    r1, r2, r3 = ids[0]
    anns = label(db, queue.id, ann, {r1: 1, r3: 2, r2: 3})
    bens = label(db, queue.id, ben, {r1: 1, r2: 1, r3: 2})
    suggestions.set_suggestion_mode(db, queue.id, SuggestionMode.before)
    r1, r2, r3 = ids[1]
    before = label(db, queue.id, ann, {r3: 1, r1: 2, r2: 3})
    suggestions.set_suggestion_mode(db, queue.id, SuggestionMode.off)
    off = label(db, queue.id, ann, dict(zip(ids[2], (1, 2, 3), strict=True)))
    suggestions.set_suggestion_mode(db, queue.id, SuggestionMode.after)
    unjudged = label(db, queue.id, ann, dict(zip(ids[3], (1, 2, 3), strict=True)))

    recorded = [(c.suggestion_mode, c.suggestion_comparison_id) for c in (anns, bens, before)]
    assert recorded == [
        (SuggestionMode.after, first.id),
        (SuggestionMode.after, first.id),
        (SuggestionMode.before, second.id),
    ]
    assert [(c.suggestion_mode, c.suggestion_comparison_id) for c in (off, unjudged)] == [
        (None, None),
        (None, None),
    ]
    found = suggestions.queue_agreement(db, queue.id)
    assert found.mode == SuggestionMode.after
    assert found.by_mode == [
        SuggestionAgreement(mode="after", comparisons=2, pairs=5, agreed=4, rate=0.8),
        SuggestionAgreement(mode="before", comparisons=1, pairs=2, agreed=0, rate=0.0),
    ]
    measured = suggestions.measured(db, anns.id)
    assert measured is not None
    assert (measured.mode, measured.agreed, measured.pairs) == (SuggestionMode.after, 2, 3)


def test_a_queue_with_no_suggestions_reports_no_rate_and_demonstration_queues_refuse_a_mode(
    db: Session, project: Project
) -> None:
    queue = make_queue(db, project)
    demos = make_queue(db, project, QueueKind.demonstration, name="demos")
    db.commit()
    assert suggestions.queue_agreement(db, queue.id).by_mode == [
        SuggestionAgreement(mode="after", comparisons=0, pairs=0, agreed=0, rate=None),
        SuggestionAgreement(mode="before", comparisons=0, pairs=0, agreed=0, rate=None),
    ]
    with pytest.raises(InvalidInput, match="is a demonstration queue"):
        suggestions.set_suggestion_mode(db, demos.id, SuggestionMode.after)
    db.refresh(demos)
    assert demos.suggestion_mode == SuggestionMode.off


def test_pair_agreement_and_ranking_words() -> None:
    assert suggestions.pair_agreement({1: 1, 2: 2, 3: None}, {1: 2, 2: 1, 3: 3}) == (0, 1)
    assert suggestions.pair_agreement({1: 1, 2: 1}, {1: 1, 2: 2}) == (0, 0)
    assert suggestions.ranking_words({5: 2, 6: 1, 7: 2}, {5: "A", 6: "B", 7: "C"}) == "B > A = C"

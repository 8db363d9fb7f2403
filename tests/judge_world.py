"""A hand-worked world for the judge's agreement with people: three labelers and one
generative judge on four tasks, small enough to work every figure out on paper.

Queue "main" (overlap 3), chat prompts; every labeler judges both tasks:
  T1 (a, b):    a > b by all three.              Judge: b > a (scores a 2, b 6): disagrees.
  T2 (c, d, e): c > d > e by two, d > c > e by one; consensus c > d > e.
                Judge: c > e > d (scores 7, 3, 5): agrees on (c, d) and (c, e), reverses
                (d, e) by a score gap of 2.
Queue "side" (overlap 2), brainstorming prompts:
  T3 (f, g):    f > g by two labelers.           Judge: f > g: agrees.
  T4 (h, i):    h > i by one labeler.            Judge's reply does not parse: no label.

So the judge orders 5 consensus pairs and agrees on 3: overall 3/5 on 3 tasks; chat 2/4
(T1, T2), brainstorming 1/1 (T3); queue main 2/4, side 1/1. Its disagreements, most confident
first: T1's (a, b) by a score gap of 4, then T2's (d, e) by 2. Pairs cluster by task, and the
design effect here is below 1, so it is held at 1: the interval of 3/5 is the textbook Wilson
interval of 3 in 5, [0.2307, 0.8824].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.models import (
    Model,
    ModelRole,
    Project,
    PromptCategory,
    Queue,
    Response,
    Role,
    Run,
    RunKind,
    Task,
    User,
)
from app.schemas.judging import JudgeTemplateCreate
from app.schemas.labeling import ComparisonSubmit, ItemJudgement
from app.services import assignments
from app.services.judging.recording import OUTPUT_FILE, record_judgements
from app.services.judging.templates import DEFAULT_TEMPLATE, save_template
from tests.conftest import make_user
from tests.factories import make_project, make_prompt, make_queue, make_responses, make_task


@dataclass
class JudgeWorld:
    project: Project
    main: Queue
    side: Queue
    tasks: list[Task]
    responses: list[list[Response]]
    labelers: list[User]
    judge: Model
    run: Run
    counts: dict[str, float]


def _submit(db: Session, queue: Queue, labeler: User, orders: dict[int, list[int]]) -> None:
    assignment = assignments.lease_next_task(db, queue.id, labeler)
    assert assignment is not None and assignment.task_id in orders, assignment
    order = orders[assignment.task_id]
    items = [
        ItemJudgement(response_id=rid, score=7 - rank, rank=rank)
        for rank, rid in enumerate(order, start=1)
    ]
    assignments.submit_comparison(db, assignment.id, labeler, ComparisonSubmit(items=items))


def build_judge_world(db: Session, data_dir: Path) -> JudgeWorld:
    project = make_project(db, "Judged")
    main = make_queue(db, project, name="main", overlap=3, max_overlap=3)
    side = make_queue(db, project, name="side", overlap=2, max_overlap=2)
    tasks, responses = [], []
    for index, (queue, size, category) in enumerate(
        [
            (main, 2, PromptCategory.chat),
            (main, 3, PromptCategory.chat),
            (side, 2, PromptCategory.brainstorming),
            (side, 2, PromptCategory.brainstorming),
        ]
    ):
        prompt = make_prompt(db, project, f"judged prompt {index}")
        prompt.category = category
        made = make_responses(db, prompt, size)
        tasks.append(make_task(db, queue, prompt, made))
        responses.append(made)
    db.commit()
    labelers = [make_user(db, f"judged-labeler{n}", Role.labeler) for n in range(3)]
    (a, b), (c, d, e), (f, g), (h, i) = ([r.id for r in rs] for rs in responses)
    t1, t2, t3, t4 = (task.id for task in tasks)
    for labeler, second in zip(labelers, ([c, d, e], [c, d, e], [d, c, e]), strict=True):
        for _ in range(2):
            _submit(db, main, labeler, {t1: [a, b], t2: second})
    _submit(db, side, labelers[0], {t3: [f, g]})
    _submit(db, side, labelers[1], {t3: [f, g]})
    _submit(db, side, labelers[2], {t4: [h, i]})

    judge = Model(name="judge-lm", role=ModelRole.policy, path="models/judge-lm")
    db.add(judge)
    db.flush()
    save_template(db, project.id, JudgeTemplateCreate(body=DEFAULT_TEMPLATE), None)
    run = Run(
        project_id=project.id,
        kind=RunKind.judge,
        base_model_id=judge.id,
        hyperparameters={"queue_id": main.id, "mode": "generative", "template_version": 1},
    )
    db.add(run)
    db.flush()
    replies = [
        (t1, [a, b], "Ranking: B > A\nScores: A=2, B=6"),
        (t2, [c, d, e], "Ranking: A > C > B\nScores: A=7, B=3, C=5"),
        (t3, [f, g], "Ranking: A > B"),
        (t4, [h, i], "I prefer the first one."),
    ]
    output = data_dir / "judge-output"
    output.mkdir(parents=True)
    (output / OUTPUT_FILE).write_text(
        "".join(
            json.dumps(
                {"task_id": task, "prompt_id": tasks[n].prompt_id, "response_ids": ids,
                 "reply": reply}
            ) + "\n"
            for n, (task, ids, reply) in enumerate(replies)
        )
    )  # fmt: skip
    counts = record_judgements(db, run, output)
    db.commit()
    return JudgeWorld(project, main, side, tasks, responses, labelers, judge, run, counts)

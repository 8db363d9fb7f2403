"""Pages of issue 20's critique half without a browser: the judge's ranking in the workbench
(never before submitting in "after" mode; while ranking in "before"), the queue page's
agreement with it, and the Principles page (add, edit as a new version, refused input)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    Comparison,
    ComparisonItem,
    LabelSource,
    Principle,
    Project,
    Run,
    RunKind,
    SuggestionMode,
    TaskResponse,
    User,
)
from app.services import assignments, suggestions
from app.settings import Settings
from tests.conftest import web_login
from tests.factories import make_comparison_tasks, make_project, make_queue
from tests.training_factories import make_model

HX = {"HX-Request": "true"}


def by_testid(page: str, testid: str) -> list[str]:
    found = re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</(?:p|tr)>', page, re.S)
    return [
        html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))).strip() for text in found
    ]


@pytest.fixture
def world(db: Session, settings: Settings) -> dict[str, Any]:
    """A comparison queue of two tasks of two responses; a judge ranked each task's
    second-stored response above its first."""
    project = make_project(db)
    queue = make_queue(db, project, name="Compare")
    tasks = make_comparison_tasks(db, queue, project, 2, responses_each=2)
    judge = make_model(db, settings, "judge", project=project)
    preferred = {}
    for task in tasks:
        first, second = db.scalars(
            select(TaskResponse.response_id)
            .where(TaskResponse.task_id == task.id)
            .order_by(TaskResponse.position)
        ).all()
        judged = Comparison(task_id=task.id, prompt_id=task.prompt_id, source=LabelSource.ai,
                            source_name="judge", model_id=judge.id)  # fmt: skip
        db.add(judged)
        db.flush()
        db.add_all([
            ComparisonItem(comparison_id=judged.id, response_id=second, rank=1, flags=[]),
            ComparisonItem(comparison_id=judged.id, response_id=first, rank=2, flags=[]),
        ])  # fmt: skip
        preferred[task.id] = second
    db.commit()
    return {"project": project, "queue": queue, "preferred": preferred}


def judge_words(db: Session, assignment_id: int, preferred: dict[int, int]) -> tuple[str, str]:
    """The judge's ranking in the letters this assignment shows, and the letter it prefers."""
    found = db.get(Assignment, assignment_id)
    assert found is not None and found.response_order is not None
    letters = dict(zip(found.response_order, "AB", strict=True))
    best = letters[preferred[found.task_id]]
    other = "B" if best == "A" else "A"
    return f"{best} > {other}", best


def form(csrf: str, best: str) -> dict[str, str]:
    other = "B" if best == "A" else "A"
    return {
        "csrf_token": csrf, f"score_{best}": "6", f"rank_{best}": "1", f"score_{other}": "2",
        f"rank_{other}": "2",
    }  # fmt: skip


def test_after_submit_the_ranking_shows_only_once_the_label_is_in(
    client: TestClient, db: Session, labeler: User, admin: User, world: dict[str, Any]
) -> None:
    queue = world["queue"]
    suggestions.set_suggestion_mode(db, queue.id, SuggestionMode.after)
    csrf = web_login(client, "lena")
    assignment = assignments.lease_next_task(db, queue.id, labeler)
    assert assignment is not None
    words, best = judge_words(db, assignment.id, world["preferred"])

    page = client.get(f"/work/assignments/{assignment.id}")
    assert page.status_code == 200
    assert 'data-testid="suggestion"' not in page.text
    assert "the judge" not in page.text.lower()

    # The labeler disagrees with the judge: they rank the other letter first.
    other = "B" if best == "A" else "A"
    answer = client.post(
        f"/work/assignments/{assignment.id}/comparison", data=form(csrf, other), headers=HX
    )
    assert answer.status_code == 200
    assert by_testid(answer.text, "wb-flash") == [
        f"Submitted. The judge ranked the task you submitted {words}; you agreed on 0 of 1 pairs."
    ]
    # The next task, in "after" mode, again shows nothing before its submit.
    assert 'data-testid="suggestion"' not in answer.text
    label = db.scalar(select(Comparison).where(Comparison.labeler_id == labeler.id))
    assert label is not None and label.suggestion_mode == SuggestionMode.after

    client.cookies.clear()
    web_login(client, "root-admin")
    shown = client.get(f"/queues/{queue.id}")
    assert by_testid(shown.text, "suggestion-agreement-after") == ["after submit 1 1 0 0.0%"]
    assert by_testid(shown.text, "suggestion-agreement-before") == []


def test_before_the_ranking_is_on_the_task_page(
    client: TestClient, db: Session, labeler: User, world: dict[str, Any]
) -> None:
    queue = world["queue"]
    suggestions.set_suggestion_mode(db, queue.id, SuggestionMode.before)
    csrf = web_login(client, "lena")
    assignment = assignments.lease_next_task(db, queue.id, labeler)
    assert assignment is not None
    words, best = judge_words(db, assignment.id, world["preferred"])

    page = client.get(f"/work/assignments/{assignment.id}")
    assert by_testid(page.text, "suggestion") == [
        f"The judge's ranking: {words} — a model's suggestion; rank as you judge"
    ]
    answer = client.post(
        f"/work/assignments/{assignment.id}/comparison", data=form(csrf, best), headers=HX
    )
    assert by_testid(answer.text, "wb-flash") == [
        f"Submitted. The judge ranked the task you submitted {words}; you agreed on 1 of 1 pairs."
    ]
    label = db.scalar(select(Comparison).where(Comparison.labeler_id == labeler.id))
    assert label is not None and label.suggestion_mode == SuggestionMode.before


def test_with_suggestions_off_nothing_is_shown_or_recorded(
    client: TestClient, db: Session, labeler: User, world: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = assignments.lease_next_task(db, world["queue"].id, labeler)
    assert assignment is not None
    page = client.get(f"/work/assignments/{assignment.id}")
    assert 'data-testid="suggestion"' not in page.text
    answer = client.post(
        f"/work/assignments/{assignment.id}/comparison", data=form(csrf, "A"), headers=HX
    )
    assert by_testid(answer.text, "wb-flash") == ["Submitted."]
    label = db.scalar(select(Comparison).where(Comparison.labeler_id == labeler.id))
    assert label is not None and (label.suggestion_mode, label.suggestion_comparison_id) == (
        None,
        None,
    )


def test_the_principles_page_adds_and_edits_principles_as_versions(
    client: TestClient, db: Session, researcher: User
) -> None:
    project: Project = make_project(db)
    db.commit()
    csrf = web_login(client, "rhea")
    url = f"/projects/{project.id}/principles"
    page = client.get(url)
    assert page.status_code == 200
    assert by_testid(page.text, "no-principles") == [
        "No principles yet: add one below (the form starts from an example), then start a "
        "critique run."
    ]
    added = client.post(url, data={"csrf_token": csrf, "name": "kind",
                                   "critique_request": "Is it unkind?",
                                   "revision_request": "Make it kind."})  # fmt: skip
    assert added.status_code == 303
    (first,) = db.scalars(select(Principle)).all()
    edited = client.post(f"{url}/{first.id}/edit", data={
        "csrf_token": csrf, "name": "kind", "critique_request": "Is it unkind at all?",
        "revision_request": "Make it kind.",
    })  # fmt: skip
    assert edited.status_code == 303
    page = client.get(url)
    (second,) = db.scalars(select(Principle).where(Principle.retired_at.is_(None))).all()
    assert second.version == 2
    assert f'data-testid="principle-{second.id}"' in page.text
    assert by_testid(page.text, f"retired-{first.id}") == ["kind 1 Is it unkind? Make it kind. 0"]

    refused = client.post(url, data={"csrf_token": csrf, "name": "", "critique_request": "x",
                                     "revision_request": "y"})  # fmt: skip
    assert refused.status_code == 422
    assert by_testid(refused.text, "name-error") == ["String should have at least 1 character"]
    no_model = client.post(f"{url}/critique", data={"csrf_token": csrf})
    assert no_model.status_code == 422
    assert by_testid(no_model.text, "critique-model-error") == [
        "choose the model that critiques and revises"
    ]
    assert db.scalar(select(func.count()).select_from(Principle)) == 2


def test_a_critique_run_starts_from_the_principles_page_with_the_ticked_principles(
    client: TestClient, db: Session, settings: Settings, researcher: User
) -> None:
    project: Project = make_project(db)
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    critic = make_model(db, settings, "critic", project=project)
    db.commit()
    csrf = web_login(client, "rhea")
    url = f"/projects/{project.id}/principles"
    for name in ("kind", "honest"):
        client.post(url, data={"csrf_token": csrf, "name": name, "critique_request": "Why not?",
                               "revision_request": "Fix it."})  # fmt: skip
    kind, honest = db.scalars(select(Principle).order_by(Principle.id)).all()
    form = {"csrf_token": csrf, "base_model_id": str(critic.id), "queue_id": str(queue.id),
            "max_new_tokens": "16"}  # fmt: skip

    started = client.post(f"{url}/critique", data={**form, f"use_principle_{honest.id}": "on"})
    assert started.status_code == 303
    run_id = int(started.headers["location"].rsplit("/", 1)[1])
    run = db.get(Run, run_id)
    assert run is not None
    assert (run.kind, run.hyperparameters["principle_ids"], run.hyperparameters["queue_id"]) == (
        RunKind.critique, [honest.id], queue.id,
    )  # fmt: skip
    assert by_testid(client.get(f"/runs/{run_id}").text, "run-principles") == [
        f"versions {honest.id} ; the revisions are listed on the Principles page"
    ]

    client.post(f"{url}/{kind.id}/retire", data={"csrf_token": csrf})
    refused = client.post(f"{url}/critique", data={**form, f"use_principle_{kind.id}": "on"})
    assert refused.status_code == 422
    assert by_testid(refused.text, "critique-principles-error") == [
        f"principle {kind.id} (kind) is retired: use its current version"
    ]
    assert db.scalar(select(func.count()).select_from(Run)) == 1

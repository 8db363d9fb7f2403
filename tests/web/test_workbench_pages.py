"""The workbench pages without a browser: who sees what, what a form post stores, how refused
input comes back intact, drafts, skips, expired leases and the home page's queues."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    Demonstration,
    DemonstrationOrigin,
    Draft,
    GuidelineRead,
    Model,
    ModelRole,
    Pair,
    QueueKind,
    Response,
    ResponseSource,
    Role,
    User,
)
from app.models.base import utcnow
from app.services import assignments
from tests.conftest import make_user, web_login
from tests.factories import (
    make_comparison_tasks,
    make_project,
    make_prompt,
    make_queue,
    make_task,
    publish_guideline,
)
from tests.web.helpers import snapshot

HX = {"HX-Request": "true"}
LETTERS = "ABCD"

# --- helpers --------------------------------------------------------------------------------


def by_testid(page: str, testid: str) -> list[str]:
    found = re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</', page, re.S)
    return [html.unescape(re.sub(r"\s+", " ", text)).strip() for text in found]


def queue_row(page: str, queue_id: int) -> re.Match[str] | None:
    return re.search(rf'data-testid="work-queue-{queue_id}">(.*?)</tr>', page, re.S)


def box_text(page: str, testid: str) -> str:
    """The text of a markdown box, tags stripped."""
    found = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</div>', page, re.S)
    assert found, f"no box {testid}"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def checked(page: str, name: str) -> list[str]:
    return re.findall(rf'name="{name}" value="([^"]*)" checked>', page)


def textarea(page: str, name: str) -> str:
    found = re.search(rf'<textarea id="[^"]*" name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, f"no textarea {name}"
    return html.unescape(found.group(1))


def rank_value(page: str, letter: str) -> str:
    found = re.search(rf'name="rank_{letter}"[^>]*value="([^"]*)"', page)
    assert found
    return found.group(1)


def shown_contents(db: Session, assignment: Assignment) -> dict[str, Response]:
    """Letter -> response, in the assignment's shuffled display order."""
    _, _, _, responses = assignments.assignment_view(db, assignment)
    return dict(zip(LETTERS, responses, strict=False))


def count(db: Session, model: type) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def setup(db: Session, labeler: User) -> dict[str, Any]:
    project = make_project(db)
    guideline = publish_guideline(db, project, 1, "# Rules\n\nBe **honest**.")
    queue = make_queue(db, project, QueueKind.comparison, name="Compare")
    tasks = make_comparison_tasks(db, queue, project, 2)
    for response in db.scalars(
        select(Response).where(Response.prompt_id.in_([task.prompt_id for task in tasks]))
    ):
        response.source_name = "secret-import-source"
    demos = make_queue(db, project, QueueKind.demonstration, name="Write")
    prompt = make_prompt(db, project, "Say hello.")
    model = Model(name="secret-policy-7b", role=ModelRole.policy, path="/models/p")
    db.add(model)
    db.flush()
    draft = Response(
        prompt_id=prompt.id,
        content="Hello from the model.",
        source=ResponseSource.model,
        model_id=model.id,
        source_name="secret-sampler",
    )
    db.add(draft)
    db.flush()
    make_task(db, demos, prompt, [draft])
    db.commit()
    return {
        "project": project,
        "guideline": guideline,
        "queue": queue,
        "demos": demos,
        "draft": draft,
    }


def lease(db: Session, queue_id: int, labeler: User) -> Assignment:
    found = assignments.lease_next_task(db, queue_id, labeler)
    assert found is not None
    return found


def full_form(csrf: str, **extra: Any) -> dict[str, Any]:
    form: dict[str, Any] = {"csrf_token": csrf, "comment": "fine"}
    for index, letter in enumerate(LETTERS):
        form[f"score_{letter}"] = str(7 - 2 * index)
        form[f"rank_{letter}"] = str(index + 1)
    form.update(extra)
    return form


# --- who may see ----------------------------------------------------------------------------


def test_task_page_shows_letters_and_never_sources(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    page = client.get(f"/work/assignments/{assignment.id}")
    assert page.status_code == 200
    shown = shown_contents(db, assignment)
    for letter, response in shown.items():
        assert box_text(page.text, f"response-text-{letter}") == response.content
    assert by_testid(page.text, "ranking-summary") == ["Not ranked yet."]
    assert by_testid(page.text, "guideline-version") == ["version 1"]
    assert "You have not marked this guideline as read yet" in page.text
    assert "secret-import-source" not in page.text
    assert page.headers["cache-control"] == "no-store"

    demo = lease(db, setup["demos"].id, labeler)
    page = client.get(f"/work/assignments/{demo.id}")
    assert page.status_code == 200
    assert box_text(page.text, "model-draft") == "Hello from the model."
    for secret in ("secret-policy-7b", "secret-sampler", "/models/p"):
        assert secret not in page.text


def test_others_get_404_and_other_roles_403(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    assignment = lease(db, setup["queue"].id, labeler)
    make_user(db, "otto")
    csrf = web_login(client, "otto")
    before = snapshot(db)
    assert client.get(f"/work/assignments/{assignment.id}").status_code == 404
    for action in ("comparison", "skip", "renew"):
        answer = client.post(
            f"/work/assignments/{assignment.id}/{action}", data=full_form(csrf, reason="other")
        )
        assert answer.status_code == 404, action
    answer = client.post(
        f"/work/assignments/{assignment.id}/draft",
        json={"content": {"form": {}}},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
    assert snapshot(db) == before

    make_user(db, "ada", Role.admin)
    client.cookies.clear()
    web_login(client, "ada")
    assert client.get(f"/work/assignments/{assignment.id}").status_code == 403


# --- submitting a comparison ----------------------------------------------------------------


def test_form_post_stores_exactly_what_was_sent(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    shown = shown_contents(db, assignment)
    form = full_form(
        csrf,
        rank_B="1",  # A = B > C > D
        flag_C=["hallucination", "other"],
        note_C="made up a date",
        rewrite_D="A much better answer.",
        rewrite_A=shown["A"].content,  # unchanged: no rewrite
        idle_seconds="3",
    )
    answer = client.post(f"/work/assignments/{assignment.id}/comparison", data=form)
    assert answer.status_code == 303
    upcoming = db.scalar(
        select(Assignment).where(
            Assignment.status == AssignmentStatus.active, Assignment.labeler_id == labeler.id
        )
    )
    assert upcoming is not None
    assert answer.headers["location"] == f"/work/assignments/{upcoming.id}"

    db.expire_all()
    comparison = db.scalar(select(Comparison).where(Comparison.assignment_id == assignment.id))
    assert comparison is not None
    assert comparison.comment == "fine"
    assert comparison.guideline_version_id == setup["guideline"].id
    assert comparison.all_unacceptable is False
    assert comparison.idempotency_key is not None
    assert comparison.idempotency_key.startswith("wb-")
    items = {
        item.response_id: (item.score, item.rank, item.flags, item.flag_note)
        for item in db.scalars(
            select(ComparisonItem).where(ComparisonItem.comparison_id == comparison.id)
        )
    }
    assert items == {
        shown["A"].id: (7, 1, [], ""),
        shown["B"].id: (5, 1, [], ""),
        shown["C"].id: (3, 2, ["hallucination", "other"], "made up a date"),
        shown["D"].id: (1, 3, [], ""),
    }
    rewrite = db.scalar(select(Response).where(Response.parent_id == shown["D"].id))
    assert rewrite is not None
    assert (rewrite.content, rewrite.source, rewrite.author_id) == (
        "A much better answer.",
        ResponseSource.human,
        labeler.id,
    )
    assert db.scalar(select(Response).where(Response.parent_id == shown["A"].id)) is None
    edited = db.scalar(select(Pair).where(Pair.winner_response_id == rewrite.id))
    assert edited is not None
    assert edited.loser_response_id == shown["D"].id

    # The next task's page says it was submitted.
    page = client.get(answer.headers["location"])
    assert by_testid(page.text, "notice") == ["Submitted."]


def test_htmx_submit_answers_with_the_next_block_and_a_replay_is_a_success(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    url = f"/work/assignments/{assignment.id}/comparison"
    first = client.post(url, data=full_form(csrf), headers=HX)
    assert first.status_code == 200
    upcoming = int(re.findall(r'data-assignment-id="(\d+)"', first.text)[0])
    assert upcoming != assignment.id
    assert first.headers["hx-push-url"] == f"/work/assignments/{upcoming}"
    assert first.headers["vary"] == "HX-Request"
    assert "<html" not in first.text
    assert by_testid(first.text, "wb-flash") == ["Submitted."]

    # The same form again (its answer was lost): one label, and the same next task.
    again = client.post(url, data=full_form(csrf), headers=HX)
    assert again.status_code == 200
    assert again.headers["hx-push-url"] == f"/work/assignments/{upcoming}"
    assert count(db, Comparison) == 1

    # The last task: then the queue is finished for this labeler.
    last = client.post(f"/work/assignments/{upcoming}/comparison", data=full_form(csrf), headers=HX)
    assert last.status_code == 200
    assert "hx-push-url" not in last.headers
    assert by_testid(last.text, "finished-reason") == [
        "There is no task left for you in Compare. Thank you!"
    ]


def test_refused_input_comes_back_intact_and_nothing_is_stored(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    url = f"/work/assignments/{assignment.id}/comparison"
    before = snapshot(db)
    form = full_form(csrf, comment="keep me", flag_B=["other"], rank_D="", rewrite_C="Better C")
    del form["score_A"]
    answer = client.post(url, data=form)
    assert answer.status_code == 422
    errors = by_testid(answer.text, "rank-error")
    assert "Give A a score from 1 to 7." in answer.text
    assert "Say what “other” means for B." in answer.text
    assert errors == [
        "The ranking is incomplete: place D (or tick “All responses are unacceptable”)."
    ]
    assert textarea(answer.text, "comment") == "keep me"
    assert textarea(answer.text, "rewrite_C") == "Better C"
    assert checked(answer.text, "score_B") == ["5"]
    assert checked(answer.text, "flag_B") == ["other"]
    assert rank_value(answer.text, "C") == "3"
    assert snapshot(db) == before

    # Text the database would refuse: a clear message, nothing stored.
    answer = client.post(url, data=full_form(csrf, comment="bad \x00 byte"))
    assert answer.status_code == 422
    assert by_testid(answer.text, "form-error") == ["comment: text may not contain NUL bytes"]
    assert snapshot(db) == before

    # Another assignment's form is refused.
    answer = client.post(url, data=full_form(csrf, idempotency_key="wb-not-this-one"))
    assert answer.status_code == 422
    assert snapshot(db) == before


def test_scores_that_contradict_the_ranking_need_a_confirmation(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    url = f"/work/assignments/{assignment.id}/comparison"
    before = snapshot(db)
    form = full_form(csrf, score_D="6")
    answer = client.post(url, data=form)
    assert answer.status_code == 422
    found = re.search(r'data-testid="inconsistency">.*?<ul>(.*?)</ul>', answer.text, re.S)
    assert found
    assert [html.unescape(item) for item in re.findall(r"<li>(.*?)</li>", found.group(1))] == [
        "B is ranked above D but scored lower (5 < 6).",
        "C is ranked above D but scored lower (3 < 6).",
    ]
    assert snapshot(db) == before
    answer = client.post(url, data={**form, "confirm_inconsistent": "1"})
    assert answer.status_code == 303
    assert count(db, Comparison) == 1


def test_all_unacceptable_takes_no_ranking(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    form = full_form(csrf, all_unacceptable="on")
    for letter in LETTERS:
        del form[f"rank_{letter}"]
    answer = client.post(f"/work/assignments/{assignment.id}/comparison", data=form)
    assert answer.status_code == 303
    comparison = db.scalar(select(Comparison))
    assert comparison is not None
    assert comparison.all_unacceptable is True
    ranks = db.scalars(
        select(ComparisonItem.rank).where(ComparisonItem.comparison_id == comparison.id)
    ).all()
    assert ranks == [None, None, None, None]
    assert count(db, Pair) == 0


# --- demonstrations -------------------------------------------------------------------------


def test_demonstration_from_the_model_draft_with_more_turns(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["demos"].id, labeler)
    url = f"/work/assignments/{assignment.id}/demonstration"
    before = snapshot(db)
    answer = client.post(url, data={"csrf_token": csrf, "turn": ["Hi!", "And you?", ""]})
    assert answer.status_code == 422
    assert "Write this assistant turn, or remove the pair." in answer.text
    assert re.findall(
        r'<textarea id="turn-(\d)" name="turn"[^>]*>([^<]*)</textarea>', answer.text
    ) == [
        ("0", "Hi!"),
        ("1", "And you?"),
        ("2", ""),
    ]
    assert snapshot(db) == before

    answer = client.post(
        url,
        data={
            "csrf_token": csrf,
            "turn": ["Hello from the model, edited.", "And you?", "Fine, thanks."],
            "origin": "edited_draft",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    demonstration = db.scalar(select(Demonstration))
    assert demonstration is not None
    assert demonstration.messages == [
        {"role": "assistant", "content": "Hello from the model, edited."},
        {"role": "user", "content": "And you?"},
        {"role": "assistant", "content": "Fine, thanks."},
    ]
    assert demonstration.origin == DemonstrationOrigin.edited_draft
    assert demonstration.draft_response_id == setup["draft"].id
    assert demonstration.guideline_version_id == setup["guideline"].id


def test_preview_renders_sanitized_markdown(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    answer = client.post(
        "/work/preview",
        data={"csrf_token": csrf, "turn": ["**bold** <script>alert(1)</script>", "why?", "so"]},
        headers=HX,
    )
    assert answer.status_code == 200
    assert "<strong>bold</strong> &lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert re.findall(r'data-role="(\w+)"', answer.text) == ["assistant", "user", "assistant"]
    assert "hx-disable" in answer.text


# --- drafts, skips and expired leases --------------------------------------------------------


def test_draft_autosave_and_restore(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    url = f"/work/assignments/{assignment.id}/draft"
    headers = {"X-CSRF-Token": csrf}
    content = {"form": {"score_A": ["6"], "comment": ["half done"], "rank_A": ["2"]}}
    first = client.post(url, json={"content": content, "base_revision": 0}, headers=headers)
    assert first.status_code == 200
    assert first.json()["revision"] == 1
    second = client.post(url, json={"content": content, "base_revision": 1}, headers=headers)
    assert second.json()["revision"] == 2
    stale = client.post(url, json={"content": {"form": {}}, "base_revision": 1}, headers=headers)
    assert stale.status_code == 409
    assert stale.json()["error"] == "conflict"
    refused = client.post(url, json={"content": {"form": {"comment": ["\x00"]}}}, headers=headers)
    assert refused.status_code == 422

    page = client.get(f"/work/assignments/{assignment.id}")
    assert checked(page.text, "score_A") == ["6"]
    assert textarea(page.text, "comment") == "half done"
    assert rank_value(page.text, "A") == "2"
    assert 'data-revision="2"' in page.text

    # Logged out and in again: the draft is on the server.
    client.post("/logout", data={"csrf_token": csrf})
    headers = {"X-CSRF-Token": web_login(client, "lena")}
    page = client.get(f"/work/assignments/{assignment.id}")
    assert textarea(page.text, "comment") == "half done"

    # Time away from the page (last save to reload) beyond a minute counts as idle.
    saved = client.post(
        url,
        json={"content": {"form": {"idle_seconds": ["5"]}}, "base_revision": 2},
        headers=headers,
    )
    assert saved.json()["revision"] == 3
    draft = db.scalar(select(Draft))
    assert draft is not None
    draft.updated_at = utcnow() - timedelta(minutes=10)
    db.commit()
    page = client.get(f"/work/assignments/{assignment.id}")
    idle = re.search(r'name="idle_seconds" value="(\d+)"', page.text)
    assert idle
    assert 545 <= int(idle.group(1)) <= 547


def test_skip_with_a_reason(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    url = f"/work/assignments/{assignment.id}/skip"
    before = snapshot(db)
    answer = client.post(url, data={"csrf_token": csrf})
    assert answer.status_code == 422
    assert by_testid(answer.text, "skip-error") == ["Choose a reason for skipping."]
    answer = client.post(url, data={"csrf_token": csrf, "reason": "other", "skip_note": " "})
    assert answer.status_code == 422
    assert by_testid(answer.text, "skip-error") == ["Say why when the reason is 'other'."]
    assert checked(answer.text, "reason") == ["other"]
    assert snapshot(db) == before

    answer = client.post(
        url, data={"csrf_token": csrf, "reason": "other", "skip_note": "Not my language"}
    )
    assert answer.status_code == 303
    db.expire_all()
    skipped = db.get(Assignment, assignment.id)
    assert skipped is not None
    assert (skipped.status, skipped.skip_reason, skipped.skip_note) == (
        AssignmentStatus.skipped,
        "other",
        "Not my language",
    )
    page = client.get(answer.headers["location"])
    assert by_testid(page.text, "notice") == [
        "Skipped. The task goes back to the queue for others."
    ]


def test_expired_lease_keeps_the_work_and_can_be_taken_again(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    assignment.lease_expires_at = utcnow() - timedelta(seconds=5)
    assignment.leased_at = utcnow() - timedelta(minutes=20)
    db.commit()

    page = client.get(f"/work/assignments/{assignment.id}")
    assert re.search(r'data-testid="lease-expired" role="alert">', page.text)
    answer = client.post(
        f"/work/assignments/{assignment.id}/comparison", data=full_form(csrf, comment="late")
    )
    assert answer.status_code == 409
    assert by_testid(answer.text, "form-error") == [
        "Your lease on this task expired, so it was not submitted. Your work is kept: "
        "take the task again to submit it."
    ]
    assert textarea(answer.text, "comment") == "late"
    assert count(db, Comparison) == 0
    draft = db.scalar(select(Draft))
    assert draft is not None
    assert draft.content["form"]["comment"] == ["late"]

    renewed = client.post(f"/work/assignments/{assignment.id}/renew", data={"csrf_token": csrf})
    assert renewed.status_code == 303
    new_id = int(renewed.headers["location"].rsplit("/", 1)[1])
    assert new_id != assignment.id
    page = client.get(renewed.headers["location"])
    assert textarea(page.text, "comment") == "late"
    assert 'data-state="open"' in page.text
    answer = client.post(
        f"/work/assignments/{new_id}/comparison", data=full_form(csrf, comment="late")
    )
    assert answer.status_code == 303
    assert count(db, Comparison) == 1
    assert count(db, Draft) == 0


# --- starting, the guideline, home ----------------------------------------------------------


def test_start_resumes_then_leases_then_says_finished(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    start = f"/work/queues/{setup['demos'].id}/start"
    first = client.post(start, data={"csrf_token": csrf})
    assert first.status_code == 303
    again = client.post(start, data={"csrf_token": csrf})
    assert again.headers["location"] == first.headers["location"]
    assert count(db, Assignment) == 1

    home = client.get("/")
    row = queue_row(home.text, setup["demos"].id)
    assert row
    assert by_testid(row.group(1), "left") == ["0"]
    assert by_testid(row.group(1), "resume") == ["Resume task 1"]
    assert "Resume Write" in row.group(1)

    assignment_id = int(first.headers["location"].rsplit("/", 1)[1])
    client.post(
        f"/work/assignments/{assignment_id}/demonstration",
        data={"csrf_token": csrf, "turn": ["Hello!"]},
    )
    finished = client.post(start, data={"csrf_token": csrf})
    assert finished.status_code == 200
    assert by_testid(finished.text, "finished-reason") == [
        "There is no task left for you in Write."
    ]
    home = client.get("/")
    row = queue_row(home.text, setup["demos"].id)
    assert row
    assert by_testid(row.group(1), "done-today") == ["1"]

    assert client.post("/work/queues/999999/start", data={"csrf_token": csrf}).status_code == 404


def test_mark_the_guideline_read(
    client: TestClient, db: Session, labeler: User, setup: dict[str, Any]
) -> None:
    csrf = web_login(client, "lena")
    assignment = lease(db, setup["queue"].id, labeler)
    url = f"/work/projects/{setup['project'].id}/guideline/read"
    answer = client.post(url, data={"csrf_token": csrf}, headers=HX)
    assert answer.status_code == 200
    assert by_testid(answer.text, "guideline-read") == [
        "Marked version 1 of the guideline as read."
    ]
    read = db.get(GuidelineRead, (labeler.id, setup["project"].id))
    assert read is not None
    assert read.guideline_version_id == setup["guideline"].id
    page = client.get(f"/work/assignments/{assignment.id}")
    assert "guideline-changed" not in page.text

    back = client.post(url, data={"csrf_token": csrf, "next": f"/work/assignments/{assignment.id}"})
    assert back.headers["location"] == f"/work/assignments/{assignment.id}"
    elsewhere = client.post(url, data={"csrf_token": csrf, "next": "https://evil.example/"})
    assert elsewhere.headers["location"] == "/"

    # A new version brings the banner back, naming the version read.
    publish_guideline(db, setup["project"], 2, "# Rules\n\nBe **brief**.")
    db.commit()
    page = client.get(f"/work/assignments/{assignment.id}")
    assert "The guideline changed since you last read it (you read version 1)." in page.text

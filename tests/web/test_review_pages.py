"""The task view and review forms: staff see every judgement side by side; an admin's
rejection without a reason is a 422 that stores nothing; with one, it shows on the task and on
the labeler's home page."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import LabelReview, Response, Role, Task, TaskResponse, User
from tests.conftest import csrf_from, make_user, web_login
from tests.services.test_review_queue import Judged, judged  # noqa: F401  (a fixture)
from tests.services.test_reviews import three_judged  # noqa: F401  (a fixture)


def test_task_view_rejection_needs_a_reason_then_shows(
    client: TestClient,
    db: Session,
    admin: User,
    three_judged: tuple[Task, list[int], list[User]],  # noqa: F811
) -> None:
    task, comparisons, labelers = three_judged
    web_login(client, admin.username)
    page = client.get(f"/tasks/{task.id}")
    assert page.status_code == 200
    assert page.text.count('data-testid="labeler-column"') == 3
    token = csrf_from(page.text)
    refused = client.post(
        f"/comparisons/{comparisons[2]}/review",
        data={"csrf_token": token, "verdict": "rejected", "reason": "  "},
    )
    assert refused.status_code == 422
    assert "say why the label is rejected" in refused.text
    assert db.scalars(select(LabelReview)).all() == []
    done = client.post(
        f"/comparisons/{comparisons[2]}/review",
        data={"csrf_token": token, "verdict": "rejected", "reason": "ranked backwards"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    shown = client.get(f"/tasks/{task.id}").text
    assert f'data-testid="review-comparison-{comparisons[2]}"' in shown
    assert "ranked backwards" in shown
    client.cookies.clear()
    web_login(client, labelers[2].username)
    home = client.get("/").text
    assert f'data-testid="rejected-comparison-{comparisons[2]}"' in home
    assert "ranked backwards" in home


def test_a_labeler_cannot_open_or_review_a_task(
    client: TestClient,
    db: Session,
    three_judged: tuple[Task, list[int], list[User]],  # noqa: F811
) -> None:
    task, comparisons, _ = three_judged
    make_user(db, "plain", Role.labeler)
    web_login(client, "plain")
    assert client.get(f"/tasks/{task.id}").status_code == 403
    token = csrf_from(client.get("/").text)
    answer = client.post(
        f"/comparisons/{comparisons[0]}/review",
        data={"csrf_token": token, "verdict": "rejected", "reason": "no"},
    )
    assert answer.status_code == 403
    assert db.scalars(select(LabelReview)).all() == []


def test_the_consensus_names_each_response_by_id_and_text(
    client: TestClient,
    db: Session,
    admin: User,
    three_judged: tuple[Task, list[int], list[User]],  # noqa: F811
) -> None:
    task, _, _ = three_judged
    ids = sorted(
        db.scalars(select(TaskResponse.response_id).where(TaskResponse.task_id == task.id))
    )
    for response_id in ids:
        response = db.get(Response, response_id)
        assert response is not None
        response.content = f"Answer number {response_id}, " + "long " * 30
    db.flush()
    web_login(client, admin.username)

    page = client.get(f"/tasks/{task.id}").text

    consensus = page.split('data-testid="consensus">')[1].split("</ol>")[0]
    # Two labelers ranked the responses in id order and one the other way round.
    assert consensus.count("<li>") == 3
    first = consensus.split("<li>")[1]
    text = (f"Answer number {ids[0]}, " + "long " * 30)[:79]
    assert first == f'<span dir="auto">#{ids[0]} {text}…</span></li>'
    assert "over 3 judgements, reliability-weighted." in page


def test_the_review_queue_page_takes_thresholds_and_pages(
    client: TestClient,
    admin: User,
    judged: Judged,  # noqa: F811
) -> None:
    j = judged
    web_login(client, admin.username)
    url = f"/projects/{j.project.id}/review"
    page = client.get(url)
    assert page.status_code == 200
    listed = [int(found) for found in re.findall(r'data-testid="review-item-(\d+)"', page.text)]
    assert listed == [j.la, j.lb, j.lc, j.hb, j.miss]
    assert 'name="agreement_below" min="0" max="1" step="0.05" value="0.6"' in page.text
    fast = client.get(url, params={"agreement_below": "0", "faster_than": "5", "gold_misses": "no"})
    listed = [int(found) for found in re.findall(r'data-testid="review-item-(\d+)"', fast.text)]
    assert listed == [j.lc, j.hb]
    assert '<option value="no" selected>' in fast.text
    bad = client.get(url, params={"agreement_below": "2"})
    assert bad.status_code == 422
    assert "agreement_below must be between 0 and 1" in bad.text
    nan = client.get(url, params={"faster_than": "soon"})
    assert nan.status_code == 422
    assert "faster than: &#39;soon&#39; is not a valid value" in nan.text
    nothing = client.get(url, params={"agreement_below": "0", "faster_than": "0"})
    listed = [int(found) for found in re.findall(r'data-testid="review-item-(\d+)"', nothing.text)]
    assert listed == [j.miss]
    assert 'data-testid="next-page"' not in nothing.text

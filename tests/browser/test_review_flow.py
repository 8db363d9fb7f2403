"""Issue 16's walk-through, in the browser: an admin writes a prompt with three responses,
queues it for three labelers, watches their labels arrive, opens the task, compares the three
rankings, rejects one with a reason, and the next snapshot leaves that label's pairs out."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.models import Pair, Queue, QueueKind, Role, TaskResponse
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.schemas.users import UserCreate
from app.services import users
from app.services.snapshots import create_snapshot
from app.settings import Settings
from tests.browser.conftest import LiveServer, save_screenshot
from tests.browser.test_first_steps import login
from tests.conftest import make_user
from tests.factories import judge_task, make_project, make_queue
from tests.services.snapshots.helpers import lines

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_admin_rejects_one_of_three_rankings_and_the_snapshot_leaves_it_out(
    live_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    with live_server.db() as db:
        admin, _ = users.create_user(
            db, UserCreate(username="boss", role=Role.admin, password="boss password 1")
        )
        project = make_project(db, "Alpha", admin)
        queue = make_queue(db, project, QueueKind.comparison, name="pairs", overlap=3)
        db.commit()
        project_id, queue_id = project.id, queue.id
    login(page, live_server.url, "boss", "boss password 1")
    page.goto(f"{live_server.url}/projects/{project_id}/prompts")
    form = page.get_by_test_id("prompt-create-form")
    form.get_by_label("Text of turn 1").fill("Name a colour.")
    form.get_by_role("button", name="Add response").click()
    form = page.get_by_test_id("prompt-create-form")
    for number, text in enumerate(["Blue.", "Red.", "A colour."], start=1):
        form.get_by_label(f"Text of response {number}").fill(text)
    form.get_by_role("button", name="Create prompt").click()
    expect(page.get_by_test_id("notice")).to_contain_text("with 3 responses.")
    page.get_by_test_id("prompt-queue-form").get_by_label("Queue").select_option(str(queue_id))
    page.get_by_role("button", name="Add to queue").click()
    expect(page.get_by_test_id("notice")).to_contain_text("to pairs.")

    # Three labelers judge the task (the workbench has browser tests of its own).
    with live_server.db() as db:
        task_responses = db.scalars(select(TaskResponse).order_by(TaskResponse.response_id))
        blue, red, other = (found.response_id for found in task_responses)
        names = ("ann", "bob", "cy")
        labelers = [make_user(db, name, Role.labeler) for name in names]
        orders = ([blue, red, other], [blue, other, red], [other, red, blue])
        queue = db.get(Queue, queue_id)
        assert queue is not None
        ids = [judge_task(db, queue, who, order)
               for who, order in zip(labelers, orders, strict=True)]  # fmt: skip

    page.goto(f"{live_server.url}/queues/{queue_id}")
    page.get_by_test_id("task-link").first.click()
    columns = page.get_by_test_id("labeler-column")
    expect(columns).to_have_count(3)
    expect(columns).to_contain_text(list(names))
    expect(page.get_by_test_id("consensus")).to_be_visible()

    review = page.get_by_test_id(f"review-form-comparison-{ids[2]}")
    review.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("alert")).to_contain_text("say why the label is rejected")
    review = page.get_by_test_id(f"review-form-comparison-{ids[2]}")
    review.get_by_label("Reason").fill("ranked the non-answer first")
    review.get_by_role("button", name="Reject").click()
    expect(page.get_by_test_id(f"review-comparison-{ids[2]}")).to_have_text(
        "rejected — ranked the non-answer first"
    )
    page.set_viewport_size({"width": 1280, "height": 900})
    save_screenshot(page, "task-view.png")
    page.goto(f"{live_server.url}/projects/{project_id}/data")
    expect(page.get_by_test_id("task-link")).to_have_count(3)
    save_screenshot(page, "data-browser.png")
    # Each two of the three agree on one response pair of three: the task's agreement is 1/3,
    # below 0.5; the review queue lists the two labels not yet reviewed.
    filters = page.get_by_test_id("data-filters")
    filters.get_by_test_id("agreement-below").fill("0.5")
    filters.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("agreement")).to_have_text(["33%"] * 3)
    page.goto(f"{live_server.url}/projects/{project_id}/review")
    expect(page.get_by_test_id(f"review-item-{ids[0]}")).to_contain_text("low agreement")
    expect(page.get_by_test_id(f"review-item-{ids[2]}")).to_have_count(0)
    thresholds = page.get_by_test_id("review-thresholds")
    thresholds.get_by_test_id("agreement-below").fill("0.3")
    thresholds.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("review-queue-empty")).to_be_visible()

    # The next snapshot: the rejected comparison's pairs are left out, the others kept.
    settings = Settings(data_dir=tmp_path / "data", secret_key="b" * 40)
    with live_server.db() as db:
        made = create_snapshot(
            db,
            settings,
            project_id,
            SnapshotCreate(
                name="after review",
                kind="preference",
                source="pairs",
                filters=SnapshotFilters(test_fraction=0.0),
            ),
            admin,
        )
        stored = set(db.scalars(select(Pair.comparison_id)))
    assert stored == set(ids)  # kept, all three
    assert sorted({row["comparison_id"] for row in lines(settings, made.path)}) == ids[:2]

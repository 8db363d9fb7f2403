"""An admin writes a prompt with two responses in the browser and puts it into a comparison
queue, without the API."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from app.models import QueueKind, Role
from app.schemas.users import UserCreate
from app.services import users
from tests.browser.conftest import LiveServer
from tests.browser.test_first_steps import login
from tests.factories import make_project, make_queue

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_admin_writes_a_prompt_and_queues_it(live_server: LiveServer, page: Page) -> None:
    with live_server.db() as db:
        admin, _ = users.create_user(
            db, UserCreate(username="boss", role=Role.admin, password="boss password 1")
        )
        project = make_project(db, "Alpha", admin)
        queue = make_queue(db, project, QueueKind.comparison, name="pairs")
        db.commit()
        project_id, queue_id = project.id, queue.id
    login(page, live_server.url, "boss", "boss password 1")
    page.goto(f"{live_server.url}/projects/{project_id}")
    page.get_by_test_id("project-prompts-link").click()
    expect(page.get_by_test_id("no-prompts")).to_be_visible()

    form = page.get_by_test_id("prompt-create-form")
    form.get_by_label("Text of turn 1").fill("Name a colour.")
    form.get_by_label("Text of response 1").fill("Blue.")
    form.get_by_label("Source of response 1").fill("model-a")
    form.get_by_label("Text of response 2").fill("Red.")
    form.get_by_role("button", name="Create prompt").click()
    expect(page.get_by_test_id("notice")).to_contain_text("with 2 responses.")
    expect(page.get_by_test_id("prompt-conversation")).to_contain_text("Name a colour.")

    page.get_by_test_id("prompt-queue-form").get_by_label("Queue").select_option(str(queue_id))
    page.get_by_role("button", name="Add to queue").click()
    expect(page.get_by_test_id("notice")).to_contain_text("to pairs.")
    page.get_by_test_id("prompt-tasks").get_by_role("link", name="pairs").click()
    rows = page.get_by_test_id("queue-tasks").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("1, 2")

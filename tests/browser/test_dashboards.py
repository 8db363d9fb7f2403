"""The project dashboard and the agreement page in Chromium, with labels made the real way:
labelers lease tasks and submit through the services, into the live server's database.

  queue "pairs" (overlap 2): three chat / chat / closed QA prompts, three responses each.
    ann ranks every task by response id; bob ranks the first the same (3 of 3 pairs agree),
    the second reversed (0 of 3), and skips the third. Pairwise agreement 3 of 6 = 50%.
    ann flags her last response "hallucination" each time, bob one "unnecessary_refusal".
  queue "demos": one generation prompt, demonstrated by cat. A rewrite prompt has no task.
  spend: 1 demonstration x 1.00 + 5 comparisons x 0.50 = 3.50; 5 x 3 = 15 usable pairs,
    2.50 / 15 = 0.1667 each.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from app.models import PromptCategory, QueueKind, Role, User
from app.schemas.labeling import (
    ComparisonSubmit,
    DemonstrationSubmit,
    ItemJudgement,
    Message,
    SkipReason,
    SkipSubmit,
)
from app.schemas.projects import ProjectCreate
from app.schemas.prompts import PromptCreate, ResponseCreate
from app.schemas.queues import QueueCreate, TaskItem, TasksAdd
from app.schemas.users import UserCreate
from app.services import assignments, projects, prompts, queues, tasks, users
from tests.browser.conftest import LiveServer
from tests.browser.test_first_steps import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "boss password 1"


def judge(db: object, labeler: User, queue_id: int, reverse: bool, flag: str) -> None:
    assignment = assignments.lease_next_task(db, queue_id, labeler)  # type: ignore[arg-type]
    assert assignment is not None
    ids = sorted(assignment.response_order or [])
    order = list(reversed(ids)) if reverse else ids
    items = [
        ItemJudgement(
            response_id=response_id,
            score=7 - rank,
            rank=rank,
            flags=[flag] if rank == len(order) else [],
        )
        for rank, response_id in enumerate(order, start=1)
    ]
    assignments.submit_comparison(db, assignment.id, labeler, ComparisonSubmit(items=items))  # type: ignore[arg-type]


def make_project_with_labels(live_server: LiveServer) -> int:
    with live_server.db() as db:
        boss, _ = users.create_user(
            db, UserCreate(username="boss", role=Role.admin, password=PASSWORD)
        )
        ann, bob, cat = (
            users.create_user(db, UserCreate(username=name, password=f"{name} password 1"))[0]
            for name in ("ann", "bob", "cat")
        )
        project = projects.create_project(
            db,
            ProjectCreate(
                name="Support bot",
                cost_per_demonstration=Decimal("1.00"),
                cost_per_comparison=Decimal("0.50"),
            ),
            acting=boss,
        )

        def prompt(text: str, category: PromptCategory) -> int:
            data = PromptCreate(messages=[{"role": "user", "content": text}], category=category)
            return prompts.create_prompt(db, project.id, data, boss).id

        pairs = queues.create_queue(
            db, project.id, QueueCreate(name="pairs", kind=QueueKind.comparison, overlap=2), boss
        )
        items = []
        for text, category in (
            ("Help me reset my password.", PromptCategory.chat),
            ("My parcel is late.", PromptCategory.chat),
            ("Which plan includes support?", PromptCategory.closed_qa),
        ):
            prompt_id = prompt(text, category)
            responses = [
                prompts.add_response(
                    db, prompt_id, ResponseCreate(content=f"{text} answer {n}"), boss
                )
                for n in range(3)
            ]
            items.append(TaskItem(prompt_id=prompt_id, response_ids=[r.id for r in responses]))
        tasks.add_tasks(db, pairs.id, TasksAdd(items=items))
        demos = queues.create_queue(
            db, project.id, QueueCreate(name="demos", kind=QueueKind.demonstration), boss
        )
        tasks.add_tasks_from_prompts(
            db, demos.id, [prompt("Write a welcome email.", PromptCategory.generation)]
        )
        prompt("Rewrite this more politely.", PromptCategory.rewrite)
        db.commit()

        for _ in range(3):
            judge(db, ann, pairs.id, reverse=False, flag="hallucination")
        judge(db, bob, pairs.id, reverse=False, flag="unnecessary_refusal")
        judge(db, bob, pairs.id, reverse=True, flag="unnecessary_refusal")
        skipped = assignments.lease_next_task(db, pairs.id, bob)
        assert skipped is not None
        assignments.skip_assignment(
            db, skipped.id, bob, SkipSubmit(reason=SkipReason.lacks_expertise)
        )
        demo = assignments.lease_next_task(db, demos.id, cat)
        assert demo is not None
        assignments.submit_demonstration(
            db,
            demo.id,
            cat,
            DemonstrationSubmit(messages=[Message(role="assistant", content="Welcome aboard!")]),
        )
        return project.id


def test_dashboard_and_agreement_page_draw_real_data(live_server: LiveServer, page: Page) -> None:
    project_id = make_project_with_labels(live_server)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chromium asks for /favicon.ico on its own; Smiley has none, and no page asked for it.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            problems.append(f"{message.text} ({message.location['url']})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))

    login(page, live_server.url, "boss", PASSWORD)
    expect(page.get_by_test_id("whoami")).to_have_text("boss · admin")
    page.goto(f"{live_server.url}/projects/{project_id}")
    page.get_by_test_id("project-dashboard-link").click()
    expect(page).to_have_url(f"{live_server.url}/projects/{project_id}/dashboard")

    # Queue progress: a bar per queue, and its numbers.
    expect(page.get_by_test_id("progress-chart")).to_be_visible()
    expect(page.get_by_test_id("progress-chart-row")).to_have_count(2)
    expect(page.get_by_test_id("progress-chart-done")).to_have_count(2)
    queue_rows = page.get_by_test_id("queue-row")
    expect(queue_rows.nth(0).locator("td").nth(2)).to_have_text("1")  # demos: 1 of 1 done
    expect(queue_rows.nth(1).locator("td").nth(2)).to_have_text("5")  # pairs: 5 of 6
    expect(queue_rows.nth(1).locator("td").nth(4)).to_have_text("1")

    # Agreement over time: every label was made today, so one point.
    expect(page.get_by_test_id("agreement-chart")).to_be_visible()
    expect(page.get_by_test_id("agreement-chart-point")).to_have_count(1)
    expect(page.get_by_test_id("overall-pairwise")).to_have_text("50.0%")
    # Charts take the page's full width, as its tables do (they were held to 45rem).
    for chart in ("progress-chart", "agreement-chart"):
        assert_full_width(page, chart, "labeler-row")

    labelers = page.get_by_test_id("labeler-row")
    expect(labelers).to_have_count(3)
    expect(labelers.nth(0).locator("td").nth(0)).to_have_text("ann")
    expect(labelers.nth(0).locator("td").nth(2)).to_have_text("3")
    expect(labelers.nth(1).locator("td").nth(4)).to_have_text("33.3% (1 of 3)")
    expect(labelers.nth(2).locator("td").nth(1)).to_have_text("1")

    # Prompt categories and flags: tables only, rows with nothing counted left out until
    # "Show all" is asked for.
    expect(page.get_by_test_id("category-chart")).to_have_count(0)
    chat = page.get_by_test_id("category-row").filter(has_text="Chat")
    expect(chat.locator("td").nth(1)).to_have_text("2")
    expect(page.get_by_test_id("flag-chart")).to_have_count(0)
    hallucination = page.get_by_test_id("flag-row").filter(has_text="Hallucination")
    expect(hallucination.locator("td").nth(1)).to_have_text("3")
    shown_flags = page.get_by_test_id("flag-row").count()
    assert shown_flags < 10
    page.get_by_test_id("hidden-flags-show-all").click()
    expect(page.get_by_test_id("flag-row")).to_have_count(10)

    expect(page.get_by_test_id("spend-to-date")).to_have_text("3.50")
    expect(page.get_by_test_id("usable-pairs")).to_have_text("15")
    expect(page.get_by_test_id("cost-per-pair")).to_have_text("0.1667")

    # The agreement page draws the same judgements.
    page.get_by_role("link", name="Agreement in detail").click()
    expect(page).to_have_url(f"{live_server.url}/projects/{project_id}/agreement")
    expect(page.get_by_test_id("agreement-chart")).to_be_visible()
    expect(page.get_by_test_id("agreement-line")).to_have_count(1)
    assert_full_width(page, "agreement-chart", "labeler-row")
    expect(page.get_by_test_id("overall-pairwise")).to_have_text("50.0%")
    expect(page.get_by_test_id("labeler-row")).to_have_count(2)
    expect(page.get_by_test_id("agreement-over-time").locator("tbody tr")).to_have_count(1)

    assert problems == []


def assert_full_width(page: Page, chart: str, table_row: str) -> None:
    """The chart is as wide as the page's tables (to the pixel, borders aside)."""
    chart_box = page.get_by_test_id(chart).bounding_box()
    row_box = page.get_by_test_id(table_row).first.bounding_box()
    assert chart_box is not None and row_box is not None
    assert abs(chart_box["width"] - row_box["width"]) <= 2, (chart_box, row_box)

"""The project hub in Chromium with real labels (the dashboard test's project: two queues,
ann's and bob's comparisons at 50% agreement, 3.50 spent), six snapshots and a run; the
`page` fixture fails the test on any Content-Security-Policy violation.

With SMILEY_SCREENSHOT_DIR set, the test also saves the hub as project-hub.png there (the
README's screenshot: docs/screenshots/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.models import Project
from app.settings import Settings
from tests.browser.conftest import LiveServer
from tests.browser.test_dashboards import PASSWORD, make_project_with_labels
from tests.browser.test_first_steps import login
from tests.training_factories import make_model, make_run, make_snapshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_hub_shows_where_the_project_stands(
    live_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    project_id = make_project_with_labels(live_server)
    settings = Settings(data_dir=tmp_path / "data", database_url="sqlite://", secret_key="b" * 40)
    with live_server.db() as db:
        project = db.get(Project, project_id)
        assert project is not None
        base = make_model(db, settings, "tiny-base")
        made = [make_snapshot(db, settings, project, train=40, test=4) for _ in range(6)]
        run_id = make_run(db, project, base, made[-1]).id
        db.commit()
        newest_snapshot = made[-1].id

    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server.url, "boss", PASSWORD)
    page.goto(f"{live_server.url}/projects/{project_id}")

    tabs = page.get_by_test_id("project-tabs").get_by_role("link")
    expect(tabs).to_have_text(
        ["Overview", "Prompts", "Data", "Queues", "Guideline", "Dashboard", "Agreement",
         "Review", "Datasets", "Runs", "Generate", "Principles", "Evaluations", "Rounds"]
    )  # fmt: skip
    expect(page.get_by_test_id("project-overview-link")).to_have_attribute("aria-current", "page")
    # pairs: 5 of 6 labels done (overlap 2 on three tasks, bob skipped one); demos: 1 of 1.
    expect(page.get_by_test_id("hub-labels")).to_have_text("6 of 7")
    expect(page.get_by_test_id("hub-queue-progress")).to_have_text(
        ["1 of 1 labels · 1 task", "5 of 6 labels · 3 tasks"]
    )
    expect(page.get_by_test_id("hub-agreement")).to_have_text("50.0%")
    expect(page.get_by_test_id("hub-spend")).to_have_text("3.50")
    expect(page.get_by_test_id("hub-spend-note")).to_have_text("1 demonstration, 5 comparisons")
    expect(page.get_by_test_id("hub-snapshot-row")).to_have_count(5)
    expect(page.get_by_role("link", name="All snapshots (6)")).to_be_visible()
    expect(page.get_by_test_id("hub-run-row")).to_have_count(1)
    # The flags table waits, closed, below the rest.
    expect(page.get_by_test_id("project-flags")).not_to_be_visible()

    if folder := os.environ.get("SMILEY_SCREENSHOT_DIR"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / "project-hub.png"), full_page=True)

    # The rows lead on: the newest snapshot, then the run; the tabs stay on every page.
    page.get_by_test_id("hub-snapshot-row").first.get_by_role("link").click()
    expect(page).to_have_url(f"{live_server.url}/snapshots/{newest_snapshot}")
    page.goto(f"{live_server.url}/projects/{project_id}")
    page.get_by_role("link", name=f"Run {run_id}").click()
    expect(page).to_have_url(f"{live_server.url}/runs/{run_id}")
    page.goto(f"{live_server.url}/projects/{project_id}")
    page.get_by_test_id("project-agreement-link").click()
    expect(page).to_have_url(f"{live_server.url}/projects/{project_id}/agreement")
    expect(page.get_by_test_id("project-agreement-link")).to_have_attribute("aria-current", "page")

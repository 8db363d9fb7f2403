"""The datasets pages in Chromium: a researcher creates a snapshot from the page, watches its
job finish (the row polls itself), opens the snapshot and toggles its preview.

No Celery worker runs here: the page queues the job on the embedded broker, and the test then
runs it the way the worker's task does (run_dataset_job), against the live server's database.
Three SFT rows are imported first; one carries markup that must stay inert.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect
from sqlalchemy import select

from app.models import DatasetJob, DatasetJobStatus, Role
from app.schemas.projects import ProjectCreate
from app.schemas.users import UserCreate
from app.services import projects, users
from app.services.dataset_jobs import run_dataset_job
from app.services.imports import import_stream
from app.settings import Settings
from tests.browser.conftest import LiveServer
from tests.browser.test_first_steps import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "researcher password 1"
SFT_ROWS = (
    b'{"prompt": "Say hello.", "completion": "Hello!"}\n'
    b'{"prompt": "Say goodbye.", "completion": "Goodbye, **friend**."}\n'
    b'{"prompt": "Click <b hx-get=\\"/logout\\" hx-trigger=\\"load\\">here</b>", '
    b'"completion": "<script>window.pwned = 1</script>No."}\n'
)


def make_project(live_server: LiveServer) -> int:
    with live_server.db() as db:
        rhea, _ = users.create_user(
            db, UserCreate(username="rhea", role=Role.researcher, password=PASSWORD)
        )
        project = projects.create_project(db, ProjectCreate(name="Greetings"), acting=rhea)
        result = import_stream(
            db, project.id, io.BytesIO(SFT_ROWS), "greetings.jsonl", on_error="stop", acting=rhea
        )
        assert result.demonstrations == 3
        return project.id


def queued_job(live_server: LiveServer) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with live_server.db() as db:
            job = db.scalars(select(DatasetJob)).first()
            if job is not None:
                assert job.status == DatasetJobStatus.queued
                return job.id
        time.sleep(0.1)
    raise AssertionError("the page started no job")


def test_a_snapshot_made_from_the_page(live_server: LiveServer, page: Page, tmp_path: Path) -> None:
    project_id = make_project(live_server)
    # The live server's settings (tests/browser/conftest.py), for running its job here.
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'browser.sqlite3'}",
        secret_key="b" * 40,
    )
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            problems.append(f"{message.text} ({message.location['url']})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))

    login(page, live_server.url, "rhea", PASSWORD)
    expect(page.get_by_test_id("whoami")).to_have_text("rhea · researcher")
    page.goto(f"{live_server.url}/projects/{project_id}")
    page.get_by_test_id("project-datasets-link").click()
    expect(page).to_have_url(f"{live_server.url}/projects/{project_id}/datasets")
    expect(page.get_by_test_id("no-snapshots")).to_be_visible()

    # A bad filter first: the form says so and keeps what was typed.
    form = page.get_by_test_id("snapshot-form")
    form.get_by_label("Name", exact=True).fill("Greetings SFT")
    form.get_by_label("Kind").select_option("sft")
    form.get_by_label("Test fraction").fill("1.5")
    page.get_by_test_id("create-snapshot").click()
    expect(page.get_by_test_id("error-test_fraction")).to_have_text(
        "Input should be less than or equal to 1"
    )
    expect(form.get_by_label("Name", exact=True)).to_have_value("Greetings SFT")

    form.get_by_label("Test fraction").fill("0")
    page.get_by_test_id("create-snapshot").click()
    job_id = queued_job(live_server)
    expect(page.get_by_test_id("notice")).to_have_text(
        f"Started snapshot job {job_id}: Greetings SFT."
    )
    row = page.locator(f"#job-{job_id}")
    expect(row.get_by_test_id("job-status")).to_have_text("queued")
    expect(row).to_have_attribute("hx-trigger", "every 1s")

    # The worker's turn; the row, polling every second, shows the job done and stops polling.
    run_dataset_job(job_id, settings=settings, sessions=live_server.sessions)
    expect(row.get_by_test_id("job-status")).to_have_text("succeeded", timeout=5000)
    expect(row.get_by_test_id("job-result")).to_contain_text("3 train, 0 test rows")
    assert row.get_attribute("hx-trigger") is None
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.wait_for_timeout(2500)
    assert [url for url in requests if "/dataset-jobs/" in url] == []

    # The snapshot: its manifest, and a preview that toggles between the splits.
    row.get_by_test_id("job-snapshot-link").click()
    expect(page.get_by_test_id("snapshot-name")).to_contain_text("Greetings SFT")
    expect(page.get_by_test_id("row-counts")).to_have_text("3 train · 0 test")
    previews = page.get_by_test_id("preview-row")
    expect(previews).to_have_count(3)
    expect(previews.nth(1).get_by_test_id("turn").nth(1)).to_contain_text("Goodbye, friend.")
    expect(previews.nth(1).locator("strong")).to_have_text("friend")
    # The markup in the third row is shown as text: no element, no script, no request.
    unsafe = previews.nth(2)
    expect(unsafe.get_by_test_id("turn").nth(0)).to_contain_text(
        'Click <b hx-get="/logout" hx-trigger="load">here</b>'
    )
    expect(unsafe.locator("b, script")).to_have_count(0)
    assert page.evaluate("window.pwned") is None

    page.get_by_test_id("split-test").click()
    expect(page).to_have_url(f"{live_server.url}/snapshots/{job_snapshot(live_server)}?split=test")
    expect(page.get_by_test_id("preview-empty")).to_have_text("The test split has no rows.")
    page.get_by_test_id("split-train").click()
    expect(page.get_by_test_id("preview-row")).to_have_count(3)

    # Logged in still: the inert hx-get="/logout" never fired.
    expect(page.get_by_test_id("whoami")).to_have_text("rhea · researcher")
    # Chromium logs the refused form's 422 answer (the page with the inline error); nothing else.
    assert problems == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable "
        f"Entity) ({live_server.url}/projects/{project_id}/datasets/snapshots)"
    ]


def job_snapshot(live_server: LiveServer) -> int:
    with live_server.db() as db:
        snapshot_id = db.scalars(select(DatasetJob.snapshot_id)).one()
        assert snapshot_id is not None
        return snapshot_id

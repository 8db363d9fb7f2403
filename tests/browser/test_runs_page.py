"""A run's page in Chromium: the test plays the worker, writing metric rows through the same
service calls a worker makes, and the page's charts gain points without a reload; cancel from
the page reaches the worker, and once the run is finished the page stops polling."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from app.models import Model, ModelRole, Role, Run, RunKind, RunStatus, Snapshot, SnapshotKind
from app.schemas.projects import ProjectCreate
from app.schemas.users import UserCreate
from app.services import projects, runs, users
from app.settings import Settings
from tests.browser.conftest import LiveServer
from tests.browser.test_first_steps import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "rhea password 1"
WORKER = "gpu-1@host"
# Polling is every 2 s; leave room for a slow machine.
LIVE = 10_000


def make_running_run(live_server: LiveServer) -> tuple[int, int]:
    """A researcher and an SFT run a worker has claimed; (project id, run id)."""
    with live_server.db() as db:
        rhea, _ = users.create_user(
            db, UserCreate(username="rhea", role=Role.researcher, password=PASSWORD)
        )
        project = projects.create_project(db, ProjectCreate(name="Support bot"), acting=rhea)
        base = Model(name="tiny-base", role=ModelRole.policy, path="models/tiny-base")
        data = Snapshot(
            project_id=project.id,
            name="demonstrations",
            kind=SnapshotKind.sft,
            filters={},
            content_hash="0" * 64,
            row_counts={"train": 8, "test": 2},
            path="snapshots/1-sft",
        )
        db.add_all([base, data])
        db.flush()
        run = Run(
            project_id=project.id,
            kind=RunKind.sft,
            base_model_id=base.id,
            snapshot_id=data.id,
            hyperparameters={},
        )
        db.add(run)
        db.commit()
        assert runs.claim_run(db, run.id, WORKER) is not None
        return project.id, run.id


def test_the_chart_grows_live_and_cancel_reaches_the_worker(
    live_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    project_id, run_id = make_running_run(live_server)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"{message.text} ({message.location['url']})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))

    login(page, live_server.url, "rhea", PASSWORD)
    expect(page.get_by_test_id("whoami")).to_have_text("rhea · researcher")
    page.goto(f"{live_server.url}/runs/{run_id}")
    expect(page.get_by_test_id("run-status")).to_have_text("running")
    expect(page.get_by_test_id("loss-chart-empty")).to_have_text("Nothing logged yet.")
    # Anything the page holds in memory would be lost by a reload.
    page.evaluate("window.__sameDocument = true")

    with live_server.db() as db:
        for step, loss in ((1, 2.0), (2, 1.6)):
            assert runs.record_metrics(
                db, run_id, WORKER, step, {"loss": loss, "learning_rate": 5e-4}, step / 10
            )
    expect(page.get_by_test_id("loss-chart-point")).to_have_count(2, timeout=LIVE)
    expect(page.get_by_test_id("learning-rate-chart-point")).to_have_count(2)
    expect(page.get_by_test_id("run-progress")).to_have_attribute("aria-label", "20.0% done")

    with live_server.db() as db:
        assert runs.record_metrics(db, run_id, WORKER, 3, {"loss": 1.1}, 0.3)
    expect(page.get_by_test_id("loss-chart-point")).to_have_count(3, timeout=LIVE)
    expect(page.get_by_test_id("loss-chart-point").last).to_have_attribute("cy", "208.0")
    assert page.evaluate("window.__sameDocument") is True

    # Cancel from the page: the run keeps running until its worker's next step.
    page.get_by_test_id("cancel-run").click()
    expect(page.get_by_test_id("notice")).to_have_text(
        f"Cancel requested: run {run_id} stops at its worker's next step."
    )
    expect(page.get_by_test_id("cancel-requested")).to_have_text("cancel requested")
    expect(page.get_by_test_id("cancel-run")).to_have_count(0)
    page.evaluate("window.__sameDocument = true")

    # The worker sees the request at its next heartbeat and stops with a checkpoint.
    with live_server.db() as db:
        assert runs.beat_run(db, run_id, WORKER).cancel_requested is True
        stopped = runs.complete_run(
            db,
            Settings(data_dir=tmp_path / "data", database_url="sqlite://", secret_key="b" * 40),
            run_id,
            WORKER,
            metrics={},
            model_dir=tmp_path / "unused",
            role=ModelRole.policy,
            settings_used={},
            stopped=True,
        )
        assert stopped is not None and stopped.status == RunStatus.cancelled
    expect(page.get_by_test_id("run-status")).to_have_text("cancelled", timeout=LIVE)
    # Finished: the live part no longer asks for itself, and a resume is offered.
    expect(page.get_by_test_id("run-live")).not_to_have_attribute("hx-trigger", "every 2s")
    expect(page.get_by_test_id("resume-run")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True

    # The kind select swaps in that kind's form through htmx.
    page.goto(f"{live_server.url}/projects/{project_id}/runs")
    expect(page.get_by_test_id("run-row")).to_have_count(1)
    expect(page.locator('[name="hp.beta"]')).to_have_count(0)
    page.get_by_label("Base model folder").fill("models/elsewhere")
    page.get_by_test_id("launch-kind").select_option("dpo")
    expect(page.locator('[name="hp.beta"]')).to_have_count(1)
    expect(page.locator('[name="hp.loss_type"]')).to_have_count(1)
    expect(page.get_by_label("Base model folder")).to_have_value("models/elsewhere")

    assert problems == []

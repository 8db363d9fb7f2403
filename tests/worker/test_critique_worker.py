"""A critique run end to end through a real `smiley worker` process (SQLite, embedded broker)
with the tiny model: launched like the API launches it over a comparison queue, each response
critiqued and revised under the project's principle, every revision stored as a model response
with its "revision ≻ original" pair of source "ai", the run's counts adding up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, session_factory
from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Pair,
    Response,
    ResponseRevision,
    ResponseSource,
    Role,
    Run,
    RunStatus,
    Task,
)
from app.schemas.critique import PrincipleCreate
from app.schemas.training import RunCreate
from app.services import principles, runs
from app.settings import Settings
from tests.conftest import MigratedDatabases, make_user
from tests.factories import make_comparison_tasks, make_project, make_queue
from tests.worker.training_worker import start_worker, tiny_base_model, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("training-e2e")]


@pytest.fixture
def settings(tmp_path: Path, migrated_databases: MigratedDatabases) -> Settings:
    url = migrated_databases.sqlite(tmp_path / "critique.sqlite3")
    settings = Settings(
        data_dir=tmp_path / "data", database_url=url, secret_key="test-secret-key-" + "x" * 32
    )
    settings.ensure_data_dir()
    return settings


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.resolved_database_url)
    yield session_factory(engine)
    engine.dispose()


def test_a_critique_run_stores_revisions_with_their_pairs(
    settings: Settings, sessions: sessionmaker[Session], tiny: Path
) -> None:
    with sessions() as db:
        rhea = make_user(db, "rhea", Role.researcher)
        project = make_project(db)
        queue = make_queue(db, project)
        make_comparison_tasks(db, queue, project, 2, responses_each=2)
        model = tiny_base_model(db, settings, project, tiny)
        principle = principles.create_principle(
            db,
            project.id,
            PrincipleCreate(
                name="kind",
                critique_request="Say how the answer could be kinder.",
                revision_request="Rewrite the answer to be kinder.",
            ),
            rhea,
        )
        run_id = runs.create_run(
            db,
            settings,
            project.id,
            RunCreate(
                kind="critique",
                base_model_id=model.id,
                hyperparameters={"queue_id": queue.id, "max_new_tokens": 12, "seed": 3},
            ),
            acting=rhea,
        ).id
        model_id, principle_id, queue_id = model.id, principle.id, queue.id

    def finished() -> bool:
        with sessions() as db:
            run = db.get(Run, run_id)
            assert run is not None
            return run.status in (RunStatus.succeeded, RunStatus.failed)

    worker = start_worker(settings, "critic@%h")
    try:
        wait_for(finished, 300, "the critique run to finish", worker)
    finally:
        worker.stop()

    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        assert run.status == RunStatus.succeeded, (run.error, worker.output()[-3000:])
        counts = run.metrics["eval"]
        assert counts["critiques"] == 4
        assert counts["revisions"] + counts["revisions_empty"] + counts["revisions_unchanged"] == 4
        # The tiny model's 12 random tokens are not the original text, and not empty.
        assert counts["revisions"] >= 3, counts
        revisions = list(
            db.scalars(select(ResponseRevision).where(ResponseRevision.run_id == run_id))
        )
        assert len(revisions) == counts["revisions"]
        for revision in revisions:
            response = db.get(Response, revision.response_id)
            original = db.get(Response, revision.original_response_id)
            assert response is not None and original is not None
            assert (response.source, response.model_id, response.run_id, response.parent_id) == (
                ResponseSource.model, model_id, run_id, original.id,
            )  # fmt: skip
            assert response.content.strip() and response.content.strip() != original.content
            assert revision.principle_id == principle_id
            judged = db.get(Comparison, revision.comparison_id)
            assert judged is not None
            assert (judged.source, judged.model_id, judged.run_id, judged.task_id) == (
                LabelSource.ai, model_id, run_id, None,
            )  # fmt: skip
            items = db.execute(
                select(ComparisonItem.response_id, ComparisonItem.rank)
                .where(ComparisonItem.comparison_id == judged.id)
                .order_by(ComparisonItem.rank)
            ).all()
            assert items == [(response.id, 1), (original.id, 2)]
            pairs = db.execute(
                select(Pair.winner_response_id, Pair.loser_response_id).where(
                    Pair.comparison_id == judged.id
                )
            ).all()
            assert pairs == [(response.id, original.id)]
        # The queue's work is untouched: no new task, no label on its tasks.
        assert len(db.scalars(select(Task).where(Task.queue_id == queue_id)).all()) == 2
        on_tasks = select(Comparison).where(Comparison.task_id.is_not(None))
        assert db.scalars(on_tasks).all() == []

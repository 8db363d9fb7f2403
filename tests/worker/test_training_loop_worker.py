"""Every training kind through one real Celery worker (SQLite, embedded broker), each from a
real snapshot of labels imported into the database: SFT, then a reward model and DPO from the
SFT model, then RLOO and PPO against that reward model. Each learns what the synthetic labels
teach (chosen answers use warm words), and the registry ends as the lineage tree
base -> SFT -> {reward, DPO, RLOO, PPO}. The learning thresholds are the job tests' own."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app import migrate
from app.db import make_engine, session_factory
from app.models import Role, Run, RunStatus, SnapshotKind, User
from app.schemas.snapshots import SnapshotCreate
from app.schemas.training import RunCreate
from app.services import registry, runs
from app.services.imports import import_stream
from app.services.snapshots import create_snapshot
from app.settings import Settings
from tests.conftest import make_user
from tests.factories import make_project
from tests.worker.training_worker import start_worker, tiny_base_model, wait_for
from worker.training.synthetic import preference_rows, prompt_rows, sft_rows

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'loop.sqlite3'}"
    migrate.upgrade(url)
    return Settings(
        data_dir=tmp_path / "data", database_url=url, secret_key="test-secret-key-" + "x" * 32
    )


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.resolved_database_url)
    yield session_factory(engine)
    engine.dispose()


def imported_snapshot(
    db: Session,
    settings: Settings,
    project_id: int,
    user: User,
    kind: SnapshotKind,
    rows: list[dict[str, Any]],
    format: str,
) -> int:
    lines = "".join(json.dumps(row) + "\n" for row in rows).encode()
    result = import_stream(
        db, project_id, io.BytesIO(lines), f"{kind.value}.jsonl", format=format,
        on_error="stop", acting=user,
    )  # fmt: skip
    assert result.records_imported == len(rows), result
    snapshot = create_snapshot(
        db, settings, project_id, SnapshotCreate(name=kind.value, kind=kind), user
    )
    return snapshot.id


def finished(sessions: sessionmaker[Session], run_id: int) -> Run:
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        db.expunge(run)
        return run


def test_every_kind_trains_on_a_worker_and_the_registry_is_a_lineage_tree(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    settings.ensure_data_dir()
    with sessions() as db:
        user = make_user(db, "rhea", Role.researcher)
        project = make_project(db)
        db.commit()
        project_id = project.id
        base_id = tiny_base_model(db, settings, project).id
        demonstrations = [
            {"messages": row["messages"]} for row in sft_rows(400, positive_share=0.5)
        ]
        pairs = [
            {key: row[key] for key in ("prompt", "chosen", "rejected")}
            for row in preference_rows(400)
        ]
        prompts = [{"messages": row["prompt"]} for row in prompt_rows(200)]
        sft_snapshot = imported_snapshot(
            db, settings, project_id, user, SnapshotKind.sft, demonstrations, "sft"
        )
        pair_snapshot = imported_snapshot(
            db, settings, project_id, user, SnapshotKind.preference, pairs, "preference"
        )
        prompt_snapshot = imported_snapshot(
            db, settings, project_id, user, SnapshotKind.prompts, prompts, "prompts"
        )

    def launch(kind: str, base: int, snapshot: int, hp: dict, reward: int | None = None) -> int:
        with sessions() as db:
            acting = db.get(User, user.id)
            assert acting is not None
            data = RunCreate(
                kind=kind,
                base_model_id=base,
                snapshot_id=snapshot,
                reward_model_id=reward,
                hyperparameters=hp,
            )
            return runs.create_run(db, settings, project_id, data, acting=acting).id

    worker = start_worker(settings, "loop@%h")
    try:

        def run_to_end(run_id: int) -> Run:
            wait_for(
                lambda: (
                    finished(sessions, run_id).status in (RunStatus.succeeded, RunStatus.failed)
                ),
                900,
                f"run {run_id}",
                worker,
            )
            run = finished(sessions, run_id)
            assert run.status == RunStatus.succeeded, (run.error, run.traceback)
            return run

        sft = run_to_end(
            launch("sft", base_id, sft_snapshot, {"max_steps": 150, "learning_rate": 1e-3})
        )
        policy = sft.output_model_id
        assert policy is not None
        rm = run_to_end(launch("reward", policy, pair_snapshot, {"max_steps": 60}))
        dpo_run = launch("dpo", policy, pair_snapshot, {"max_steps": 40})
        online = {"batch_size": 16, "max_completion_length": 12}
        rloo_run = launch(
            "rloo", policy, prompt_snapshot, {"max_steps": 30, **online}, rm.output_model_id
        )
        ppo_run = launch(
            "ppo", policy, prompt_snapshot, {"max_steps": 20, **online}, rm.output_model_id
        )
        dpo, rloo, ppo = (run_to_end(run_id) for run_id in (dpo_run, rloo_run, ppo_run))
    finally:
        worker.stop()

    with sessions() as db:
        first_loss = runs.run_metrics(db, sft.id)[0].values["loss"]
    assert sft.metrics["eval"]["eval_loss"] < 0.6 * first_loss
    assert rm.metrics["eval"]["accuracy"] >= 0.9
    assert dpo.metrics["eval"]["reward_accuracy"] >= 0.9
    for online_run in (rloo, ppo):
        evaluation = online_run.metrics["eval"]
        assert evaluation["mean_reward"] > evaluation["start_mean_reward"] + 0.3, evaluation
        assert evaluation["win_rate"] > 0.6, evaluation

    with sessions() as db:
        (root,) = registry.lineage(db, project_id)
    assert root.model.id == base_id
    (sft_node,) = root.children
    assert (sft_node.model.run_id, sft_node.model.role.value) == (sft.id, "policy")
    assert sorted((child.model.run_id, child.model.role.value) for child in sft_node.children) == [
        (rm.id, "reward"),
        (dpo.id, "policy"),
        (rloo.id, "policy"),
        (ppo.id, "policy"),
    ]

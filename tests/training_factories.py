"""Builders for the training side: model folders the registry accepts, snapshot rows with a
folder on disk, runs in a given state."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session

from app.models import Model, ModelRole, Project, Run, RunKind, Snapshot, SnapshotKind, User
from app.settings import Settings


def model_folder(root: Path, name: str = "base") -> Path:
    """A folder that passes the registry's checks (config.json and safetensors weights); its
    weights are not loadable, which is all these service tests need."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(b"\0" * 8)
    return folder


def make_model(
    db: Session,
    settings: Settings,
    name: str = "base",
    role: ModelRole = ModelRole.policy,
    *,
    base: Model | None = None,
    project: Project | None = None,
) -> Model:
    folder = model_folder(settings.data_dir / "models", name)
    model = Model(
        name=name,
        role=role,
        path=str(folder.relative_to(settings.data_dir)),
        base_model_id=base.id if base else None,
        project_id=project.id if project else None,
    )
    db.add(model)
    db.flush()
    return model


def make_snapshot(
    db: Session,
    settings: Settings,
    project: Project,
    kind: SnapshotKind = SnapshotKind.sft,
    *,
    train: int = 8,
    test: int = 2,
) -> Snapshot:
    snapshot = Snapshot(
        project_id=project.id,
        name=f"{kind.value} rows",
        kind=kind,
        filters={},
        content_hash="0" * 64,
        row_counts={"train": train, "test": test},
        path="",
    )
    db.add(snapshot)
    db.flush()
    snapshot.path = f"snapshots/{snapshot.id}-{kind.value}"
    (settings.data_dir / snapshot.path).mkdir(parents=True)
    db.flush()
    return snapshot


def make_run(
    db: Session,
    project: Project,
    base: Model,
    snapshot: Snapshot,
    kind: RunKind = RunKind.sft,
    *,
    creator: User | None = None,
    max_attempts: int = 3,
) -> Run:
    run = Run(
        project_id=project.id,
        kind=kind,
        base_model_id=base.id,
        snapshot_id=snapshot.id,
        hyperparameters={},
        max_attempts=max_attempts,
        created_by_id=creator.id if creator else None,
    )
    db.add(run)
    db.commit()
    return run


def queued_messages(settings: Settings) -> int:
    """Messages waiting in the embedded broker's folder."""
    folder = settings.broker_dir / "queue"
    return len(list(folder.iterdir())) if folder.is_dir() else 0

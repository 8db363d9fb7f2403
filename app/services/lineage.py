"""Where a response came from: for a model's response, the run that sampled it, the model that
wrote it, and walking back, the run that trained that model, the snapshot it trained on (the
labels, labelers and guideline versions in its files) and the models it started from, down to
a base model registered by hand. A person's or an import's response has a short lineage.

The snapshot's contents are read from its Parquet files (the database rows they came from may
since have been superseded or deleted; the files are what the model saw). Only the id columns
are read, never the text.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import GuidelineVersion, Model, Prompt, Response, Run, Snapshot, User
from app.schemas.audit import (
    GenerationRun,
    GuidelineVersionRows,
    LabelerRows,
    ModelLineage,
    ResponseLineage,
    RunLineage,
    SnapshotContents,
    SnapshotLineage,
)
from app.services.prompts import storable_id
from app.services.snapshots.writers import SPLITS
from app.settings import Settings

ID_COLUMNS = ("labeler_id", "guideline_version_id", "demonstration_id", "comparison_id")
# A run's metrics keep the latest training figures and the final evaluation under these keys.
METRIC_KEYS = ("train", "eval")


def get_response(db: Session, response_id: int) -> Response:
    response = db.get(Response, response_id) if storable_id(response_id) else None
    if response is None:
        raise NotFound(f"no response with id {response_id}")
    return response


def response_lineage(db: Session, settings: Settings, response_id: int) -> ResponseLineage:
    response = get_response(db, response_id)
    prompt = db.get(Prompt, response.prompt_id)
    assert prompt is not None  # a foreign key
    author = db.get(User, response.author_id) if response.author_id is not None else None
    run = db.get(Run, response.run_id) if response.run_id is not None else None
    model = db.get(Model, response.model_id) if response.model_id is not None else None
    return ResponseLineage(
        response_id=response.id,
        prompt_id=prompt.id,
        project_id=prompt.project_id,
        source=response.source,
        content=response.content,
        source_name=response.source_name,
        author_id=response.author_id,
        author_username=author.username if author else None,
        sampling=response.sampling,
        generation_run=None
        if run is None
        else GenerationRun(
            id=run.id, kind=run.kind, status=run.status, hyperparameters=run.hyperparameters
        ),
        model=None if model is None else _model(db, settings, model, seen=set()),
    )


def _model(db: Session, settings: Settings, model: Model, seen: set[int]) -> ModelLineage:
    found = ModelLineage(
        id=model.id,
        name=model.name,
        role=model.role,
        path=model.path,
        hub_name=model.hub_name,
        run=None,
    )
    if model.id in seen:
        # The registry is a tree, so this only guards against a hand-edited database.
        return found.model_copy(
            update={"note": "appears again in its own lineage (a loop in the registry)"}
        )
    seen = seen | {model.id}
    run = db.scalar(select(Run).where(Run.output_model_id == model.id))
    if run is None:
        return found
    return found.model_copy(update={"run": _run(db, settings, run, seen)})


def _run(db: Session, settings: Settings, run: Run, seen: set[int]) -> RunLineage:
    def model(model_id: int | None) -> ModelLineage | None:
        found = db.get(Model, model_id) if model_id is not None else None
        return None if found is None else _model(db, settings, found, seen)

    snapshot = db.get(Snapshot, run.snapshot_id) if run.snapshot_id is not None else None
    return RunLineage(
        id=run.id,
        kind=run.kind,
        status=run.status,
        hyperparameters=run.hyperparameters,
        metrics={key: run.metrics[key] for key in METRIC_KEYS if key in run.metrics},
        snapshot=None if snapshot is None else snapshot_lineage(db, settings, snapshot),
        base_model=model(run.base_model_id),
        base_model_ref=run.base_model_ref,
        # A score run's reward model is its base model: shown once.
        reward_model=model(run.reward_model_id)
        if run.reward_model_id != run.base_model_id
        else None,
    )


def snapshot_lineage(db: Session, settings: Settings, snapshot: Snapshot) -> SnapshotLineage:
    folder = settings.data_dir / snapshot.path
    files = [folder / f"{split}.parquet" for split in SPLITS]
    missing = None
    contents = None
    if not folder.is_dir():
        missing = f"the snapshot's folder {snapshot.path} is missing from the data folder"
    elif not all(path.is_file() for path in files):
        missing = f"the snapshot's folder {snapshot.path} lacks its Parquet files"
    else:
        contents = snapshot_contents(db, folder)
    return SnapshotLineage(
        id=snapshot.id,
        name=snapshot.name,
        kind=snapshot.kind,
        content_hash=snapshot.content_hash,
        row_counts=snapshot.row_counts,
        filters=snapshot.filters,
        path=snapshot.path,
        contents=contents,
        missing=missing,
    )


def _split_columns(path: Path) -> tuple[int, dict[str, list[Any]], bool]:
    """(rows, the id columns the file has, whether its rows are preference pairs)."""
    names = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=[name for name in ID_COLUMNS if name in names])
    return table.num_rows, table.to_pydict(), "chosen" in names


def snapshot_contents(db: Session, folder: Path) -> SnapshotContents:
    """Counts over the train and test files of a snapshot folder."""
    rows: dict[str, int] = {}
    demonstrations: set[int] = set()
    comparisons: set[int] = set()
    pairs = 0
    labelers: Counter[int] = Counter()
    versions: Counter[int | None] = Counter()
    without_labeler = 0
    for split in SPLITS:
        count, columns, is_pairs = _split_columns(folder / f"{split}.parquet")
        rows[split] = count
        pairs += count if is_pairs else 0
        demonstrations.update(i for i in columns.get("demonstration_id", []) if i is not None)
        comparisons.update(i for i in columns.get("comparison_id", []) if i is not None)
        for labeler in columns.get("labeler_id", [None] * count):
            if labeler is None:
                without_labeler += 1
            else:
                labelers[labeler] += 1
        if "guideline_version_id" in columns:
            versions.update(columns["guideline_version_id"])
    names = dict(
        db.execute(select(User.id, User.username).where(User.id.in_(sorted(labelers)))).all()
    )
    numbers = dict(
        db.execute(
            select(GuidelineVersion.id, GuidelineVersion.version).where(
                GuidelineVersion.id.in_(sorted(v for v in versions if v is not None))
            )
        ).all()
    )
    return SnapshotContents(
        rows=rows,
        demonstrations=len(demonstrations),
        comparisons=len(comparisons),
        pairs=pairs,
        labelers=[
            LabelerRows(labeler_id=i, username=names.get(i, f"user {i}"), rows=n)
            for i, n in sorted(labelers.items())
        ],
        rows_without_labeler=without_labeler,
        guideline_versions=[
            GuidelineVersionRows(guideline_version_id=i, version=numbers.get(i), rows=n)
            for i, n in sorted(versions.items(), key=lambda item: (item[0] is None, item[0] or 0))
        ],
    )

"""Making snapshots of the test world and reading their rows back."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from app.models import Response, Snapshot
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.services.snapshots import create_snapshot
from app.settings import Settings
from tests.services.snapshots.conftest import World


def snapshot(
    db: Session,
    settings: Settings,
    world: World,
    kind: str,
    source: str | None = None,
    name: str = "Test snapshot",
    margin: str | None = None,
    **filters: Any,
) -> Snapshot:
    filters.setdefault("test_fraction", 0.0)
    data = SnapshotCreate(
        name=name,
        kind=kind,
        source=source,
        margin=margin,  # type: ignore[arg-type]
        filters=SnapshotFilters(**filters),
    )
    return create_snapshot(db, settings, world.project.id, data, world.researcher)


def lines(settings: Settings, relative: str, split: str = "train") -> list[dict[str, Any]]:
    text = (settings.data_dir / relative / f"{split}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def said(response: Response) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": response.content}]

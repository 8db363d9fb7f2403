"""A finished critique run's revisions, stored in the caller's transaction.

Each revision that says something new becomes a model response to the original's prompt (its
parent the original, its run and model the critique run's), a two-item comparison of source
"ai" ranking it above the original (no task, so it never counts towards a task's overlap or
the labelers' agreement, like a labeler's rewrite: app/services/rewrites.py) with its pair, and
a ResponseRevision row naming the principle version and keeping the critique. An empty revision,
or one that only repeats the original, is counted and skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Pair,
    Response,
    ResponseRevision,
    ResponseSource,
    Run,
)
from app.models.critique import REVISION_SOURCE_NAME
from app.schemas.critique import CritiqueHyperparameters
from app.services.critique.launching import INPUT_FILE
from app.services.queues import chunks

OUTPUT_FILE = "revisions.jsonl"
SOURCE_NAME = REVISION_SOURCE_NAME


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def record_output(db: Session, run: Run, output: Path) -> dict[str, float]:
    """Stores the run's revisions; returns the counts recorded on the run."""
    params = CritiqueHyperparameters(**run.hyperparameters)
    rows = list(_lines(output / OUTPUT_FILE))
    originals: dict[int, tuple[int, str]] = {}
    for chunk in chunks(sorted({int(row["response_id"]) for row in rows})):
        found = db.execute(
            select(Response.id, Response.prompt_id, Response.content).where(Response.id.in_(chunk))
        )
        originals.update({rid: (prompt_id, content) for rid, prompt_id, content in found})
    # Only what the launch asked (input/critiques.jsonl beside the output folder): a row
    # naming another response or principle is the worker's mistake, and nothing is stored.
    asked = {
        (int(row["response_id"]), int(row["principle_id"]))
        for row in _lines(output.parent / "input" / INPUT_FILE)
    }
    sampling = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_new_tokens": params.max_new_tokens,
        "seed": params.seed,
    }
    made = empty = unchanged = 0
    for row in rows:
        original_id, principle_id = int(row["response_id"]), int(row["principle_id"])
        if (original_id, principle_id) not in asked or original_id not in originals:
            raise ValueError(
                f"the worker's revision names response {original_id} and principle "
                f"{principle_id}, which this run did not critique"
            )
        prompt_id, original = originals[original_id]
        revision = str(row["revision"])
        if not revision.strip():
            empty += 1
            continue
        if revision.strip() == original.strip():
            unchanged += 1
            continue
        _store(db, run, prompt_id, original_id, principle_id, revision, str(row["critique"]),
               sampling)  # fmt: skip
        made += 1
    db.flush()
    return {
        "critiques": len(rows),
        "revisions": made,
        "revisions_empty": empty,
        "revisions_unchanged": unchanged,
    }


def _store(
    db: Session,
    run: Run,
    prompt_id: int,
    original_id: int,
    principle_id: int,
    revision: str,
    critique: str,
    sampling: dict[str, Any],
) -> None:
    response = Response(
        prompt_id=prompt_id,
        content=revision,
        source=ResponseSource.model,
        model_id=run.base_model_id,
        run_id=run.id,
        source_name=SOURCE_NAME,
        sampling={**sampling, "principle_id": principle_id},
        parent_id=original_id,
    )
    judged = Comparison(
        task_id=None,
        assignment_id=None,
        prompt_id=prompt_id,
        labeler_id=None,
        source=LabelSource.ai,
        source_name=SOURCE_NAME,
        model_id=run.base_model_id,
        run_id=run.id,
    )
    db.add_all([response, judged])
    db.flush()
    db.add_all(
        [
            ComparisonItem(comparison_id=judged.id, response_id=response.id, rank=1, flags=[]),
            ComparisonItem(comparison_id=judged.id, response_id=original_id, rank=2, flags=[]),
            Pair(
                comparison_id=judged.id,
                prompt_id=prompt_id,
                winner_response_id=response.id,
                loser_response_id=original_id,
                margin=None,
            ),
            ResponseRevision(
                response_id=response.id,
                original_response_id=original_id,
                principle_id=principle_id,
                run_id=run.id,
                comparison_id=judged.id,
                critique=critique,
            ),
        ]
    )

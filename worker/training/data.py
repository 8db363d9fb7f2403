"""A snapshot's split as a `datasets.Dataset` in the shape TRL's trainers read.

A snapshot folder (app.services.snapshots) holds each split three ways; the `datasets/` folder
is read when present (memory-mapped Arrow, no parsing), the JSONL otherwise. Only TRL's columns
are kept: `messages` (SFT), `prompt`/`chosen`/`rejected` (preference, plus `margin` when the
reward model trains with margins), `prompt` (prompts). The provenance columns (labeler, task,
guideline version...) are dropped because TRL's tokenization maps carry every column through
each pass, some of them hold nulls its collators cannot batch, and RewardTrainer treats a
`margin` column, when there is one, as part of its loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from worker.training.errors import JobInputError

Kind = Literal["sft", "preference", "prompts"]
Split = Literal["train", "test"]
COLUMNS: dict[str, tuple[str, ...]] = {
    "sft": ("messages",),
    "preference": ("prompt", "chosen", "rejected"),
    "prompts": ("prompt",),
}


def load_split(
    snapshot_path: Path | None,
    split: Split,
    kind: Kind,
    *,
    with_margin: bool = False,
    required: bool = True,
) -> Any:
    """The split's rows with TRL's columns. An empty or missing split is a JobInputError when
    `required` (the train split), else an empty Dataset (a test split may be empty)."""
    from datasets import Dataset, load_from_disk

    if snapshot_path is None:
        raise JobInputError(f"this job needs a {kind} snapshot")
    if not snapshot_path.is_dir():
        raise JobInputError(f"snapshot folder {snapshot_path} does not exist")
    arrow = snapshot_path / "datasets" / split
    jsonl = snapshot_path / f"{split}.jsonl"
    if arrow.is_dir():
        dataset = load_from_disk(str(arrow))
    elif jsonl.is_file() and jsonl.stat().st_size:
        dataset = Dataset.from_json(str(jsonl))
    elif jsonl.is_file():
        dataset = Dataset.from_dict({})
    else:
        raise JobInputError(f"snapshot {snapshot_path} has no {split} split")
    if len(dataset) == 0:
        if required:
            raise JobInputError(f"the {split} split of snapshot {snapshot_path} has no rows")
        return dataset
    wanted = list(COLUMNS[kind]) + (["margin"] if with_margin else [])
    missing = [column for column in wanted if column not in dataset.column_names]
    if missing:
        raise JobInputError(
            f"snapshot {snapshot_path} is not a {kind} snapshot: it has no "
            f"{', '.join(missing)} column (it has {', '.join(dataset.column_names)})"
        )
    dataset = dataset.select_columns(wanted)
    if with_margin:
        # Pairs from comparisons without scores have no margin: theirs is 0, the plain
        # Bradley-Terry loss.
        dataset = dataset.map(lambda row: {"margin": float(row["margin"] or 0.0)})
    return dataset

"""Issue 5: a snapshot the snapshot service makes from labels in the database loads straight
into TRL 1.16's SFTTrainer, RewardTrainer and DPOTrainer, with no conversion: the `datasets`
folder's train split, provenance columns and all, is handed to each trainer as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    Demonstration,
    LabelSource,
    Pair,
    Response,
    ResponseSource,
    Role,
    User,
)
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.services.prompts import prompt_content_hash
from app.services.snapshots import create_snapshot
from app.settings import Settings
from tests.conftest import make_user
from tests.factories import make_project, make_prompt, make_queue, make_task, publish_guideline
from worker.training.synthetic import preference_rows

LABELS = 12


def label(db: Session) -> tuple[int, User]:
    """A project where a labeler demonstrated an answer to each prompt and compared it with a
    worse one (ranked 1 and 2, scored 6 and 3, so the pair's margin is 3)."""
    researcher = make_user(db, "rita", Role.researcher)
    labeler = make_user(db, "lena")
    project = make_project(db)
    version = publish_guideline(db, project, 1)
    queue = make_queue(db, project)
    for index, row in enumerate(preference_rows(LABELS, seed=3)):
        prompt = make_prompt(db, project, f"{row['prompt'][0]['content']} ({index})")
        # The split hashes the prompt's content; the factory's hash holds the project id, which
        # differs from run to run on PostgreSQL, and 1 run in 30 would put every prompt in train.
        prompt.content_hash = prompt_content_hash(prompt.messages)
        chosen, rejected = (
            Response(
                prompt_id=prompt.id,
                content=turns[0]["content"],
                source=ResponseSource.imported,
                source_name="test",
            )
            for turns in (row["chosen"], row["rejected"])
        )
        db.add_all([chosen, rejected])
        db.flush()
        task = make_task(db, queue, prompt, [chosen, rejected])
        comparison = Comparison(
            task_id=task.id,
            prompt_id=prompt.id,
            labeler_id=labeler.id,
            source=LabelSource.labeler,
            guideline_version_id=version.id,
        )
        db.add(comparison)
        db.flush()
        db.add_all(
            [
                ComparisonItem(comparison_id=comparison.id, response_id=chosen.id, rank=1, score=6),
                ComparisonItem(
                    comparison_id=comparison.id, response_id=rejected.id, rank=2, score=3
                ),
                Pair(
                    comparison_id=comparison.id,
                    prompt_id=prompt.id,
                    winner_response_id=chosen.id,
                    loser_response_id=rejected.id,
                    margin=3.0,
                ),
                Demonstration(
                    prompt_id=prompt.id,
                    labeler_id=labeler.id,
                    source=LabelSource.labeler,
                    messages=row["chosen"],
                    guideline_version_id=version.id,
                ),
            ]
        )
    db.commit()
    return project.id, researcher


def train_split(db: Session, settings: Settings, kind: str, **asked: Any) -> Any:
    from datasets import load_from_disk

    project_id, researcher = label(db)
    data = SnapshotCreate(
        name=kind, kind=kind, filters=SnapshotFilters(test_fraction=0.25), **asked
    )
    snapshot = create_snapshot(db, settings, project_id, data, researcher)
    return load_from_disk(str(settings.data_dir / snapshot.path / "datasets"))["train"]


def arguments(output: Path) -> dict[str, Any]:
    return {
        "output_dir": str(output),
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": False,
        "gradient_checkpointing": False,
        "disable_tqdm": True,
    }


def trains(trainer: Any) -> None:
    """Trains 3 steps; the loss was logged at each and some parameters changed."""
    before = {name: value.clone() for name, value in trainer.model.named_parameters()}
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in logged] == [1, 2, 3]
    assert all(entry["loss"] > 0 for entry in logged)
    changed = [
        name
        for name, value in trainer.model.named_parameters()
        if not torch.equal(value, before[name])
    ]
    assert changed


def test_sft_snapshot_trains_sfttrainer(
    db: Session, settings: Settings, tiny: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    train = train_split(db, settings, "sft")
    assert len(train) == 10  # of 12 prompts, the hash puts 2 in the test split
    assert train.column_names[0] == "messages"
    assert [turn["role"] for turn in train[0]["messages"]] == ["user", "assistant"]
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny, use_safetensors=True),
        args=SFTConfig(**arguments(tmp_path)),
        train_dataset=train,
        processing_class=AutoTokenizer.from_pretrained(tiny),
    )
    trains(trainer)


def test_preference_snapshot_trains_rewardtrainer(
    db: Session, settings: Settings, tiny: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    train = train_split(db, settings, "preference", margin="score_gap")
    assert train.column_names[:4] == ["prompt", "chosen", "rejected", "margin"]
    assert set(train["margin"]) == {3.0}
    trainer = RewardTrainer(
        model=AutoModelForSequenceClassification.from_pretrained(
            tiny, num_labels=1, use_safetensors=True
        ),
        args=RewardConfig(**arguments(tmp_path)),
        train_dataset=train,
        processing_class=AutoTokenizer.from_pretrained(tiny),
    )
    trains(trainer)
    # The margin asked for is TRL's: the first loss is about softplus(3), not log 2.
    assert trainer.state.log_history[0]["loss"] == pytest.approx(3.05, abs=0.1)


def test_preference_snapshot_trains_dpotrainer(
    db: Session, settings: Settings, tiny: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    train = train_split(db, settings, "preference")
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny, use_safetensors=True),
        args=DPOConfig(**arguments(tmp_path)),
        train_dataset=train,
        processing_class=AutoTokenizer.from_pretrained(tiny),
    )
    trains(trainer)
    # The policy starts as its own reference (margin 0) and moves away from it.
    assert trainer.state.log_history[0]["rewards/margins"] == 0.0
    assert trainer.state.log_history[2]["rewards/margins"] != 0.0

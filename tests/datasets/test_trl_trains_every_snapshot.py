"""Issue 16: every snapshot, from every import format and from human labels, trains 2 steps in
plain TRL 1.16 `SFTTrainer`, `RewardTrainer` and `DPOTrainer` exactly as loaded: the split is
read with `datasets.load_dataset("json", ...)` (what TRL's own examples do with a JSONL file)
and handed to the trainer with no code in between. Before, HH-RLHF and Open-Assistant
preference snapshots had a `margin` column of nulls (RewardTrainer's collator: "TypeError:
must be real number, not NoneType"), and UltraFeedback's rating gaps went into the loss
uninvited (a first loss near 5 instead of log 2)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Role, User
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.services.imports import import_stream
from app.services.snapshots import create_snapshot
from app.settings import Settings
from tests.conftest import make_user
from tests.datasets.test_trl_loads_snapshot import label
from tests.factories import make_project

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("training-e2e")]

# Four rows of each format: every prompt is in the train split (test_fraction 0), two per batch.
TOPICS = ("tides", "rain", "wind", "snow")


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _oasst() -> bytes:
    rows: list[dict[str, Any]] = []
    for topic in TOPICS:
        rows.append(
            {"message_id": f"p-{topic}", "parent_id": None, "role": "prompter",
             "text": f"What causes {topic}?", "message_tree_id": topic}
        )  # fmt: skip
        for rank, answer in enumerate((f"Physics makes {topic}.", "No idea.")):
            rows.append(
                {"message_id": f"a{rank}-{topic}", "parent_id": f"p-{topic}",
                 "role": "assistant", "text": answer, "rank": rank, "message_tree_id": topic}
            )  # fmt: skip
    return _jsonl(rows)


FILES: dict[str, tuple[str, bytes]] = {
    "hh-rlhf": (
        "hh.jsonl",
        _jsonl(
            [
                {
                    "chosen": f"\n\nHuman: What causes {t}?\n\nAssistant: Physics makes {t}.",
                    "rejected": f"\n\nHuman: What causes {t}?\n\nAssistant: No idea.",
                }
                for t in TOPICS
            ]
        ),
    ),
    "oasst": ("oasst.jsonl", _oasst()),
    "preference": (
        "prefs.jsonl",
        _jsonl(
            [
                {"prompt": f"What causes {t}?", "chosen": f"Physics makes {t}.", "rejected": "No."}
                for t in TOPICS
            ]
        ),
    ),
    "ultrafeedback": (
        "uf.jsonl",
        _jsonl(
            [
                {
                    "instruction": f"What causes {t}?",
                    "completions": [
                        {"model": "a", "response": f"Physics makes {t}.", "overall_score": 8},
                        {"model": "b", "response": "No idea.", "overall_score": 3},
                    ],
                }
                for t in TOPICS
            ]
        ),
    ),
    "sft": (
        "sft.jsonl",
        _jsonl(
            [
                {
                    "messages": [
                        {"role": "user", "content": f"What causes {t}?"},
                        {"role": "assistant", "content": f"Physics makes {t}."},
                    ]
                }
                for t in TOPICS
            ]
        ),
    ),
    "dialogue": (
        "chats.txt",
        "".join(f"[A]: What causes {t}?\n[B]: Physics makes {t}.\n\n" for t in TOPICS).encode(),
    ),
}

PAIRS = {"kind": "preference", "source": "pairs"}
CONSENSUS = {"kind": "preference", "source": "consensus"}
SFT = {"kind": "sft"}
# (where the labels come from, the snapshot asked for, the trainer, the first loss when known:
# log 2 for a reward model on margin-free pairs, softplus(margin) with a margin of m.)
CASES = [
    ("hh-rlhf", PAIRS, "reward", 0.693),
    ("hh-rlhf", PAIRS, "dpo", None),
    ("hh-rlhf", {**PAIRS, "margin": "score_gap"}, "reward", 0.693),  # unscored: margin 0.0
    ("oasst", PAIRS, "reward", 0.693),
    ("oasst", PAIRS, "dpo", None),
    ("oasst", SFT, "sft", None),
    ("preference", PAIRS, "reward", 0.693),
    ("preference", PAIRS, "dpo", None),
    ("ultrafeedback", PAIRS, "reward", 0.693),
    ("ultrafeedback", PAIRS, "dpo", None),
    ("ultrafeedback", {**PAIRS, "margin": "score_gap"}, "reward", 5.007),  # softplus(8 - 3)
    ("sft", SFT, "sft", None),
    ("dialogue", SFT, "sft", None),
    ("labels", PAIRS, "reward", 0.693),
    ("labels", PAIRS, "dpo", None),
    ("labels", {**PAIRS, "margin": "score_gap"}, "reward", 3.049),  # softplus(6 - 3)
    ("labels", CONSENSUS, "reward", 0.693),
    ("labels", CONSENSUS, "dpo", None),
    ("labels", SFT, "sft", None),
]
# What TRL reads from each kind of row: never a null there.
READ = {"sft": ["messages"], "reward": ["prompt", "chosen", "rejected"]}
READ["dpo"] = READ["reward"]


def _labels(db: Session, source: str) -> tuple[int, User]:
    if source == "labels":
        return label(db)
    project = make_project(db)
    name, data = FILES[source]
    fmt = None if source == "dialogue" else source
    import_stream(db, project.id, io.BytesIO(data), name, format=fmt, on_error="stop", acting=None)
    return project.id, make_user(db, "rita", Role.researcher)


def _snapshot_folder(db: Session, settings: Settings, source: str, asked: dict[str, str]) -> Path:
    project_id, researcher = _labels(db, source)
    data = SnapshotCreate(name="s", filters=SnapshotFilters(test_fraction=0), **asked)
    snapshot = create_snapshot(db, settings, project_id, data, researcher)
    return settings.data_dir / snapshot.path


def _arguments(output: Path) -> dict[str, Any]:
    return {
        "output_dir": str(output),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "max_length": 64,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "disable_tqdm": True,
    }


def _trainer(kind: str, tiny: Path, output: Path, train: Any) -> Any:
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    if kind == "reward":
        return RewardTrainer(
            model=AutoModelForSequenceClassification.from_pretrained(
                tiny, num_labels=1, use_safetensors=True
            ),
            args=RewardConfig(**_arguments(output)),
            train_dataset=train,
            processing_class=tokenizer,
        )
    trainer, config = (SFTTrainer, SFTConfig) if kind == "sft" else (DPOTrainer, DPOConfig)
    return trainer(
        model=AutoModelForCausalLM.from_pretrained(tiny, use_safetensors=True),
        args=config(**_arguments(output)),
        train_dataset=train,
        processing_class=tokenizer,
    )


# The rows are the same on both databases (tests/services/snapshots checks that); training
# them twice would only double the cost.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("source", "asked", "kind", "first_loss"),
    CASES,
    ids=[
        f"{s}-{a.get('source', 'sft')}{'+margin' if 'margin' in a else ''}-{k}"
        for s, a, k, _ in CASES
    ],
)
def test_a_snapshot_trains_in_plain_trl_as_loaded(
    db: Session,
    settings: Settings,
    tiny: Path,
    tmp_path: Path,
    source: str,
    asked: dict[str, str],
    kind: str,
    first_loss: float | None,
) -> None:
    from datasets import load_dataset

    folder = _snapshot_folder(db, settings, source, asked)
    train = load_dataset(
        "json", data_files=str(folder / "train.jsonl"), split="train", cache_dir=str(tmp_path)
    )
    trainer = _trainer(kind, tiny, tmp_path / "out", train)
    trainer.train()

    assert len(train) >= 2
    assert all(value is not None for column in READ[kind] for value in train[column])
    # A margin column only when asked for, and then never a null in it.
    assert ("margin" in train.column_names) == ("margin" in asked)
    if "margin" in asked:
        assert None not in train["margin"]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2
    if first_loss is not None:
        assert losses[0] == pytest.approx(first_loss, abs=0.1)


def test_a_consensus_of_imported_judgements_is_refused_with_the_reason(
    db: Session, settings: Settings
) -> None:
    project_id, researcher = _labels(db, "hh-rlhf")
    data = SnapshotCreate(name="c", filters=SnapshotFilters(), **CONSENSUS)

    with pytest.raises(InvalidInput) as refused:
        create_snapshot(db, settings, project_id, data, researcher)

    assert str(refused.value) == (
        f"the snapshot would have no rows: project {project_id} has no labeler comparisons on "
        "tasks. Consensus is taken over the labelers of each task; the project's 4 imported "
        "comparisons belong to no task and are one judge each, so they are in source "
        '"pairs" snapshots (and raw and KTO exports), not here; nothing was written'
    )
    assert not list((settings.data_dir / "snapshots").iterdir())

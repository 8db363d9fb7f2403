"""worker/training: the tiny model, safe loading, device defaults, complete checkpoints and
snapshot reading, each on its own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from worker.training import defaults
from worker.training.callbacks import (
    MARKER,
    ProgressCallback,
    latest_complete_checkpoint,
    mark_complete,
)
from worker.training.data import load_split
from worker.training.defaults import pick_settings
from worker.training.errors import JobInputError
from worker.training.loading import check_model_folder, load_reward_model, load_tokenizer
from worker.training.synthetic import (
    POSITIVE,
    preference_rows,
    sft_rows,
    write_snapshot_folder,
)
from worker.training.tiny import build_tiny_model


def digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_tiny_model_is_deterministic_and_chats(tmp_path: Path) -> None:
    first = build_tiny_model(tmp_path / "a")
    second = build_tiny_model(tmp_path / "b")
    other_seed = build_tiny_model(tmp_path / "c", seed=1)
    assert digest(first) == digest(second) != digest(other_seed)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    config = json.loads((first / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (
        64,
        2,
        512,
    )

    tokenizer = load_tokenizer(first)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|end|>", "<|pad|>")
    conversation = [
        {"role": "user", "content": "Tell me about the sea."},
        {"role": "assistant", "content": "The sea is calm and warm."},
    ]
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    assert (
        text == "<|user|>Tell me about the sea.<|end|><|assistant|>The sea is calm and warm.<|end|>"
    )
    full = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
    prompt = tokenizer.apply_chat_template(
        conversation[:1], tokenize=True, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    # The prompt with its generation prompt is a token prefix of the whole: DPO relies on it.
    assert full[: len(prompt)] == prompt
    assert tokenizer.decode(full) == text
    reward_model = load_reward_model(first)
    assert reward_model.config.num_labels == 1
    assert reward_model.config.pad_token_id == tokenizer.pad_token_id


def test_model_folders_without_safetensors_are_refused(tmp_path: Path) -> None:
    with pytest.raises(JobInputError, match="does not exist"):
        check_model_folder(tmp_path / "missing")
    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(JobInputError, match=r"has no config\.json"):
        check_model_folder(folder)
    (folder / "config.json").write_text("{}")
    with pytest.raises(JobInputError, match="has no safetensors weights"):
        check_model_folder(folder)
    (folder / "model.pt").write_bytes(b"pickle")
    with pytest.raises(JobInputError, match=r"only pickle weights \(model.pt\)"):
        check_model_folder(folder)


def test_only_marked_checkpoints_count(tmp_path: Path) -> None:
    assert latest_complete_checkpoint(tmp_path / "none") is None
    for step in (5, 10, 20):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "README.md").write_text("")
    assert latest_complete_checkpoint(tmp_path) is None
    mark_complete(tmp_path / "checkpoint-5", 5)
    mark_complete(tmp_path / "checkpoint-10", 10)
    # checkpoint-20 was cut off before its marker: the last complete one is 10 (not "5" < "10"
    # as text would have it either).
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert json.loads((tmp_path / "checkpoint-10" / MARKER).read_text())["step"] == 10
    assert not list(tmp_path.glob("checkpoint-10/.*"))


def test_a_cancel_stops_before_the_last_step_and_not_at_it() -> None:
    """A cancel at the last step lets the run finish: its checkpoint at max_steps would be
    resumed by the trainer mid-epoch and trained one step past max_steps (seen in a 2-process
    reward run cancelled as it ended: steps 1 to 31 of 30)."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    polls: list[int] = []

    def should_stop() -> bool:
        polls.append(1)
        return True

    args = TrainingArguments(output_dir="unused", report_to=[])
    callback = ProgressCallback(lambda *_: None, should_stop, "cpu")
    last = callback.on_step_end(args, TrainerState(global_step=12, max_steps=12), TrainerControl())
    assert (last.should_training_stop, last.should_save, callback.stopped, polls) == (
        False,
        False,
        False,
        [],
    )
    early = callback.on_step_end(args, TrainerState(global_step=5, max_steps=12), TrainerControl())
    assert (early.should_training_stop, early.should_save, callback.stopped, polls) == (
        True,
        True,
        True,
        [1],
    )


def test_defaults_follow_device_and_size(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = pick_settings("dpo", "cpu", 200_000, {}, max_positions=512)
    assert {key: tiny[key] for key in ("bf16", "gradient_checkpointing", "learning_rate")} == {
        "bf16": False,
        "gradient_checkpointing": False,
        "learning_rate": 5e-4,
    }
    assert tiny["max_length"] == 512
    assert tiny["logging_steps"] == 1
    assert (
        tiny["reasons"]["learning_rate"]
        == "0.2M parameters: a small from-scratch model needs large steps"
    )

    big_cpu = pick_settings("dpo", "cpu", 1_500_000_000, {})
    assert (big_cpu["bf16"], big_cpu["gradient_checkpointing"]) == (False, False)
    assert big_cpu["learning_rate"] == 1e-6
    assert big_cpu["max_length"] == 1024

    monkeypatch.setattr(defaults, "cuda_supports_bf16", lambda: True)
    big_gpu = pick_settings("sft", "cuda", 1_500_000_000, {"lora": {"r": 8}})
    assert (big_gpu["bf16"], big_gpu["gradient_checkpointing"]) == (True, True)
    assert big_gpu["learning_rate"] == 2e-4
    assert big_gpu["reasons"]["learning_rate"].endswith(
        "times 10 for LoRA adapters (capped at 2e-4)"
    )
    mid_gpu = pick_settings("reward", "cuda", 300_000_000, {"bf16": False, "learning_rate": 3e-5})
    assert (mid_gpu["bf16"], mid_gpu["gradient_checkpointing"]) == (False, False)
    assert mid_gpu["learning_rate"] == 3e-5
    assert mid_gpu["reasons"]["bf16"] == "given in the run's hyperparameters"
    tiny_gpu = pick_settings("sft", "cuda", 200_000, {})
    assert tiny_gpu["bf16"] is False

    monkeypatch.setattr(defaults, "cuda_supports_bf16", lambda: False)
    old_gpu = pick_settings("sft", "cuda", 300_000_000, {})
    assert old_gpu["bf16"] is False
    assert old_gpu["reasons"]["bf16"] == "this CUDA device does not support bf16"


def test_load_split_keeps_trl_columns(tmp_path: Path) -> None:
    rows = preference_rows(40)
    rows[0]["margin"] = None
    snapshot = write_snapshot_folder(tmp_path / "pairs", "preference", rows, test_fraction=0.5)
    train = load_split(snapshot, "train", "preference")
    test = load_split(snapshot, "test", "preference", with_margin=True)
    assert train.column_names == ["prompt", "chosen", "rejected"]
    assert test.column_names == ["prompt", "chosen", "rejected", "margin"]
    assert len(train) + len(test) == 40
    # A pair without a score difference gets margin 0 (plain Bradley-Terry).
    with_margins = load_split(snapshot, "train", "preference", with_margin=True)
    margins = [row["margin"] for row in with_margins] + [row["margin"] for row in test]
    assert sorted(margins) == sorted(row["margin"] or 0.0 for row in rows)
    assert margins.count(0.0) == 1
    assert all(any(word in row["chosen"][0]["content"] for word in POSITIVE) for row in train)

    empty = write_snapshot_folder(tmp_path / "empty", "sft", sft_rows(5), test_fraction=0.0)
    assert len(load_split(empty, "test", "sft", required=False)) == 0
    with pytest.raises(JobInputError, match=r"the test split of snapshot .* has no rows"):
        load_split(empty, "test", "sft")
    with pytest.raises(JobInputError, match="does not exist"):
        load_split(tmp_path / "nowhere", "train", "sft")

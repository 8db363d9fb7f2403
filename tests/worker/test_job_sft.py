"""worker/jobs/sft.py on the tiny model, on CPU, from a snapshot folder written by the snapshot
writer: it learns, reports, saves safetensors, stops on cancel with a complete checkpoint and
resumes from it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.schemas.runs import SFTHyperparameters
from tests.worker.job_support import Recorder, make_context
from worker.jobs import sft
from worker.training.callbacks import MARKER, latest_complete_checkpoint
from worker.training.data import load_split
from worker.training.errors import JobInputError
from worker.training.loading import load_policy, load_tokenizer
from worker.training.synthetic import preference_rows, sft_rows, write_snapshot_folder

STEPS = 150


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_snapshot_folder(tmp_path_factory.mktemp("sft") / "snapshot", "sft", sft_rows(400))


def test_sft_learns_reports_and_saves(tmp_path: Path, tiny: Path, snapshot: Path) -> None:
    recorder = Recorder()
    hyperparameters = {"max_steps": STEPS, "save_steps": 75}
    result = sft.run(make_context(tmp_path, "sft", hyperparameters, tiny, snapshot, recorder))

    assert not result.stopped
    assert result.role == "policy"
    assert result.model_dir == tmp_path / "model"
    losses = recorder.series("loss")
    assert [step for step, _ in losses] == list(range(1, STEPS + 1))
    # A 512-token vocabulary starts near ln(512) = 6.24 and ends well below it.
    assert losses[0][1] > 6.0
    assert result.metrics["eval_loss"] < 0.6 * losses[0][1]
    assert result.metrics["perplexity"] == pytest.approx(math.exp(result.metrics["eval_loss"]))
    assert set(result.metrics) == {"train_loss", "eval_loss", "perplexity"}
    # Progress runs to 1 with the step; every training log carries rate and throughput.
    assert recorder.reports[-1][2] == 1.0
    assert recorder.reports[0][2] == pytest.approx(1 / STEPS)
    assert all(values["tokens_per_second"] > 0 for _, values, _ in recorder.reports[1:STEPS])
    assert recorder.series("learning_rate")[0] == (1, 5e-4)
    assert not any("gpu_memory_gb" in values for _, values, _ in recorder.reports)
    # The defaults it picked for a tiny model on a CPU, with reasons.
    assert result.settings["learning_rate"] == 5e-4
    assert result.settings["bf16"] is False
    assert result.settings["gradient_checkpointing"] is False
    assert result.settings["batch_size"] == 8
    assert result.settings["max_length"] == 512
    assert "tiny" not in result.settings["reasons"]["bf16"]
    assert result.settings["reasons"]["learning_rate"].endswith("needs large steps")
    assert result.settings["reasons"]["save_steps"] == "given in the run's hyperparameters"
    # Checkpoints every 75 steps, each with its completion marker; the model in safetensors.
    checkpoints = tmp_path / "checkpoints"
    found = sorted(checkpoints.glob("checkpoint-*"))
    assert [path.name for path in found] == ["checkpoint-150", "checkpoint-75"]
    assert all((path / MARKER).is_file() for path in found)
    assert latest_complete_checkpoint(checkpoints) == checkpoints / "checkpoint-150"
    saved = sorted(path.name for path in result.model_dir.iterdir())
    assert "model.safetensors" in saved and "tokenizer.json" in saved
    assert not [name for name in saved if name.endswith((".bin", ".pt"))]
    assert load_policy(result.model_dir).num_parameters() == load_policy(tiny).num_parameters()


def test_cancel_stops_with_a_complete_checkpoint_and_resume_finishes(
    tmp_path: Path, tiny: Path, snapshot: Path
) -> None:
    hyperparameters = {"max_steps": 20, "save_steps": 100}
    cancelled = Recorder(stop_after=7)
    result = sft.run(make_context(tmp_path, "sft", hyperparameters, tiny, snapshot, cancelled))

    assert result.stopped
    assert result.metrics == {}
    assert cancelled.series("loss")[-1][0] == 7
    assert not (tmp_path / "model").exists()
    checkpoint = latest_complete_checkpoint(tmp_path / "checkpoints")
    assert checkpoint == tmp_path / "checkpoints" / "checkpoint-7"

    resumed = Recorder()
    result = sft.run(
        make_context(
            tmp_path, "sft", hyperparameters, tiny, snapshot, resumed, resume_from=checkpoint
        )
    )
    assert not result.stopped
    assert [step for step, _ in resumed.series("loss")] == list(range(8, 21))
    assert resumed.reports[-1][2] == 1.0
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert (
        latest_complete_checkpoint(tmp_path / "checkpoints") == checkpoint.parent / "checkpoint-20"
    )


def test_merge_adapter_merges_lora_adapters_into_a_full_model(
    tmp_path: Path, tiny: Path, snapshot: Path
) -> None:
    recorder = Recorder()
    lora = {"r": 4, "alpha": 8, "merge_adapter": True}
    hyperparameters = {"max_steps": 10, "lora": lora, "learning_rate": 1e-3}
    result = sft.run(make_context(tmp_path, "sft", hyperparameters, tiny, snapshot, recorder))

    assert result.settings["merge_adapter"] is True
    assert result.settings["reasons"]["merge_adapter"] == "given in the run's hyperparameters"
    saved = {path.name for path in result.model_dir.iterdir()}
    assert "adapter_config.json" not in saved
    assert "model.safetensors" in saved and "config.json" in saved
    trained, base = load_policy(result.model_dir), load_policy(tiny)
    assert trained.num_parameters() == base.num_parameters()
    changed = [
        name
        for (name, after), (_, before) in zip(
            trained.named_parameters(), base.named_parameters(), strict=True
        )
        if not after.equal(before)
    ]
    # Only the adapted linear layers move: embeddings and norms stay as they were.
    assert changed and all("proj" in name for name in changed)
    assert result.settings["learning_rate"] == 1e-3


def test_packing_trains_on_the_same_tokens_in_fewer_rows(
    tmp_path: Path, tiny: Path, snapshot: Path
) -> None:
    tokenizer = load_tokenizer(tiny)
    train = load_split(snapshot, "train", "sft")
    tokens = sum(
        len(
            tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)[
                "input_ids"
            ]
        )
        for row in train
    )
    padded, packed = Recorder(), Recorder()
    sft.run(make_context(tmp_path / "padded", "sft", {"epochs": 1}, tiny, snapshot, padded))
    result = sft.run(
        make_context(
            tmp_path / "packed", "sft", {"epochs": 1, "packing": True}, tiny, snapshot, packed
        )
    )

    assert result.settings["packing"] is True
    # One epoch counts every real token once either way (pads are not counted)...
    assert padded.series("num_tokens")[-1][1] == tokens
    assert packed.series("num_tokens")[-1][1] == tokens
    # ...but packed rows of up to 512 tokens need far fewer steps than one example per row.
    assert len(padded.series("loss")) == math.ceil(len(train) / 8)
    assert len(packed.series("loss")) <= math.ceil(tokens / 512 / 8) + 1


def test_bad_inputs_are_refused_before_training(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        SFTHyperparameters.model_validate({"learning_rate": -1e-4})
    recorder = Recorder()
    with pytest.raises(
        JobInputError, match=r"^bad hyperparameters: learning_rate: Input should be greater than 0$"
    ):
        sft.run(make_context(tmp_path, "sft", {"learning_rate": -1.0}, tiny, None, recorder))

    with pytest.raises(JobInputError, match=r"^this job needs a sft snapshot$"):
        sft.run(make_context(tmp_path, "sft", {"max_steps": 1}, tiny, None, recorder))
    preference = write_snapshot_folder(tmp_path / "pairs", "preference", preference_rows(10))
    with pytest.raises(JobInputError, match="not a sft snapshot: it has no messages column"):
        sft.run(make_context(tmp_path, "sft", {"max_steps": 1}, tiny, preference, recorder))

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    snapshot = write_snapshot_folder(tmp_path / "sft", "sft", sft_rows(10))
    with pytest.raises(JobInputError, match=r"only pickle weights \(pytorch_model.bin\)"):
        sft.run(make_context(tmp_path, "sft", {"max_steps": 1}, pickled, snapshot, recorder))

    unfinished = tmp_path / "checkpoints" / "checkpoint-3"
    unfinished.mkdir(parents=True)
    with pytest.raises(JobInputError, match="has no completion marker"):
        sft.run(
            make_context(
                tmp_path, "sft", {"max_steps": 5}, tiny, snapshot, recorder, resume_from=unfinished
            )
        )
    with pytest.raises(
        JobInputError, match=r"^bad hyperparameters: max_stepz: Extra inputs are not permitted$"
    ):
        sft.run(make_context(tmp_path, "sft", {"max_stepz": 5}, tiny, snapshot, recorder))
    assert recorder.reports == []
    assert not (tmp_path / "model").exists()
    assert latest_complete_checkpoint(tmp_path / "checkpoints") is None

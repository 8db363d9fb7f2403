"""worker/jobs/dpo.py on the tiny model, on CPU, from a snapshot folder of a learnable
synthetic preference written by the snapshot writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.worker.job_support import Recorder, make_context
from worker.jobs import dpo
from worker.training.callbacks import latest_complete_checkpoint
from worker.training.errors import JobInputError
from worker.training.synthetic import preference_rows, prompt_rows, write_snapshot_folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pairs") / "snapshot"
    return write_snapshot_folder(folder, "preference", preference_rows(400))


def test_dpo_implicit_reward_accuracy_rises(tmp_path: Path, tiny: Path, pairs: Path) -> None:
    recorder = Recorder()
    result = dpo.run(make_context(tmp_path, "dpo", {"max_steps": 40}, tiny, pairs, recorder))

    assert not result.stopped
    assert result.role == "policy"
    assert set(result.metrics) == {"train_loss", "eval_loss", "reward_accuracy", "reward_margin"}
    accuracies = recorder.series("rewards/accuracies")
    # At the first step the policy is its reference: no implicit reward, no pair ranked right.
    assert accuracies[0] == (1, 0.0)
    assert recorder.series("rewards/margins")[0] == (1, 0.0)
    assert result.metrics["reward_accuracy"] >= 0.9
    assert result.metrics["reward_margin"] > 0.3
    assert result.metrics["eval_loss"] < 0.6
    assert result.settings["beta"] == 0.1
    assert result.settings["loss_type"] == "sigmoid"
    assert result.settings["learning_rate"] == 5e-4
    assert (result.model_dir / "model.safetensors").is_file()


def test_dpo_with_lora_uses_the_adapter_free_model_as_reference(
    tmp_path: Path, tiny: Path, pairs: Path
) -> None:
    recorder = Recorder()
    hyperparameters = {"max_steps": 15, "lora": {"r": 8, "alpha": 16}, "learning_rate": 2e-3}
    result = dpo.run(make_context(tmp_path, "dpo", hyperparameters, tiny, pairs, recorder))

    assert recorder.series("rewards/accuracies")[0] == (1, 0.0)
    assert result.metrics["reward_accuracy"] > 0.6
    # The adapter alone is saved, naming the folder the run started from.
    assert (result.model_dir / "adapter_model.safetensors").is_file()
    assert not (result.model_dir / "model.safetensors").exists()
    config = json.loads((result.model_dir / "adapter_config.json").read_text())
    assert (result.model_dir / config["base_model_name_or_path"]).resolve() == tiny.resolve()


def test_cancel_then_resume(tmp_path: Path, tiny: Path, pairs: Path) -> None:
    hyperparameters = {"max_steps": 10, "beta": 0.2}
    stopped = dpo.run(
        make_context(tmp_path, "dpo", hyperparameters, tiny, pairs, Recorder(stop_after=4))
    )
    assert stopped.stopped
    checkpoint = latest_complete_checkpoint(tmp_path / "checkpoints")
    assert checkpoint == tmp_path / "checkpoints" / "checkpoint-4"

    resumed = Recorder()
    result = dpo.run(
        make_context(tmp_path, "dpo", hyperparameters, tiny, pairs, resumed, resume_from=checkpoint)
    )
    assert not result.stopped
    assert [step for step, _ in resumed.series("loss")] == list(range(5, 11))
    assert result.settings["beta"] == 0.2


def test_a_prompts_snapshot_and_a_bad_beta_are_refused(tmp_path: Path, tiny: Path) -> None:
    snapshot = write_snapshot_folder(tmp_path / "prompts", "prompts", prompt_rows(10))
    recorder = Recorder()
    with pytest.raises(JobInputError, match="is not a preference snapshot: it has no chosen"):
        dpo.run(make_context(tmp_path, "dpo", {}, tiny, snapshot, recorder))
    with pytest.raises(JobInputError, match=r"^bad hyperparameters: beta: Input should be greater"):
        dpo.run(make_context(tmp_path, "dpo", {"beta": 0}, tiny, snapshot, recorder))
    assert recorder.reports == []


def test_rpo_adds_the_chosen_answers_likelihood_to_the_loss(
    tmp_path: Path, tiny: Path, pairs: Path
) -> None:
    losses = {}
    for weight in (0.0, 1.0):
        recorder = Recorder()
        result = dpo.run(
            make_context(
                tmp_path / str(weight), "dpo", {"max_steps": 1, "sft_weight": weight}, tiny,
                pairs, recorder,
            )
        )  # fmt: skip
        assert result.settings["sft_weight"] == weight
        ((_, losses[weight]),) = recorder.series("loss")
    # At the first step the policy is its reference: DPO's loss is log 2 exactly, and RPO adds
    # the chosen answers' negative log-likelihood (several nats for an untrained model).
    assert losses[0.0] == pytest.approx(0.6931, abs=1e-3)
    assert losses[1.0] > losses[0.0] + 1.0

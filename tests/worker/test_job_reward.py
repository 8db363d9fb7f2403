"""worker/jobs/reward.py on the tiny model, on CPU, from a snapshot folder of a learnable
synthetic preference written by the snapshot writer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.worker.job_support import Recorder, make_context
from worker.jobs import reward
from worker.training.callbacks import latest_complete_checkpoint
from worker.training.errors import JobInputError
from worker.training.loading import load_reward_model, load_tokenizer
from worker.training.synthetic import preference_rows, sft_rows, write_snapshot_folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pairs") / "snapshot"
    return write_snapshot_folder(folder, "preference", preference_rows(400))


def score(model: torch.nn.Module, tokenizer: object, prompt: str, answer: str) -> float:
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_tensors="pt")  # type: ignore[attr-defined]
    with torch.no_grad():
        return float(model(input_ids=ids["input_ids"]).logits[0, 0])


def test_reward_model_learns_the_preference(tmp_path: Path, tiny: Path, pairs: Path) -> None:
    recorder = Recorder()
    result = reward.run(make_context(tmp_path, "reward", {"max_steps": 60}, tiny, pairs, recorder))

    assert not result.stopped
    assert result.role == "reward"
    assert set(result.metrics) == {"train_loss", "eval_loss", "accuracy", "margin"}
    # Held-out pairs (their prompts never seen in training): far above chance (0.5).
    assert result.metrics["accuracy"] >= 0.9
    assert result.metrics["margin"] > 1.0
    assert recorder.series("loss")[0][1] == pytest.approx(0.693, abs=0.01)
    assert [step for step, _ in recorder.series("accuracy")] == list(range(1, 61))
    assert {"margin", "mean_reward", "tokens_per_second"} <= set(recorder.reports[10][1])
    assert result.settings["use_margin"] is False
    assert result.settings["learning_rate"] == 5e-4

    # The saved model is a reward model: it scores an unseen pair the learned way round.
    model = load_reward_model(result.model_dir).eval()
    tokenizer = load_tokenizer(result.model_dir)
    prompt = "Describe the harbor."
    assert score(model, tokenizer, prompt, "The harbor is warm and gentle.") > score(
        model, tokenizer, prompt, "The harbor is grim and messy."
    )


def test_margins_enter_the_loss(tmp_path: Path, tiny: Path, pairs: Path) -> None:
    plain, margined = Recorder(), Recorder()
    reward.run(make_context(tmp_path / "plain", "reward", {"max_steps": 1}, tiny, pairs, plain))
    hyperparameters = {"max_steps": 1, "use_margin": True}
    result = reward.run(
        make_context(tmp_path / "margin", "reward", hyperparameters, tiny, pairs, margined)
    )

    assert result.settings["use_margin"] is True
    # Untrained, both rewards are about equal: the loss is log(2) without margins and
    # softplus(margin) (margins are 1 to 4) with them.
    assert plain.series("loss")[0][1] == pytest.approx(0.693, abs=0.01)
    assert margined.series("loss")[0][1] > 1.3


def test_cancel_then_resume(tmp_path: Path, tiny: Path, pairs: Path) -> None:
    hyperparameters = {"max_steps": 12}
    stopped = reward.run(
        make_context(tmp_path, "reward", hyperparameters, tiny, pairs, Recorder(stop_after=5))
    )
    assert stopped.stopped
    checkpoint = latest_complete_checkpoint(tmp_path / "checkpoints")
    assert checkpoint == tmp_path / "checkpoints" / "checkpoint-5"

    resumed = Recorder()
    result = reward.run(
        make_context(
            tmp_path, "reward", hyperparameters, tiny, pairs, resumed, resume_from=checkpoint
        )
    )
    assert not result.stopped
    assert [step for step, _ in resumed.series("loss")] == list(range(6, 13))
    assert (result.model_dir / "model.safetensors").is_file()


def test_an_sft_snapshot_is_refused(tmp_path: Path, tiny: Path) -> None:
    snapshot = write_snapshot_folder(tmp_path / "sft", "sft", sft_rows(10))
    recorder = Recorder()
    with pytest.raises(
        JobInputError, match="is not a preference snapshot: it has no prompt, chosen, rejected"
    ):
        reward.run(make_context(tmp_path, "reward", {}, tiny, snapshot, recorder))
    with pytest.raises(JobInputError, match="use_margin: Input should be a valid boolean"):
        reward.run(
            make_context(tmp_path, "reward", {"use_margin": "yes!"}, tiny, snapshot, recorder)
        )
    assert recorder.reports == []
    assert not (tmp_path / "checkpoints").exists()

"""worker/jobs/ppo.py (TRL 1.12's PPOTrainer, kept in worker/training/ppo) on CPU: policy,
reference, reward model and value model; PPO pushes a tiny policy towards what a tiny reward
model scores higher."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker.job_support import Recorder, make_context
from worker.jobs import ppo
from worker.training.callbacks import MARKER, latest_complete_checkpoint
from worker.training.errors import JobInputError
from worker.training.tiny import build_tiny_model

# With test_job_generate.py: one xdist worker builds their shared `rl_inputs` once.
pytestmark = pytest.mark.xdist_group("rl")


@pytest.fixture
def inputs(rl_inputs: tuple[Path, Path, Path]) -> tuple[Path, Path, Path]:
    return rl_inputs


# Generation on a CPU is slow: minutes on a busy machine.
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ppo_raises_the_mean_reward(tmp_path: Path, inputs: tuple[Path, Path, Path]) -> None:
    policy, reward_model, prompts = inputs
    recorder = Recorder()
    hyperparameters = {"max_steps": 20, "batch_size": 16, "max_completion_length": 12}
    result = ppo.run(
        make_context(
            tmp_path, "ppo", hyperparameters, policy, prompts, recorder, reward_model=reward_model
        )
    )

    assert not result.stopped
    assert set(result.metrics) == {"mean_reward", "start_mean_reward", "win_rate"}
    assert result.metrics["mean_reward"] > result.metrics["start_mean_reward"] + 0.3
    assert result.metrics["win_rate"] > 0.6
    scores = [value for _, value in recorder.series("objective/scores")]
    assert len(scores) == 20
    assert sum(scores[-5:]) / 5 > sum(scores[:5]) / 5
    assert {"objective/kl", "loss/value_avg", "lr"} <= set(recorder.reports[3][1])
    assert recorder.reports[-1][2] == 1.0
    assert result.settings["kl_coef"] == 0.05
    assert (result.model_dir / "model.safetensors").is_file()


def test_cancel_then_resume_continues_the_numbering(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    policy, reward_model, prompts = inputs
    hyperparameters = {"max_steps": 4, "max_completion_length": 6, "num_ppo_epochs": 1}
    stopped = ppo.run(
        make_context(
            tmp_path,
            "ppo",
            hyperparameters,
            policy,
            prompts,
            Recorder(stop_after=2),
            reward_model=reward_model,
        )
    )
    assert stopped.stopped
    checkpoint = latest_complete_checkpoint(tmp_path / "checkpoints")
    assert checkpoint == tmp_path / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "value_model" / "model.safetensors").is_file()
    assert (checkpoint / "model.safetensors").is_file()

    resumed = Recorder()
    result = ppo.run(
        make_context(
            tmp_path,
            "ppo",
            hyperparameters,
            policy,
            prompts,
            resumed,
            reward_model=reward_model,
            resume_from=checkpoint,
        )
    )
    assert not result.stopped
    assert [step for step, _ in resumed.series("objective/scores")] == [3, 4]
    assert [progress for _, _, progress in resumed.reports] == [0.75, 1.0]
    # The learning rate goes on decaying linearly from where the first run stopped: at step
    # 3 of 4 it is what an uninterrupted run's would be, 3e-4 x (1 - 2/4).
    assert resumed.series("lr")[0][1] == pytest.approx(3e-4 * 2 / 4)
    assert (tmp_path / "checkpoints" / "checkpoint-4" / MARKER).is_file()


def test_ppo_refuses_a_reward_model_with_another_tokenizer(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    policy, _, prompts = inputs
    other = build_tiny_model(
        tmp_path / "other", vocab_corpus=["a b c d e f g"] * 10, vocab_size=300
    )
    recorder = Recorder()
    with pytest.raises(JobInputError, match="must share the policy's tokenizer"):
        ppo.run(make_context(tmp_path, "ppo", {}, policy, prompts, recorder, reward_model=other))
    with pytest.raises(JobInputError, match=r"^PPO needs a reward model$"):
        ppo.run(make_context(tmp_path, "ppo", {}, policy, prompts, recorder))
    assert recorder.reports == []

"""worker/jobs/rloo.py on CPU: a tiny policy that says positive and negative things, pushed by
RLOO towards what a tiny reward model (trained to prefer positive answers) scores higher."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker.job_support import Recorder, make_context
from worker.jobs import rloo
from worker.training.callbacks import latest_complete_checkpoint
from worker.training.errors import JobInputError

# With test_job_generate.py: one xdist worker builds their shared `rl_inputs` once.
pytestmark = pytest.mark.xdist_group("rl")


@pytest.fixture
def inputs(rl_inputs: tuple[Path, Path, Path]) -> tuple[Path, Path, Path]:
    return rl_inputs


# Generation on a CPU is slow: minutes on a busy machine.
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rloo_raises_the_mean_reward(tmp_path: Path, inputs: tuple[Path, Path, Path]) -> None:
    policy, reward_model, prompts = inputs
    recorder = Recorder()
    hyperparameters = {"max_steps": 30, "batch_size": 16, "max_completion_length": 12}
    result = rloo.run(
        make_context(
            tmp_path, "rloo", hyperparameters, policy, prompts, recorder, reward_model=reward_model
        )
    )

    assert not result.stopped
    assert set(result.metrics) == {"mean_reward", "start_mean_reward", "win_rate"}
    # On held-out prompts the trained policy's completions score higher than its start's.
    assert result.metrics["mean_reward"] > result.metrics["start_mean_reward"] + 0.3
    assert result.metrics["win_rate"] > 0.6
    rewards = [value for _, value in recorder.series("reward")]
    assert len(rewards) == 30
    assert sum(rewards[-10:]) / 10 > sum(rewards[:10]) / 10
    assert {"kl", "reward_std", "tokens_per_second"} <= set(recorder.reports[5][1])
    assert result.settings["num_generations"] == 4
    assert result.settings["learning_rate"] == 3e-4
    assert "max_length" not in result.settings
    assert (result.model_dir / "model.safetensors").is_file()


def test_cancel_then_resume(tmp_path: Path, inputs: tuple[Path, Path, Path]) -> None:
    policy, reward_model, prompts = inputs
    hyperparameters = {"max_steps": 4, "num_generations": 3, "max_completion_length": 6}
    stopped = rloo.run(
        make_context(
            tmp_path,
            "rloo",
            hyperparameters,
            policy,
            prompts,
            Recorder(stop_after=2),
            reward_model=reward_model,
        )
    )
    assert stopped.stopped
    # A batch of 8 would split a prompt's 3 completions: the job rounds it up to 9.
    assert stopped.settings["batch_size"] == 9
    assert stopped.settings["reasons"]["batch_size"] == "whole groups of 3 completions"
    checkpoint = latest_complete_checkpoint(tmp_path / "checkpoints")
    assert checkpoint == tmp_path / "checkpoints" / "checkpoint-2"

    resumed = Recorder()
    result = rloo.run(
        make_context(
            tmp_path,
            "rloo",
            hyperparameters,
            policy,
            prompts,
            resumed,
            reward_model=reward_model,
            resume_from=checkpoint,
        )
    )
    assert not result.stopped
    assert [step for step, _ in resumed.series("reward")] == [3, 4]
    assert 0 <= result.metrics["win_rate"] <= 1


def test_rloo_needs_a_reward_model_and_a_prompts_snapshot(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    policy, reward_model, _ = inputs
    recorder = Recorder()
    with pytest.raises(JobInputError, match=r"^RLOO needs a reward model$"):
        rloo.run(make_context(tmp_path, "rloo", {}, policy, None, recorder))
    with pytest.raises(JobInputError, match="num_generations"):
        rloo.run(
            make_context(
                tmp_path,
                "rloo",
                {"batch_size": 6, "num_generations": 4},
                policy,
                None,
                recorder,
                reward_model=reward_model,
            )
        )
    assert recorder.reports == []

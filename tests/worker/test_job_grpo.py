"""worker/jobs/grpo.py on CPU: a tiny policy that says positive and negative things, pushed by
GRPO towards what a tiny reward model (trained to prefer positive answers) scores higher, with
the Python reward functions of worker/training/rewards.py added by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker.job_support import Recorder, make_context
from worker.jobs import grpo
from worker.training.callbacks import latest_complete_checkpoint
from worker.training.errors import JobInputError
from worker.training.loading import load_policy

# With test_job_generate.py: one xdist worker builds their shared `rl_inputs` once.
pytestmark = pytest.mark.xdist_group("rl")


@pytest.fixture
def inputs(rl_inputs: tuple[Path, Path, Path]) -> tuple[Path, Path, Path]:
    return rl_inputs


def changed_parameters(trained: Path, start: Path) -> list[str]:
    after, before = load_policy(trained), load_policy(start)
    return [
        name
        for (name, new), (_, old) in zip(
            after.named_parameters(), before.named_parameters(), strict=True
        )
        if not new.equal(old)
    ]


# Generation on a CPU is slow: minutes on a busy machine.
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_grpo_raises_the_mean_reward(tmp_path: Path, inputs: tuple[Path, Path, Path]) -> None:
    policy, reward_model, prompts = inputs
    recorder = Recorder()
    hyperparameters = {"max_steps": 30, "batch_size": 16, "max_completion_length": 12}
    result = grpo.run(
        make_context(
            tmp_path, "grpo", hyperparameters, policy, prompts, recorder, reward_model=reward_model
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
    assert result.settings["learning_rate"] == 3e-4
    assert (result.settings["beta"], result.settings["loss_type"]) == (0.0, "dapo")
    assert "max_length" not in result.settings


def test_python_rewards_are_logged_beside_the_reward_models_and_weighed_with_a_kl_penalty(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    policy, reward_model, prompts = inputs
    recorder = Recorder()
    hyperparameters = {
        "max_steps": 3,
        "batch_size": 8,
        "max_completion_length": 8,
        "reward_functions": ["length_penalty", "think_format"],
        "reward_weights": [1.0, 0.5, 2.0],
        # A KL penalty loads the reference model (TRL, from the base folder) and logs the KL.
        "beta": 0.04,
    }
    result = grpo.run(
        make_context(
            tmp_path, "grpo", hyperparameters, policy, prompts, recorder, reward_model=reward_model
        )
    )

    assert not result.stopped
    assert [step for step, _ in recorder.series("loss")] == [1, 2, 3]
    # Each step's report (the last one is the run's summary: runtime, mean loss).
    for step, values, _ in recorder.reports[:3]:
        # TRL names the reward model after its folder (the run's "model"), the functions
        # after themselves; `reward` is their weighted sum.
        model, length, think = (
            values[f"rewards/{name}/mean"] for name in ("model", "length_penalty", "think_format")
        )
        assert -1.0 <= length < 0.0, step
        # The tiny policy never writes <think> tags.
        assert think == 0.0, step
        assert values["reward"] == pytest.approx(model + 0.5 * length + 2.0 * think, abs=1e-5)
        assert values["kl"] >= 0.0
    assert result.settings["reward_functions"] == ["length_penalty", "think_format"]
    assert result.settings["reward_weights"] == [1.0, 0.5, 2.0]
    assert changed_parameters(result.model_dir, policy)


def test_cancel_then_resume(tmp_path: Path, inputs: tuple[Path, Path, Path]) -> None:
    policy, reward_model, prompts = inputs
    hyperparameters = {"max_steps": 4, "num_generations": 3, "max_completion_length": 6}
    stopped = grpo.run(
        make_context(
            tmp_path,
            "grpo",
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
    result = grpo.run(
        make_context(
            tmp_path,
            "grpo",
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


def test_grpo_needs_a_reward_model_and_known_reward_functions(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    policy, reward_model, prompts = inputs
    recorder = Recorder()
    with pytest.raises(JobInputError, match=r"^GRPO needs a reward model$"):
        grpo.run(make_context(tmp_path, "grpo", {}, policy, prompts, recorder))
    with pytest.raises(JobInputError, match="unknown reward function 'brevity'"):
        grpo.run(
            make_context(
                tmp_path,
                "grpo",
                {"reward_functions": ["brevity"]},
                policy,
                prompts,
                recorder,
                reward_model=reward_model,
            )
        )
    assert recorder.reports == []

"""The inputs the RL and generation job tests share, built once per test process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker.job_support import Recorder, make_context


@pytest.fixture(scope="session")
def rl_inputs(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> tuple[Path, Path, Path]:
    """(policy, reward model, prompts snapshot) for the PPO, RLOO and generation tests (one
    xdist group, so one worker builds them): the tiny policy fine-tuned on answers that are half
    positive and half negative (so it says both kinds of thing), a reward model trained on the
    synthetic preference (positive answers chosen), and a snapshot of 200 prompts."""
    from worker.jobs import reward, sft
    from worker.training.synthetic import (
        preference_rows,
        prompt_rows,
        sft_rows,
        write_snapshot_folder,
    )

    root = tmp_path_factory.mktemp("rl-inputs")
    demonstrations = write_snapshot_folder(
        root / "demonstrations", "sft", sft_rows(400, positive_share=0.5)
    )
    pairs = write_snapshot_folder(root / "pairs", "preference", preference_rows(400))
    prompts = write_snapshot_folder(root / "prompts", "prompts", prompt_rows(200))
    policy = sft.run(
        make_context(
            root / "sft",
            "sft",
            {"max_steps": 150, "learning_rate": 1e-3},
            tiny,
            demonstrations,
            Recorder(),
        )
    )
    reward_model = reward.run(
        make_context(root / "reward", "reward", {"max_steps": 60}, tiny, pairs, Recorder())
    )
    assert reward_model.metrics["accuracy"] >= 0.9
    return policy.model_dir, reward_model.model_dir, prompts

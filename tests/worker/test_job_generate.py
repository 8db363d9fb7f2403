"""worker/jobs/generate.py and worker/jobs/score.py on CPU with the tiny models: a policy that
says warm and cold things, and a reward model trained to prefer the warm ones."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.worker.job_support import Recorder, make_context
from worker.jobs import generate, score
from worker.training.errors import JobInputError
from worker.training.evaluation import score as reward_scores
from worker.training.loading import load_reward_model, load_tokenizer
from worker.training.synthetic import prompt_rows

# With the PPO and RLOO tests: one xdist worker builds their shared `rl_inputs` once.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("rl")]


@pytest.fixture
def inputs(rl_inputs: tuple[Path, Path, Path]) -> tuple[Path, Path, Path]:
    return rl_inputs


def prompts_folder(root: Path, count: int) -> Path:
    folder = root / "input"
    folder.mkdir(parents=True)
    rows = [
        {"prompt_id": 100 + index, "messages": row["prompt"]}
        for index, row in enumerate(prompt_rows(count, seed=5))
    ]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def generate_with(
    root: Path, inputs: tuple[Path, Path, Path], params: dict[str, Any], *, reward: bool
) -> tuple[list[dict[str, Any]], dict[str, float], Recorder]:
    policy, reward_model, _ = inputs
    recorder = Recorder()
    ctx = make_context(
        root, "generate", params, policy, None, recorder,
        reward_model=reward_model if reward else None,
    )  # fmt: skip
    ctx = replace(ctx, input_dir=prompts_folder(root, 6), compare_model_path=policy)
    result = generate.run(ctx)
    assert result.role is None and not result.stopped
    lines = (result.model_dir / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines], result.metrics, recorder


def test_samples_every_prompt_n_times_per_repeat_and_is_reproducible(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    params = {"samples_per_prompt": 3, "repeats": 2, "max_new_tokens": 12, "seed": 4}
    samples, metrics, recorder = generate_with(tmp_path / "a", inputs, params, reward=False)
    again, _, _ = generate_with(tmp_path / "b", inputs, params, reward=False)

    assert len(samples) == 6 * 2 * 3
    assert metrics == {"prompts": 6.0, "samples": 36.0}
    assert samples == again
    assert [(s["prompt_id"], s["repeat"], s["sample"]) for s in samples[:4]] == [
        (100, 0, 0), (100, 0, 1), (100, 0, 2), (100, 1, 0),
    ]  # fmt: skip
    assert {s["source"] for s in samples} == {"policy"}
    assert set(samples[0]) == {"prompt_id", "repeat", "source", "sample", "content"}
    assert recorder.reports[-1][2] == 1.0


def test_best_of_n_keeps_the_top_scored_sample_and_beats_a_single_sample(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    params = {"samples_per_prompt": 4, "repeats": 2, "max_new_tokens": 12, "seed": 1}
    every, all_metrics, _ = generate_with(tmp_path / "all", inputs, params, reward=True)
    best, metrics, _ = generate_with(
        tmp_path / "best", inputs, {**params, "best_of_n": True}, reward=True
    )

    assert len(every) == 48 and len(best) == 12
    for group in range(12):
        candidates = every[group * 4 : group * 4 + 4]
        top = max(candidates, key=lambda s: s["score"])
        assert best[group] == top
    first_samples = [every[group * 4]["score"] for group in range(12)]
    assert metrics["mean_best_score"] > sum(first_samples) / 12
    assert metrics["mean_score"] == pytest.approx(all_metrics["mean_score"])


def test_reward_gap_keeps_the_closest_calls_and_a_compare_model_answers_each_task(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    params = {"samples_per_prompt": 3, "max_new_tokens": 12, "seed": 2}
    every, _, _ = generate_with(tmp_path / "all", inputs, params, reward=True)
    chosen, metrics, _ = generate_with(
        tmp_path / "gap", inputs,
        {**params, "selection": "reward_gap", "prompt_limit": 2, "target_queue_id": 1,
         "compare_model_id": 9},
        reward=True,
    )  # fmt: skip

    gaps = {}
    for index in range(6):
        top = sorted((s["score"] for s in every[index * 3 : index * 3 + 3]), reverse=True)
        gaps[every[index * 3]["prompt_id"]] = top[0] - top[1]
    closest = sorted(gaps, key=lambda prompt_id: (gaps[prompt_id], prompt_id))[:2]
    policy_samples = [s for s in chosen if s["source"] == "policy"]
    compared = [s for s in chosen if s["source"] == "compare"]
    assert sorted({s["prompt_id"] for s in policy_samples}) == sorted(closest)
    assert len(policy_samples) == 6
    assert metrics["mean_gap_kept"] == pytest.approx((gaps[closest[0]] + gaps[closest[1]]) / 2)
    assert [(s["prompt_id"], s["repeat"], s["sample"]) for s in compared] == [
        (prompt_id, 0, 0) for prompt_id in sorted(closest)
    ]
    assert all("score" not in s for s in compared)


def test_missing_prompts_are_a_clear_error(tmp_path: Path, inputs: tuple[Path, Path, Path]) -> None:
    policy, _, _ = inputs
    ctx = make_context(tmp_path, "generate", {}, policy, None, Recorder())
    with pytest.raises(JobInputError, match=r"input/prompts.jsonl\) are missing"):
        generate.run(ctx)


def test_score_writes_the_reward_models_score_of_each_response(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    _, reward_model, _ = inputs
    prompt = [{"role": "user", "content": "Tell me about the sea."}]
    rows = [
        {"response_id": 7, "prompt": prompt, "content": "The sea is warm and kind."},
        {"response_id": 8, "prompt": prompt, "content": "The sea is grim and cold."},
    ]
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "responses.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    ctx = replace(
        make_context(tmp_path, "score", {}, reward_model, None, Recorder()), input_dir=folder
    )
    result = score.run(ctx)

    written = [
        json.loads(line) for line in (result.model_dir / "scores.jsonl").read_text().splitlines()
    ]
    tokenizer = load_tokenizer(reward_model)
    model = load_reward_model(reward_model, pad_token_id=tokenizer.pad_token_id).eval()
    expected = reward_scores(model, tokenizer, [prompt, prompt], [row["content"] for row in rows])
    assert [row["response_id"] for row in written] == [7, 8]
    assert [row["score"] for row in written] == pytest.approx(expected, abs=1e-5)
    # The reward model learnt the synthetic preference: warm words score higher.
    assert written[0]["score"] > written[1]["score"]


def test_a_best_of_n_baseline_keeps_the_compare_models_top_scored_answer(
    tmp_path: Path, inputs: tuple[Path, Path, Path]
) -> None:
    base = {"samples_per_prompt": 1, "max_new_tokens": 12, "seed": 3, "target_queue_id": 1,
            "compare_model_id": 9}  # fmt: skip
    plain, _, _ = generate_with(tmp_path / "plain", inputs, base, reward=True)
    best, _, _ = generate_with(
        tmp_path / "best", inputs, {**base, "compare_best_of": 4}, reward=True
    )

    compared = [s for s in best if s["source"] == "compare"]
    assert len(compared) == 6
    assert all(set(s) == {"prompt_id", "repeat", "source", "sample", "content", "score"}
               for s in compared)  # fmt: skip
    # The same policy samples in both runs; only the baseline's answers were reranked.
    assert [s for s in best if s["source"] == "policy"] == [
        s for s in plain if s["source"] == "policy"
    ]
    _, reward_model, _ = inputs
    tokenizer = load_tokenizer(reward_model)
    model = load_reward_model(reward_model, pad_token_id=tokenizer.pad_token_id).eval()
    prompts = {100 + index: row for index, row in enumerate(prompt_rows(6, seed=5))}
    single = [s for s in plain if s["source"] == "compare"]
    single_scores = reward_scores(
        model, tokenizer, [prompts[s["prompt_id"]]["prompt"] for s in single],
        [s["content"] for s in single],
    )  # fmt: skip
    assert sum(s["score"] for s in compared) / 6 >= sum(single_scores) / 6

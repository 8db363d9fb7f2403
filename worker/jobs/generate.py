"""Generation: a policy answers prompts, and its answers become the next round's labeling work.

Reads the prompts the launch wrote (input/prompts.jsonl), samples `samples_per_prompt` answers to
each prompt `repeats` times, and writes them to samples.jsonl; the web side
(app/services/generation/recording.py) turns them into responses and comparison tasks. With a
reward model every sample is scored: best_of_n keeps the top-scoring sample of each group
(best-of-N sampling, in place of RL), and selection "reward_gap" keeps the prompts whose two best
samples the reward model can least tell apart (where a label teaches it most). A compare model
(say, the previous policy) answers each prompt once per repeat, for side-by-side tasks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.schemas.generation import GenerateHyperparameters
from worker.jobs.context import JobContext, JobResult
from worker.training.arguments import parse_hyperparameters
from worker.training.defaults import loading_arguments, pick_model_loading, record_loading
from worker.training.errors import JobInputError
from worker.training.evaluation import score
from worker.training.generation import open_sampler, pick_generation_backend, record_backend
from worker.training.loading import load_reward_model, load_tokenizer

SAMPLES_FILE = "samples.jsonl"
# Prompts sampled between two progress reports and stop checks.
CHUNK = 64


def run(ctx: JobContext) -> JobResult:
    from transformers import set_seed

    params = parse_hyperparameters(GenerateHyperparameters, ctx.hyperparameters)
    loading = pick_model_loading(ctx.device, None, None)
    load = loading_arguments(loading)
    # vLLM on a CUDA worker that has it, generate otherwise (worker/training/generation.py).
    backend = pick_generation_backend(ctx.device, params.use_vllm)
    set_seed(params.seed)
    prompts = read_prompts(ctx.input_dir)
    # One group per (prompt, repeat): the samples a task will compare.
    groups = [(row, repeat) for row in prompts for repeat in range(params.repeats)]
    options = {
        "max_new_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }

    tokenizer = load_tokenizer(ctx.base_model_path)
    policy = open_sampler(
        backend[0], ctx.base_model_path, tokenizer, ctx.device, loading, load, options
    )
    samples: list[dict[str, Any]] = []
    steps = len(groups) * (2 if params.compare_model_id is not None else 1)
    for start in range(0, len(groups), CHUNK):
        if ctx.should_stop():
            policy.close()
            return JobResult(metrics={}, model_dir=ctx.output_dir, role=None, stopped=True)
        chunk = groups[start : start + CHUNK]
        texts = policy.sample(
            [row["messages"] for row, _ in chunk for _ in range(params.samples_per_prompt)],
            seed=params.seed + start,
        )
        for index, text in enumerate(texts):
            row, repeat = chunk[index // params.samples_per_prompt]
            samples.append(
                {
                    "prompt_id": row["prompt_id"],
                    "repeat": repeat,
                    "source": "policy",
                    "sample": index % params.samples_per_prompt,
                    "content": text,
                    "messages": row["messages"],
                }
            )
        done = start + len(chunk)
        ctx.report(done, {"samples": float(len(samples))}, 0.9 * done / steps)
    policy.close()

    metrics: dict[str, float] = {"prompts": float(len(prompts))}
    if ctx.reward_model_path is not None:
        scores = score_samples(ctx, samples)
        for item, value in zip(samples, scores, strict=True):
            item["score"] = value
        metrics["mean_score"] = sum(scores) / len(scores)
        if params.selection == "reward_gap" and params.prompt_limit is not None:
            samples, metrics["mean_gap_kept"] = closest_calls(samples, params.prompt_limit)
        if params.best_of_n:
            samples = best_of_groups(samples)
            metrics["mean_best_score"] = sum(item["score"] for item in samples) / len(samples)

    if params.compare_model_id is not None:
        if ctx.compare_model_path is None:
            raise JobInputError("the compare model's folder was not given to the job")
        samples += compare_samples(ctx, params, samples, options, backend[0])
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    with (ctx.output_dir / SAMPLES_FILE).open("w", encoding="utf-8") as handle:
        for item in samples:
            kept = {key: value for key, value in item.items() if key != "messages"}
            handle.write(json.dumps(kept, ensure_ascii=False) + "\n")
    metrics["samples"] = float(len(samples))
    ctx.report(steps, {"samples": float(len(samples))}, 1.0)
    # Every model here loads with the device's defaults (worker/training/defaults.py).
    settings: dict[str, Any] = dict(options)
    record_loading(settings, loading)
    record_backend(settings, backend)
    return JobResult(metrics=metrics, model_dir=ctx.output_dir, role=None, settings=settings)


def read_prompts(input_dir: Path | None) -> list[dict[str, Any]]:
    path = input_dir / "prompts.jsonl" if input_dir is not None else None
    if path is None or not path.is_file():
        raise JobInputError("the run's prompts (input/prompts.jsonl) are missing")
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if not rows:
        raise JobInputError("the run has no prompts to answer")
    return rows


def score_samples(ctx: JobContext, samples: list[dict[str, Any]]) -> list[float]:
    assert ctx.reward_model_path is not None
    load = loading_arguments(pick_model_loading(ctx.device, None, None))
    reward_tokenizer = load_tokenizer(ctx.reward_model_path)
    reward_model = load_reward_model(
        ctx.reward_model_path, pad_token_id=reward_tokenizer.pad_token_id, **load
    )
    reward_model.to(ctx.device).eval()
    return score(
        reward_model,
        reward_tokenizer,
        [item["messages"] for item in samples],
        [item["content"] for item in samples],
    )


def _by_group(samples: list[dict[str, Any]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for item in samples:
        groups.setdefault((item["prompt_id"], item["repeat"]), []).append(item)
    return groups


def best_of_groups(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The top-scoring sample of each (prompt, repeat); the first wins a tie."""
    return [max(group, key=lambda item: item["score"]) for group in _by_group(samples).values()]


def closest_calls(samples: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], float]:
    """The samples of the `limit` prompts whose two best samples score closest (mean gap over
    the prompt's repeats; prompt id breaks ties), and the mean gap of those kept."""
    gaps: dict[int, list[float]] = {}
    for (prompt_id, _), group in _by_group(samples).items():
        top = sorted((item["score"] for item in group), reverse=True)
        gaps.setdefault(prompt_id, []).append(top[0] - top[1])
    mean_gap = {prompt_id: sum(values) / len(values) for prompt_id, values in gaps.items()}
    kept = sorted(mean_gap, key=lambda prompt_id: (mean_gap[prompt_id], prompt_id))[:limit]
    chosen = set(kept)
    return (
        [item for item in samples if item["prompt_id"] in chosen],
        sum(mean_gap[prompt_id] for prompt_id in kept) / len(kept),
    )


def compare_samples(
    ctx: JobContext,
    params: GenerateHyperparameters,
    samples: list[dict[str, Any]],
    options: dict[str, Any],
    backend: str,
) -> list[dict[str, Any]]:
    """The compare model's answer for each (prompt, repeat) still kept: one sample, or with
    compare_best_of N the one the reward model scores highest of N (a best-of-N baseline)."""
    assert ctx.compare_model_path is not None
    groups = list(_by_group(samples))
    messages = {item["prompt_id"]: item["messages"] for item in samples}
    loading = pick_model_loading(ctx.device, None, None)
    tokenizer = load_tokenizer(ctx.compare_model_path)
    model = open_sampler(
        backend, ctx.compare_model_path, tokenizer, ctx.device, loading,
        loading_arguments(loading), options,
    )  # fmt: skip
    draws = params.compare_best_of
    # Its own seeds, offset from the policy's, so the two never share a random stream.
    texts = model.sample(
        [messages[prompt_id] for prompt_id, _ in groups for _ in range(draws)],
        seed=params.seed + 1_000_003,
    )
    model.close()
    answers = [
        {"prompt_id": prompt_id, "repeat": repeat, "source": "compare", "sample": index % draws,
         "content": text, "messages": messages[prompt_id]}
        for index, ((prompt_id, repeat), text) in enumerate(
            zip([group for group in groups for _ in range(draws)], texts, strict=True)
        )
    ]  # fmt: skip
    if draws > 1:
        if ctx.reward_model_path is None:
            raise JobInputError("compare_best_of needs a reward model")
        for item, value in zip(answers, score_samples(ctx, answers), strict=True):
            item["score"] = value
        answers = best_of_groups(answers)
    return answers

"""Scoring: a reward model scores responses (its prompt with the response as the answer).

Reads input/responses.jsonl written at launch and writes scores.jsonl; the web side stores them
as the reward model's ResponseScore rows, which the audit view reads against the labelers'
consensus to find where the reward model and the people disagree.
"""

from __future__ import annotations

import json
from typing import Any

from worker.jobs.context import JobContext, JobResult
from worker.training.defaults import loading_arguments, pick_model_loading, record_loading
from worker.training.errors import JobInputError
from worker.training.evaluation import score
from worker.training.loading import load_reward_model, load_tokenizer

SCORES_FILE = "scores.jsonl"
CHUNK = 256


def run(ctx: JobContext) -> JobResult:
    path = ctx.input_dir / "responses.jsonl" if ctx.input_dir is not None else None
    if path is None or not path.is_file():
        raise JobInputError("the run's responses (input/responses.jsonl) are missing")
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if not rows:
        raise JobInputError("the run has no responses to score")
    # The reward model loads with the device's defaults (worker/training/defaults.py).
    loading = pick_model_loading(ctx.device, None, None)
    load = loading_arguments(loading)
    tokenizer = load_tokenizer(ctx.base_model_path)
    reward_model = load_reward_model(
        ctx.base_model_path, pad_token_id=tokenizer.pad_token_id, **load
    )
    reward_model.to(ctx.device).eval()

    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    scored = 0
    with (ctx.output_dir / SCORES_FILE).open("w", encoding="utf-8") as handle:
        for start in range(0, len(rows), CHUNK):
            if ctx.should_stop():
                return JobResult(metrics={}, model_dir=ctx.output_dir, role=None, stopped=True)
            chunk = rows[start : start + CHUNK]
            values = score(
                reward_model,
                tokenizer,
                [row["prompt"] for row in chunk],
                [row["content"] for row in chunk],
            )
            for row, value in zip(chunk, values, strict=True):
                handle.write(json.dumps({"response_id": row["response_id"], "score": value}) + "\n")
            scored += len(chunk)
            ctx.report(scored, {"scored": float(scored)}, scored / len(rows))
    settings: dict[str, Any] = {}
    record_loading(settings, loading)
    return JobResult(metrics={}, model_dir=ctx.output_dir, role=None, settings=settings)

"""Judging: a model labels comparison tasks, for AI feedback beside the labelers'.

Reads input/tasks.jsonl written at launch (app/services/judging/launching.py) and writes
judgements.jsonl; the web side (app/services/judging/recording.py) turns each line into a
comparison of source "ai". A reward judge scores every response of a task (its prompt with
the response as the answer) and writes the rewards; a generative judge answers the judge
prompt the launch rendered from the project's template and guideline, greedily (a judge
should give the same verdict twice), and writes its reply, which the web side parses strictly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.schemas.judging import JudgeHyperparameters
from worker.jobs.context import JobContext, JobResult
from worker.training.arguments import parse_hyperparameters
from worker.training.defaults import loading_arguments, pick_model_loading, record_loading
from worker.training.errors import JobInputError
from worker.training.evaluation import score
from worker.training.loading import load_policy, load_reward_model, load_tokenizer

OUTPUT_FILE = "judgements.jsonl"
# Tasks between two progress reports and stop checks.
CHUNK = 32


def run(ctx: JobContext) -> JobResult:
    params = parse_hyperparameters(JudgeHyperparameters, ctx.hyperparameters)
    tasks = read_tasks(ctx.input_dir)
    loading = pick_model_loading(ctx.device, None, None)
    load = loading_arguments(loading)
    tokenizer = load_tokenizer(ctx.base_model_path)
    if params.mode == "reward":
        model = load_reward_model(ctx.base_model_path, pad_token_id=tokenizer.pad_token_id, **load)
    else:
        model = load_policy(ctx.base_model_path, **load)
    model.to(ctx.device).eval()

    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    with (ctx.output_dir / OUTPUT_FILE).open("w", encoding="utf-8") as handle:
        for start in range(0, len(tasks), CHUNK):
            if ctx.should_stop():
                return JobResult(metrics={}, model_dir=ctx.output_dir, role=None, stopped=True)
            chunk = tasks[start : start + CHUNK]
            if params.mode == "reward":
                judged = _rewards(model, tokenizer, chunk)
            else:
                judged = _replies(model, tokenizer, chunk, params.max_new_tokens)
            for row in judged:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            done = start + len(chunk)
            ctx.report(done, {"judged": float(done)}, done / len(tasks))
    settings: dict[str, Any] = {}
    record_loading(settings, loading)
    return JobResult(metrics={}, model_dir=ctx.output_dir, role=None, settings=settings)


def read_tasks(input_dir: Path | None) -> list[dict[str, Any]]:
    path = input_dir / "tasks.jsonl" if input_dir is not None else None
    if path is None or not path.is_file():
        raise JobInputError("the run's tasks (input/tasks.jsonl) are missing")
    with path.open(encoding="utf-8") as handle:
        tasks = [json.loads(line) for line in handle if line.strip()]
    if not tasks:
        raise JobInputError("the run has no tasks to judge")
    return tasks


def _rewards(model: Any, tokenizer: Any, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    prompts = [task["messages"] for task in tasks for _ in task["contents"]]
    contents = [content for task in tasks for content in task["contents"]]
    values = iter(score(model, tokenizer, prompts, contents))
    return [
        {
            "task_id": task["task_id"],
            "prompt_id": task["prompt_id"],
            "response_ids": task["response_ids"],
            "rewards": [next(values) for _ in task["contents"]],
        }
        for task in tasks
    ]


def _replies(
    model: Any, tokenizer: Any, tasks: list[dict[str, Any]], max_new_tokens: int
) -> list[dict[str, Any]]:
    import torch

    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        texts = [
            tokenizer.apply_chat_template(
                task["judge_messages"], tokenize=False, add_generation_prompt=True
            )
            for task in tasks
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            device
        )
        with torch.no_grad():
            output = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
    finally:
        tokenizer.padding_side = side
    replies = tokenizer.batch_decode(
        output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
    )
    return [
        {
            "task_id": task["task_id"],
            "prompt_id": task["prompt_id"],
            "response_ids": task["response_ids"],
            "reply": reply,
        }
        for task, reply in zip(tasks, replies, strict=True)
    ]

"""Critique and revision (Constitutional AI, Bai et al. 2022): a model critiques responses under
written principles, then revises them.

Reads the rows the launch wrote (input/critiques.jsonl: a response, its prompt's turns and one
principle's two requests). For each, the model sees the conversation with the response as its
own answer, is asked the principle's critique request and answers it; then, with its critique
in the conversation, is asked the revision request, and its answer is the revision. Writes
revisions.jsonl; the web side (app/services/critique/recording.py) stores each revision that
says something new as a response with a "revision ≻ original" pair.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.schemas.critique import CritiqueHyperparameters
from worker.jobs.context import JobContext, JobResult
from worker.training.arguments import parse_hyperparameters
from worker.training.defaults import loading_arguments, pick_model_loading, record_loading
from worker.training.errors import JobInputError
from worker.training.evaluation import sample
from worker.training.loading import load_policy, load_tokenizer

INPUT_FILE = "critiques.jsonl"
OUTPUT_FILE = "revisions.jsonl"
# Rows critiqued and revised between two progress reports and stop checks.
CHUNK = 32
# The revisions' seeds are offset from the critiques', so the two never share a random stream.
REVISION_SEED_OFFSET = 1_000_003


def run(ctx: JobContext) -> JobResult:
    from transformers import set_seed

    params = parse_hyperparameters(CritiqueHyperparameters, ctx.hyperparameters)
    loading = pick_model_loading(ctx.device, None, None)
    set_seed(params.seed)
    rows = read_rows(ctx.input_dir)
    options = {
        "max_new_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    tokenizer = load_tokenizer(ctx.base_model_path)
    model = load_policy(ctx.base_model_path, **loading_arguments(loading)).to(ctx.device).eval()
    written: list[dict[str, Any]] = []
    for start in range(0, len(rows), CHUNK):
        if ctx.should_stop():
            return JobResult(metrics={}, model_dir=ctx.output_dir, role=None, stopped=True)
        chunk = rows[start : start + CHUNK]
        asked = [critique_conversation(row) for row in chunk]
        critiques = [
            clean(text)
            for text in sample(model, tokenizer, asked, seed=params.seed + start, **options)
        ]
        revised = [
            revision_conversation(conversation, critique, row)
            for conversation, critique, row in zip(asked, critiques, chunk, strict=True)
        ]
        revisions = [
            clean(text)
            for text in sample(
                model,
                tokenizer,
                revised,
                seed=params.seed + REVISION_SEED_OFFSET + start,
                **options,
            )
        ]
        written += [
            {"response_id": row["response_id"], "principle_id": row["principle_id"],
             "critique": critique, "revision": revision}
            for row, critique, revision in zip(chunk, critiques, revisions, strict=True)
        ]  # fmt: skip
        done = start + len(chunk)
        ctx.report(done, {"critiques": float(done)}, done / len(rows))
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    with (ctx.output_dir / OUTPUT_FILE).open("w", encoding="utf-8") as handle:
        for item in written:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    settings: dict[str, Any] = dict(options)
    record_loading(settings, loading)
    return JobResult(
        metrics={"critiques": float(len(written))},
        model_dir=ctx.output_dir,
        role=None,
        settings=settings,
    )


def critique_conversation(row: dict[str, Any]) -> list[dict[str, str]]:
    """The prompt, the response as the model's own answer, and the critique request."""
    return [
        *row["prompt"],
        {"role": "assistant", "content": row["content"]},
        {"role": "user", "content": row["critique_request"]},
    ]


def revision_conversation(
    asked: list[dict[str, str]], critique: str, row: dict[str, Any]
) -> list[dict[str, str]]:
    """The critique conversation, the critique, and the revision request."""
    return [
        *asked,
        {"role": "assistant", "content": critique},
        {"role": "user", "content": row["revision_request"]},
    ]


def clean(text: str) -> str:
    # A sampled NUL byte would be refused by PostgreSQL when the revision is stored.
    return text.replace("\x00", "").strip()


def read_rows(input_dir: Path | None) -> list[dict[str, Any]]:
    path = input_dir / INPUT_FILE if input_dir is not None else None
    if path is None or not path.is_file():
        raise JobInputError(f"the run's critiques (input/{INPUT_FILE}) are missing")
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if not rows:
        raise JobInputError("the run has no responses to critique")
    return rows

"""A finished generation or score run's output, stored in the caller's transaction.

Generation: every kept sample becomes a model Response carrying its run and sampling settings;
reward scores become ResponseScore rows; with a target queue, each prompt (and repeat) becomes
one comparison task whose candidates (the samples, the compare model's answer, a human
demonstration) are stored in a shuffled order, so position says nothing about the source.
Score: the reward model's scores replace its earlier scores of the same responses.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import (
    Demonstration,
    Queue,
    Response,
    ResponseScore,
    ResponseSource,
    Run,
    RunKind,
    Task,
    TaskResponse,
)
from app.schemas.generation import GenerateHyperparameters
from app.services.queues import chunks

SAMPLES_FILE = "samples.jsonl"
SCORES_FILE = "scores.jsonl"


def record_output(db: Session, run: Run, output: Path) -> dict[str, float]:
    """Stores the run's output file; returns the counts recorded on the run."""
    if run.kind == RunKind.generate:
        return _record_samples(db, run, output / SAMPLES_FILE)
    return _record_scores(db, run, output / SCORES_FILE)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _record_samples(db: Session, run: Run, path: Path) -> dict[str, float]:
    params = GenerateHyperparameters(**run.hyperparameters)
    settings = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_new_tokens": params.max_new_tokens,
        "seed": params.seed,
    }
    # Each source's own best-of-N, when it had one.
    best_of = {
        "policy": params.samples_per_prompt if params.best_of_n else 1,
        "compare": params.compare_best_of,
    }
    model_of = {"policy": run.base_model_id, "compare": params.compare_model_id}
    samples = list(_lines(path))
    responses = [
        Response(
            prompt_id=sample["prompt_id"],
            content=sample["content"],
            source=ResponseSource.model,
            model_id=model_of[sample["source"]],
            run_id=run.id,
            sampling={
                **settings,
                **({"best_of": best_of[sample["source"]]} if best_of[sample["source"]] > 1 else {}),
                "repeat": sample["repeat"],
                "sample": sample["sample"],
            },
        )
        for sample in samples
    ]
    db.add_all(responses)
    db.flush()
    scored = [
        ResponseScore(response_id=response.id, model_id=run.reward_model_id, run_id=run.id,
                      score=float(sample["score"]))
        for sample, response in zip(samples, responses, strict=True)
        if run.reward_model_id is not None and sample.get("score") is not None
    ]  # fmt: skip
    db.add_all(scored)
    counts: dict[str, float] = {"responses": len(responses), "scores": len(scored)}
    if params.target_queue_id is not None:
        counts |= _make_tasks(db, run, params, samples, responses)
    db.flush()
    return counts


def _make_tasks(
    db: Session,
    run: Run,
    params: GenerateHyperparameters,
    samples: list[dict[str, Any]],
    responses: list[Response],
) -> dict[str, float]:
    queue = db.get(Queue, params.target_queue_id)
    assert queue is not None
    groups: dict[tuple[int, int], dict[str, list[Response]]] = {}
    for sample, response in zip(samples, responses, strict=True):
        group = groups.setdefault((sample["prompt_id"], sample["repeat"]), {})
        group.setdefault(sample["source"], []).append(response)
    demonstrations = (
        _latest_demonstrations(db, sorted({prompt_id for prompt_id, _ in groups}))
        if params.include_demonstration
        else {}
    )
    made = skipped = 0
    for (prompt_id, repeat), by_source in groups.items():
        # Identical samples of one model are one candidate: comparing a text with itself
        # teaches nothing. Answers of different models stay, even when they read the same.
        candidates = list({r.content: r.id for r in by_source.get("policy", [])}.values())
        candidates += [r.id for r in by_source.get("compare", [])]
        if prompt_id in demonstrations:
            candidates.append(demonstrations[prompt_id])
        if len(candidates) < 2:
            skipped += 1
            continue
        random.Random(f"{run.id}:{prompt_id}:{repeat}").shuffle(candidates)
        task = Task(queue_id=queue.id, prompt_id=prompt_id, overlap=queue.overlap)
        db.add(task)
        db.flush()
        db.add_all(
            TaskResponse(task_id=task.id, response_id=response_id, position=position)
            for position, response_id in enumerate(candidates)
        )
        made += 1
    return {"tasks": made, "tasks_skipped": skipped}


def _latest_demonstrations(db: Session, prompt_ids: list[int]) -> dict[int, int]:
    """Each prompt's latest demonstration's response id, where it has one."""
    found: dict[int, int] = {}
    for chunk in chunks(prompt_ids):
        latest = (
            select(func.max(Demonstration.id))
            .where(Demonstration.prompt_id.in_(chunk), Demonstration.response_id.is_not(None))
            .group_by(Demonstration.prompt_id)
        )
        rows = db.execute(
            select(Demonstration.prompt_id, Demonstration.response_id).where(
                Demonstration.id.in_(latest)
            )
        )
        found.update({prompt_id: response_id for prompt_id, response_id in rows})
    return found


def _record_scores(db: Session, run: Run, path: Path) -> dict[str, float]:
    scores = {int(row["response_id"]): float(row["score"]) for row in _lines(path)}
    for chunk in chunks(sorted(scores)):
        db.execute(
            delete(ResponseScore).where(
                ResponseScore.model_id == run.reward_model_id,
                ResponseScore.response_id.in_(chunk),
            )
        )
    db.add_all(
        ResponseScore(response_id=rid, model_id=run.reward_model_id, run_id=run.id, score=value)
        for rid, value in scores.items()
    )
    db.flush()
    values = list(scores.values())
    return {
        "responses_scored": len(values),
        "mean_score": sum(values) / len(values) if values else 0.0,
    }

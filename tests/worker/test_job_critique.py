"""worker/jobs/critique.py on CPU with the tiny model: the conversations it asks (the response
as the model's own answer, the critique request; then its critique and the revision request),
one row per input row, the same rows again from the same seed, and a clear error without
input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.worker.job_support import Recorder, make_context
from worker.jobs import critique
from worker.training.errors import JobInputError

PROMPT = [{"role": "user", "content": "Tell me about the sea."}]
ROW = {
    "response_id": 7,
    "prompt": PROMPT,
    "content": "The sea is grim.",
    "principle_id": 3,
    "critique_request": "How is it unkind?",
    "revision_request": "Make it kind.",
}


def test_the_conversations_follow_constitutional_ai() -> None:
    asked = critique.critique_conversation(ROW)
    assert asked == [
        *PROMPT,
        {"role": "assistant", "content": "The sea is grim."},
        {"role": "user", "content": "How is it unkind?"},
    ]
    assert critique.revision_conversation(asked, "It is gloomy.", ROW) == [
        *asked,
        {"role": "assistant", "content": "It is gloomy."},
        {"role": "user", "content": "Make it kind."},
    ]
    assert critique.clean(" a\x00b \n") == "ab"


def run_job(root: Path, tiny: Path) -> tuple[list[dict[str, object]], Recorder]:
    folder = root / "input"
    folder.mkdir(parents=True)
    rows = [ROW, {**ROW, "response_id": 8, "principle_id": 4}]
    (folder / critique.INPUT_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
    recorder = Recorder()
    ctx = make_context(root, "critique", {"max_new_tokens": 8, "seed": 2}, tiny, None, recorder)
    result = critique.run(replace(ctx, input_dir=folder))
    assert (result.role, result.stopped, result.metrics) == (None, False, {"critiques": 2.0})
    lines = (result.model_dir / critique.OUTPUT_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines], recorder


def test_each_row_gets_a_critique_and_a_revision_reproducibly(tmp_path: Path, tiny: Path) -> None:
    written, recorder = run_job(tmp_path / "a", tiny)
    again, _ = run_job(tmp_path / "b", tiny)

    assert written == again
    assert [(row["response_id"], row["principle_id"]) for row in written] == [(7, 3), (8, 4)]
    assert all(
        set(row) == {"response_id", "principle_id", "critique", "revision"} for row in written
    )
    assert recorder.reports[-1] == (2, {"critiques": 2.0}, 1.0)


def test_missing_input_is_a_clear_error(tmp_path: Path, tiny: Path) -> None:
    ctx = make_context(tmp_path, "critique", {}, tiny, None, Recorder())
    with pytest.raises(JobInputError, match=r"input/critiques.jsonl\) are missing"):
        critique.run(ctx)

"""worker/jobs/judge.py on CPU with the tiny model: a reward judge writes the reward of every
response of every task, a generative judge writes a reply per task."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.worker.job_support import Recorder, make_context
from tests.worker.judge_support import tiny_reward_model
from worker.jobs import judge
from worker.training.errors import JobInputError
from worker.training.evaluation import score
from worker.training.loading import load_reward_model, load_tokenizer

PROMPT = [{"role": "user", "content": "Tell me about the sea."}]


def write_tasks(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir()
    (folder / "tasks.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_a_reward_judge_writes_each_responses_reward(tmp_path: Path, tiny: Path) -> None:
    reward_model = tiny_reward_model(tiny, tmp_path / "rm")
    contents = ["The sea is warm.", "The sea is cold.", "Waves."]
    rows = [
        {"task_id": 3, "prompt_id": 1, "response_ids": [7, 8, 9], "messages": PROMPT,
         "contents": contents},
        {"task_id": 4, "prompt_id": 1, "response_ids": [8, 9], "messages": PROMPT,
         "contents": contents[1:]},
    ]  # fmt: skip
    recorder = Recorder()
    ctx = replace(
        make_context(tmp_path, "judge", {"mode": "reward"}, reward_model, None, recorder),
        input_dir=write_tasks(tmp_path / "input", rows),
    )
    result = judge.run(ctx)
    written = [
        json.loads(line)
        for line in (result.model_dir / "judgements.jsonl").read_text().splitlines()
    ]
    tokenizer = load_tokenizer(reward_model)
    model = load_reward_model(reward_model, pad_token_id=tokenizer.pad_token_id).eval()
    expected = score(model, tokenizer, [PROMPT] * 3, contents)
    assert [(row["task_id"], row["response_ids"]) for row in written] == [
        (3, [7, 8, 9]),
        (4, [8, 9]),
    ]
    assert written[0]["rewards"] == pytest.approx(expected, abs=1e-5)
    assert written[1]["rewards"] == pytest.approx(expected[1:], abs=1e-5)
    assert recorder.reports == [(2, {"judged": 2.0}, 1.0)]


def test_a_generative_judge_writes_a_reply_per_task(tmp_path: Path, tiny: Path) -> None:
    ask = [{"role": "user", "content": "Rank A and B. Ranking:"}]
    rows = [
        {"task_id": None, "prompt_id": 2, "response_ids": [5, 6], "judge_messages": ask},
        {"task_id": 9, "prompt_id": 3, "response_ids": [1, 2], "judge_messages": ask},
    ]
    params = {"mode": "generative", "max_new_tokens": 6}
    ctx = replace(
        make_context(tmp_path, "judge", params, tiny, None, Recorder()),
        input_dir=write_tasks(tmp_path / "input", rows),
    )
    result = judge.run(ctx)
    written = [
        json.loads(line)
        for line in (result.model_dir / "judgements.jsonl").read_text().splitlines()
    ]
    assert [(row["task_id"], row["prompt_id"]) for row in written] == [(None, 2), (9, 3)]
    # Greedy: the same prompt gets the same reply.
    assert written[0]["reply"] == written[1]["reply"]
    assert isinstance(written[0]["reply"], str)


def test_missing_tasks_are_a_clear_error(tmp_path: Path, tiny: Path) -> None:
    ctx = make_context(tmp_path, "judge", {"mode": "reward"}, tiny, None, Recorder())
    with pytest.raises(JobInputError, match=r"input/tasks.jsonl\) are missing"):
        judge.run(ctx)

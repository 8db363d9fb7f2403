"""A learnable synthetic preference, for tests, the demo and the benchmark.

Every prompt asks about a topic; a chosen answer describes it with two words from POSITIVE, a
rejected one with two from NEGATIVE. A reward model learns that from a few hundred pairs, DPO
moves its implicit reward towards it, and a policy that says both kinds of thing can be pushed
towards the chosen kind by PPO/RLOO. Rows come in the snapshot row shapes of
app.services.snapshots.formats (same columns, same order), so `write_snapshot_folder` writes a
folder the jobs read exactly like one the snapshot service made.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

# The world's words live with the simulated labelers (app/simulation/world.py), which judge and
# write in the same language these rows teach; that module is pure Python, no web app.
from app.simulation.world import (
    ANSWER,
    NEGATIVE,
    POSITIVE,
    TEMPLATES,
    TOPICS,
    answer,
    describe,
    make_prompt,
)

__all__ = [
    "ANSWER",
    "NEGATIVE",
    "POSITIVE",
    "TEMPLATES",
    "TOPICS",
    "Kind",
    "corpus",
    "preference_rows",
    "prompt_rows",
    "sft_rows",
    "write_snapshot_folder",
]

Kind = Literal["sft", "preference", "prompts"]


def corpus() -> list[str]:
    """The texts the tiny tokenizer is trained on: every word the synthetic rows use, in the
    sentences they use them in, and a little general English."""
    texts = [template.format(topic=topic) for template in TEMPLATES for topic in TOPICS]
    for words in (POSITIVE, NEGATIVE):
        for topic in TOPICS:
            texts.append(answer(topic, words[0], words[1]))
        texts.extend(" ".join(words[index:] + words[:index]) for index in range(len(words)))
    texts.extend(
        [
            "You are a helpful assistant. Answer the question clearly and briefly.",
            "Write a short poem about the weather in the morning.",
            "Summarize the text below in one sentence, please.",
            "Thank you! That was very helpful, could you explain it again?",
            "The quick brown fox jumps over the lazy dog 0123456789.",
        ]
    )
    return texts


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def preference_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Pairs in the PREFERENCE shape; `margin` is a 1-7 score difference (1 to 4)."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        prompt = make_prompt(rng)
        rows.append(
            {
                "prompt": _user(prompt),
                "chosen": _assistant(describe(rng, prompt, POSITIVE)),
                "rejected": _assistant(describe(rng, prompt, NEGATIVE)),
                "margin": float(rng.randint(1, 4)),
                "weight": 1.0,
                "labeler_id": 1 + index % 3,
                "comparison_id": index + 1,
                "pair_id": index + 1,
                "flags_chosen": [],
                "flags_rejected": [],
                "guideline_version_id": 1,
                "task_id": index + 1,
                "prompt_id": index + 1,
                "chosen_response_id": 2 * index + 1,
                "rejected_response_id": 2 * index + 2,
            }
        )
    return rows


def sft_rows(count: int, seed: int = 0, positive_share: float = 1.0) -> list[dict[str, Any]]:
    """Demonstrations in the SFT shape: a prompt and an answer, positive with probability
    `positive_share` (below 1, a policy that says both kinds of thing, for PPO/RLOO)."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        prompt = make_prompt(rng)
        words = POSITIVE if rng.random() < positive_share else NEGATIVE
        rows.append(
            {
                "messages": _user(prompt) + _assistant(describe(rng, prompt, words)),
                "prompt_id": index + 1,
                "demonstration_id": index + 1,
                "task_id": None,
                "labeler_id": 1 + index % 3,
                "guideline_version_id": 1,
            }
        )
    return rows


def prompt_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Prompts in the PROMPTS shape."""
    rng = random.Random(seed)
    return [{"prompt": _user(make_prompt(rng)), "prompt_id": index + 1} for index in range(count)]


def write_snapshot_folder(
    folder: Path,
    kind: Kind,
    rows: list[dict[str, Any]],
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Path:
    """A snapshot folder (JSONL, Parquet, datasets/) written by the snapshot service's own
    writer, split by prompt like the service splits it. For data too large or too synthetic to
    go through the database; imports the web app's snapshot code, so not for the benchmark."""
    from app.services.snapshots import formats
    from app.services.snapshots.writers import SnapshotWriter, content_hash, finish_datasets_folder

    schema = {"sft": formats.SFT, "preference": formats.PREFERENCE, "prompts": formats.PROMPTS}[
        kind
    ]
    prompt_column = "messages" if kind == "sft" else "prompt"
    test = [formats.in_test(seed, row[prompt_column][0]["content"], test_fraction) for row in rows]
    folder.mkdir(parents=True)
    with SnapshotWriter(folder, schema) as writer:
        writer.write(formats.chunk_from_rows(rows, schema, test))
    finish_datasets_folder(folder, content_hash(folder), f"synthetic {kind} rows")
    return folder

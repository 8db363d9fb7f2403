"""Row shapes (TRL's dataset formats), their Arrow schemas, canonical JSON and the split.

TRL reads these without conversion: conversational `messages` for SFTTrainer; `prompt`,
`chosen`, `rejected` as lists of {"role", "content"} for RewardTrainer and DPOTrainer (the
prompt turns apart from the chosen/rejected assistant turn); `prompt`, `completion`, `label`
for KTOTrainer; `prompt` alone for online trainers. Every other column is provenance, which
the trainers ignore.

Canonical JSON, the bytes a snapshot's content hash is taken over: one row per line, keys in
the order of the row's schema below, no spaces (separators "," and ":"), UTF-8 without
escaping non-ASCII, "\\n" after every line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

TURN = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(TURN)
FLAGS = pa.list_(pa.string())
ID = pa.int64()
HASH_SPACE = 2**256

SFT = pa.schema(
    [
        ("messages", MESSAGES),
        ("prompt_id", ID),
        ("demonstration_id", ID),
        ("task_id", ID),
        ("labeler_id", ID),
        ("guideline_version_id", ID),
    ]
)
PREFERENCE = pa.schema(
    [
        ("prompt", MESSAGES),
        ("chosen", MESSAGES),
        ("rejected", MESSAGES),
        ("margin", pa.float64()),
        ("weight", pa.float64()),
        ("labeler_id", ID),
        ("comparison_id", ID),
        ("pair_id", ID),
        ("flags_chosen", FLAGS),
        ("flags_rejected", FLAGS),
        ("guideline_version_id", ID),
        ("task_id", ID),
        ("prompt_id", ID),
        ("chosen_response_id", ID),
        ("rejected_response_id", ID),
    ]
)
# A preference snapshot's columns: the margin only when asked for (SnapshotCreate.margin);
# consensus rows have no labeler, comparison or pair, so not those columns either.
CONSENSUS_ONLY_ABSENT = ("labeler_id", "comparison_id", "pair_id")


def preference_schema(*, margin: bool, consensus: bool) -> pa.Schema:
    absent = {"margin"} if not margin else set()
    if consensus:
        absent |= set(CONSENSUS_ONLY_ABSENT)
    return pa.schema([field for field in PREFERENCE if field.name not in absent])


PROMPTS = pa.schema([("prompt", MESSAGES), ("prompt_id", ID)])
JUDGEMENT_ITEM = pa.struct(
    [
        ("response_id", ID),
        ("completion", MESSAGES),
        ("score", ID),
        ("rank", ID),
        ("flags", FLAGS),
        ("flag_note", pa.string()),
    ]
)
RAW = pa.schema(
    [
        ("prompt", MESSAGES),
        ("items", pa.list_(JUDGEMENT_ITEM)),
        ("all_unacceptable", pa.bool_()),
        ("comment", pa.string()),
        ("comparison_id", ID),
        ("task_id", ID),
        ("labeler_id", ID),
        ("source", pa.string()),
        ("guideline_version_id", ID),
        ("time_spent_seconds", pa.float64()),
        ("created_at", pa.string()),
        ("prompt_id", ID),
    ]
)
KTO = pa.schema(
    [
        ("prompt", MESSAGES),
        ("completion", MESSAGES),
        ("label", pa.bool_()),
        ("score", ID),
        ("flags", FLAGS),
        ("comparison_id", ID),
        ("labeler_id", ID),
        ("guideline_version_id", ID),
        ("task_id", ID),
        ("prompt_id", ID),
        ("response_id", ID),
    ]
)


def dumps(row: dict[str, Any]) -> str:
    """One row as canonical JSON (without its newline)."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def turns(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Stored messages as {"role", "content"} turns in that key order."""
    return [{"role": message["role"], "content": message["content"]} for message in messages]


def assistant(content: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": content}]


def in_test(seed: int, prompt_hash: str, test_fraction: float) -> bool:
    """Whether a prompt's rows go to the test split: a hash of the seed and the prompt's
    content, so every row of a prompt lands on the same side, and the same side every run."""
    return splitter(seed, test_fraction)(prompt_hash)


def splitter(seed: int, test_fraction: float) -> Callable[[str], bool]:
    """`in_test` for one seed and fraction, for many prompts (the seed's bytes made once)."""
    prefix = f"{seed}:".encode()
    sha256, from_bytes = hashlib.sha256, int.from_bytes

    def split(prompt_hash: str) -> bool:
        # The digest as a number (what int(hexdigest, 16) gives) over 2**256.
        digest = sha256(prefix + prompt_hash.encode()).digest()
        return from_bytes(digest, "big") / HASH_SPACE < test_fraction

    return split


@dataclass(frozen=True)
class Chunk:
    """A slice of rows in both forms (`lines`: each row's canonical JSON and its newline, as
    one Arrow array whose data buffer is the JSONL text), and which rows belong to the test
    split.

    `lines` may also be a function that makes that array: the writer calls it on its own
    thread, so work that runs in Arrow without Python's lock overlaps the making of the next
    chunk."""

    table: pa.Table
    lines: pa.Array | Callable[[], pa.Array]
    test: np.ndarray

    def jsonl(self) -> pa.Array:
        """The lines, made now if they were left for later."""
        return self.lines() if callable(self.lines) else self.lines


def chunk_from_rows(rows: list[dict[str, Any]], schema: pa.Schema, test: list[bool]) -> Chunk:
    if any(list(row) != schema.names for row in rows):
        raise ValueError("a row's keys differ from its schema's columns")
    table = pa.Table.from_pylist(rows, schema=schema)
    lines = pa.array([dumps(row) + "\n" for row in rows], pa.large_string())
    return Chunk(table, lines, np.array(test, dtype=bool))

"""Preference rows of labeler pairs (source "pairs"), the million-row path.

At a million rows the cost is in Python objects, so nothing here is made per row: the pairs
come from the driver's cursor as four packed integers and a float (two 31-bit ids in one
int64, a NULL as NONE_ID), every column is then a numpy or Arrow array, each distinct prompt,
response and flag list is encoded once and repeated by index (prompts and responses read
as plain text by id, those of the chunk before kept for the next), and the JSONL lines are
joined by Arrow from those pieces, on the writer's thread. The collector is paused while a
chunk is made. The consensus weights come from one consensus of the project. What the rows
hold is described in preference.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import BigInteger, ColumnElement, Text, case, cast, func, select
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem, LabelSource, Pair, Prompt, Response, Task
from app.schemas.snapshots import SnapshotFilters
from app.services.agreement.consensus import consensus
from app.services.agreement.loading import load_ratings
from app.services.agreement.reliability import CACHE, fingerprint, project_reliability
from app.services.snapshots.filters import agreeing_tasks, label_conditions
from app.services.snapshots.formats import (
    FLAGS,
    MESSAGES,
    TURN,
    Chunk,
    preference_schema,
    splitter,
)
from app.services.snapshots.rawsql import gc_paused, ids_in, raw_batches

BATCH = 100_000  # rows per fetch and per Parquet row group
ID_CHUNK = 50_000  # ids per IN (...) list
ID_BITS = 31
NONE_ID = 2**ID_BITS - 1
TEXT = pa.large_string()


def _packed(high: Any, low: Any) -> Any:
    return cast(high, BigInteger) * 2**ID_BITS + low


def _split(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return packed >> ID_BITS, packed & NONE_ID


def _check_id_range(db: Session) -> None:
    for model in (Pair, Comparison, Prompt, Response, Task):
        top = db.scalar(select(func.max(model.id))) or 0
        if top >= NONE_ID:
            raise ValueError(f"{model.__tablename__} ids reach 2**31: too large to export")


def _prompt_of_pair(db: Session, project_id: int) -> ColumnElement[int]:
    """What the pairs join their prompt on. SQLite keeps no statistics (nothing runs ANALYZE)
    and so takes the prompts' project index as the most selective start, then sorts every
    pair by id (a second a million rows, and the sort's memory). When the project holds most
    of the prompts, `prompt_id + 0` (no index can serve it) leaves it the plan that reads the
    pairs in id order; other filters still pick their own indexes."""
    if db.get_bind().dialect.name != "sqlite":
        return Pair.prompt_id
    total = db.scalar(select(func.count()).select_from(Prompt)) or 0
    mine = db.scalar(select(func.count()).where(Prompt.project_id == project_id)) or 0
    return Pair.prompt_id + 0 if 2 * mine >= total else Pair.prompt_id


class Weights:
    """The export weight of every consensus pair of a project, looked up by array."""

    def __init__(self, db: Session, project_id: int) -> None:
        ratings = load_ratings(db, project_ids=[project_id])
        # The reliability task_consensus uses (its cache, filled the same way when empty).
        key = fingerprint(db, project_id)
        reliability = CACHE.get(project_id, key, lambda: project_reliability(ratings))
        found = consensus(ratings, reliability)
        self.judged = np.unique(np.asarray(ratings.judgement_task, dtype=np.int64))
        first = found.pair_task.astype(np.int64) * 2**ID_BITS + found.winner
        self.firsts = np.unique(first)
        keys = np.searchsorted(self.firsts, first) * 2**ID_BITS + found.loser
        order = np.argsort(keys)
        self.keys, self.weight = keys[order], found.weight[order]

    def of(self, task: np.ndarray, winner: np.ndarray, loser: np.ndarray) -> pa.Array:
        """Weights (0 for a pair its task's consensus does not order so; null for a pair of
        no task or of a task without labeler judgements)."""
        weight = np.zeros(task.size)
        first = task * 2**ID_BITS + winner
        at = np.minimum(np.searchsorted(self.firsts, first), max(self.firsts.size - 1, 0))
        has_first = self.firsts[at] == first if self.firsts.size else np.zeros(task.size, bool)
        key = at * 2**ID_BITS + loser
        where = np.minimum(np.searchsorted(self.keys, key), max(self.keys.size - 1, 0))
        hit = has_first & (self.keys[where] == key) if self.keys.size else has_first
        weight[hit] = self.weight[where[hit]]
        judged = np.isin(task, self.judged) & (task != NONE_ID)
        return pa.array(weight, pa.float64(), mask=~judged)


def pair_chunks(
    db: Session, project_id: int, filters: SnapshotFilters, *, margin: bool = False
) -> Iterator[Chunk]:
    """Labeler and imported pairs (and AI pairs, as `filters.label_sources` says, each row
    repeated by its source's weight); with `margin`, a margin column (0.0 for unscored
    pairs)."""
    _check_id_range(db)
    schema = preference_schema(margin=margin, consensus=False)
    keep = (
        None
        if filters.min_agreement is None
        else np.array(sorted(agreeing_tasks(db, project_id, filters.min_agreement)), np.int64)
    )
    weights = Weights(db, project_id)
    none = NONE_ID
    query = (
        select(
            _packed(Pair.id, Pair.comparison_id),
            _packed(Pair.prompt_id, func.coalesce(Comparison.task_id, none)),
            _packed(Pair.winner_response_id, Pair.loser_response_id),
            _packed(
                func.coalesce(Comparison.labeler_id, none),
                func.coalesce(Comparison.guideline_version_id, none),
            ),
            Pair.margin,
            case((Comparison.source == LabelSource.ai.value, 1), else_=0),
        )
        .join(Comparison, Comparison.id == Pair.comparison_id)
        .join(Prompt, Prompt.id == _prompt_of_pair(db, project_id))
        .outerjoin(Task, Task.id == Comparison.task_id)
        .where(*label_conditions(Comparison, project_id, filters))
        .order_by(Pair.id)
    )
    known = _Known()
    batches = raw_batches(db, query, BATCH, "snapshot_pairs")
    while True:
        with gc_paused():  # never across a yield: the caller's code runs with it on
            rows = next(batches, None)
            if rows is None:
                return
            columns = list(zip(*rows, strict=True))
            del rows
            ints = [np.array(column, dtype=np.int64) for column in columns[:4]]
            margins = pa.array(columns[4], pa.float64()).fill_null(0.0)
            ai = np.array(columns[5], dtype=bool)
            del columns
            chunk = _chunk(db, ints, margins, ai, weights, keep, filters, known, schema)
        if chunk is not None:
            yield chunk


def _chunk(
    db: Session,
    ints: list[np.ndarray],
    margin: pa.Array,
    ai: np.ndarray,
    weights: Weights,
    keep: np.ndarray | None,
    filters: SnapshotFilters,
    known: _Known,
    schema: pa.Schema,
) -> Chunk | None:
    pair, comparison = _split(ints[0])
    prompt, task = _split(ints[1])
    winner, loser = _split(ints[2])
    labeler, version = _split(ints[3])
    flags_chosen, flags_rejected, flag_lists = _flags(db, comparison, winner, loser)
    wanted = np.ones(pair.size, dtype=bool)
    if keep is not None:
        wanted &= np.isin(task, keep)
    if filters.exclude_flagged:
        empty = np.array([not found for found in flag_lists], dtype=bool)
        wanted &= empty[flags_chosen] & empty[flags_rejected]
    if not wanted.any():
        return None
    index = np.flatnonzero(wanted)
    weighted = (filters.human_weight, filters.ai_weight) != (1, 1)
    if weighted:
        # A source's weight is how many times each of its rows is written (SnapshotFilters).
        index = np.repeat(index, np.where(ai, filters.ai_weight, filters.human_weight)[index])
    if weighted or not wanted.all():
        (pair, comparison, prompt, task, winner, loser, labeler, version) = (
            column[index]
            for column in (pair, comparison, prompt, task, winner, loser, labeler, version)
        )
        flags_chosen, flags_rejected = flags_chosen[index], flags_rejected[index]
        margin = margin.take(pa.array(index, pa.int64()))

    prompt_ids, prompt_at = np.unique(prompt, return_inverse=True)
    prompt_json, prompt_values, prompt_test = _prompts(db, prompt_ids, filters, known)
    response_ids, response_at = np.unique(np.concatenate([winner, loser]), return_inverse=True)
    response_json, response_values = _responses(db, response_ids, known)
    chosen_at, rejected_at = response_at[: pair.size], response_at[pair.size :]
    flag_json = pa.array([_dumps(found) for found in flag_lists], TEXT)
    flag_values = pa.array(flag_lists, FLAGS)
    weight = weights.of(task, winner, loser)

    def ids(values: np.ndarray) -> pa.Array:
        return pa.array(values, pa.int64(), mask=values == NONE_ID)

    by_name: dict[str, pa.Array] = {
        "prompt": prompt_values.take(prompt_at),
        "chosen": response_values.take(chosen_at),
        "rejected": response_values.take(rejected_at),
        "margin": margin,
        "weight": weight,
        "labeler_id": ids(labeler),
        "comparison_id": ids(comparison),
        "pair_id": ids(pair),
        "flags_chosen": flag_values.take(flags_chosen),
        "flags_rejected": flag_values.take(flags_rejected),
        "guideline_version_id": ids(version),
        "task_id": ids(task),
        "prompt_id": ids(prompt),
        "chosen_response_id": ids(winner),
        "rejected_response_id": ids(loser),
    }
    table = pa.Table.from_arrays([by_name[name] for name in schema.names], schema=schema)
    # Only the floats need Python to become text; the rest of each line is Arrow's work,
    # left to the writer's thread (see Chunk).
    floats = {"margin": _float_text(margin), "weight": _float_text(weight)}

    def lines() -> pa.Array:
        text = {
            "prompt": prompt_json.take(prompt_at),
            "chosen": response_json.take(chosen_at),
            "rejected": response_json.take(rejected_at),
            "flags_chosen": flag_json.take(flags_chosen),
            "flags_rejected": flag_json.take(flags_rejected),
            **floats,
        }
        pieces: list[Any] = []
        for index, name in enumerate(schema.names):
            pieces.append(pa.scalar(("{" if index == 0 else ",") + f'"{name}":', TEXT))
            if name in text:
                pieces.append(text[name])
            else:
                pieces.append(pc.fill_null(pc.cast(by_name[name], TEXT), "null"))
        pieces.append(pa.scalar("}\n", TEXT))
        return pc.binary_join_element_wise(*pieces, pa.scalar("", TEXT))

    return Chunk(table, lines, prompt_test[prompt_at])


def _flags(
    db: Session, comparison: np.ndarray, winner: np.ndarray, loser: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """(index of each row's chosen flags, of its rejected flags, the distinct flag lists).

    Only items with flags are read (most have none), those of the batch's comparison range."""
    low, high = int(comparison.min()), int(comparison.max())
    query = select(
        _packed(ComparisonItem.comparison_id, ComparisonItem.response_id),
        cast(ComparisonItem.flags, Text),
    ).where(
        ComparisonItem.comparison_id.between(low, high),
        func.length(cast(ComparisonItem.flags, Text)) > 2,
    )
    keys: list[int] = []
    codes: list[int] = []
    lists: list[list[str]] = [[]]
    code_of: dict[str, int] = {}
    for rows in raw_batches(db, query, BATCH, "snapshot_flags"):
        for key, text in rows:
            if text not in code_of:
                code_of[text] = len(lists)
                lists.append([str(flag) for flag in json.loads(text) or []])
            keys.append(key)
            codes.append(code_of[text])
    key_array = np.array(keys, dtype=np.int64)
    order = np.argsort(key_array)
    key_array, code_array = key_array[order], np.array(codes, dtype=np.int64)[order]

    def lookup(response: np.ndarray) -> np.ndarray:
        if key_array.size == 0:
            return np.zeros(response.size, dtype=np.int64)
        wanted = comparison * 2**ID_BITS + response
        at = np.minimum(np.searchsorted(key_array, wanted), key_array.size - 1)
        return np.where(key_array[at] == wanted, code_array[at], 0)

    return lookup(winner), lookup(loser), lists


class _PromptText(NamedTuple):
    """A prompt as the rows need it: its canonical JSON, its turns' roles and contents (for
    the Arrow column) and whether it is in the test split."""

    json: str
    roles: list[Any]
    contents: list[Any]
    test: bool


class _Known:
    """The prompts and responses the previous chunk read, for the next one: pairs in id order
    mostly share their neighbours' prompts and responses (a comparison's pairs are made
    together), so a chunk boundary seldom reads one again, and what is kept stays one chunk's
    worth."""

    def __init__(self) -> None:
        self.prompts: dict[int, _PromptText] = {}
        self.responses: dict[int, str] = {}


def _missing(wanted: list[int], found: dict[int, Any]) -> np.ndarray:
    return np.array([key for key in wanted if key not in found], dtype=np.int64)


def _prompts(
    db: Session, ids: np.ndarray, filters: SnapshotFilters, known: _Known
) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """(canonical JSON of each prompt's turns, the turns as Arrow, whether it is in test), in
    the order of `ids`. Each prompt is decoded, encoded and hashed once, from its stored
    JSON text (the JSON type's result processing is what the ORM would spend its time on)."""
    wanted = ids.tolist()
    found = {key: known.prompts[key] for key in wanted if key in known.prompts}
    missing = _missing(wanted, found)
    split = splitter(filters.seed, filters.test_fraction)
    for start in range(0, missing.size, ID_CHUNK):
        query = select(Prompt.id, cast(Prompt.messages, Text), Prompt.content_hash).where(
            ids_in(Prompt.id, missing[start : start + ID_CHUNK])
        )
        for rows in raw_batches(db, query, BATCH, "snapshot_prompts"):
            for prompt_id, text, content_hash in rows:
                found[prompt_id] = _prompt_text(text, content_hash, split)
    known.prompts = found
    entries = [found[key] for key in wanted]
    counts = np.fromiter((len(entry.roles) for entry in entries), np.int32, len(entries))
    offsets = np.zeros(len(entries) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    roles = pa.array(list(chain.from_iterable(entry.roles for entry in entries)), pa.string())
    contents = pa.array(list(chain.from_iterable(entry.contents for entry in entries)), pa.string())
    turns = pa.StructArray.from_arrays([roles, contents], fields=list(TURN))
    return (
        pa.array([entry.json for entry in entries], TEXT),
        pa.ListArray.from_arrays(pa.array(offsets), turns, type=MESSAGES),
        np.fromiter((entry.test for entry in entries), bool, len(entries)),
    )


def _prompt_text(text: str, content_hash: str, split: Callable[[str], bool]) -> _PromptText:
    messages = json.loads(text)
    roles = [message["role"] for message in messages]
    contents = [message["content"] for message in messages]
    try:
        # What json.dumps writes for turns of strings, without its per-call machinery: the
        # same string encoder (it refuses anything but a string), the same separators.
        turns = [
            f'{{"role":{encode_basestring(role)},"content":{encode_basestring(content)}}}'
            for role, content in zip(roles, contents, strict=True)
        ]
        canonical = f"[{','.join(turns)}]"
    except TypeError:
        canonical = _dumps(
            [
                {"role": role, "content": content}
                for role, content in zip(roles, contents, strict=True)
            ]
        )
    return _PromptText(canonical, roles, contents, split(content_hash))


def _responses(db: Session, ids: np.ndarray, known: _Known) -> tuple[pa.Array, pa.Array]:
    """(canonical JSON of each response as one assistant turn, the turns as Arrow)."""
    wanted = ids.tolist()
    found = {key: known.responses[key] for key in wanted if key in known.responses}
    missing = _missing(wanted, found)
    for start in range(0, missing.size, ID_CHUNK):
        query = select(Response.id, Response.content).where(
            ids_in(Response.id, missing[start : start + ID_CHUNK])
        )
        for rows in raw_batches(db, query, BATCH, "snapshot_responses"):
            found.update(rows)
    known.responses = found
    ordered = [found[key] for key in wanted]
    content = pa.array(ordered, pa.string())
    as_json = pa.array(
        [f'[{{"role":"assistant","content":{encode_basestring(text)}}}]' for text in ordered],
        TEXT,
    )
    role = pa.array(np.full(len(ordered), "assistant", dtype=object), pa.string())
    turn = pa.StructArray.from_arrays([role, content], fields=list(TURN))
    offsets = pa.array(np.arange(len(ordered) + 1, dtype=np.int32))
    return as_json, pa.ListArray.from_arrays(offsets, turn, type=MESSAGES)


def _float_text(values: pa.Array) -> pa.Array:
    """Each float as Python's repr (what json.dumps writes), null as "null"; repr is taken
    once per distinct bit pattern (so -0.0 and 0.0 stay apart)."""
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    bits = values.fill_null(0.0).to_numpy().view(np.int64)
    distinct, at = np.unique(bits, return_inverse=True)
    text = pa.array([repr(value) for value in distinct.view(np.float64).tolist()], TEXT)
    return pc.fill_null(text.take(pa.array(at, pa.int64(), mask=~valid)), "null")


def _dumps(value: Sequence[Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

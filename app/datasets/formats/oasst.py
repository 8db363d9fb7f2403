"""Open-Assistant message-tree exports: one tree per row (`message_tree_id` and a `prompt`
message with nested `replies`), or flat messages (`message_id`, `parent_id`, `role`
"prompter"/"assistant", `text`, `rank`), each tree's messages together, as in oasst1.

Every prompter message becomes a record: the conversation down to it and its replies as
candidates (Open-Assistant's 0-based ranks + 1, ties kept, unranked replies without a rank).
With at least two ranked replies they form a comparison and the top-ranked reply is also a
demonstration; a reply that is not compared is still imported as a response, with a warning
naming it. Deleted messages are left out with their replies and counted apart (never an
error). A tree with a bad message is one RowError that accounts for all its rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.datasets.files import NumberedRow, RowItem
from app.datasets.formats.common import RowProblem, text_value
from app.datasets.records import Candidate, Record, RowError, Turn

NAME = "oasst"
COLUMNS = (("message_id", "parent_id", "role", "text"), ("message_tree_id", "prompt"))
_ROLES = {"prompter": "user", "assistant": "assistant"}


def detect(first_rows: Sequence[dict[str, Any]]) -> bool:
    row = first_rows[0]
    tree_row = isinstance(row.get("prompt"), dict) and "message_tree_id" in row
    return tree_row or {"message_id", "parent_id", "role", "text"} <= row.keys()


@dataclass
class Message:
    id: str
    parent_id: str | None
    role: str
    text: str
    rank: int | None
    line: int
    deleted: bool
    replies: list[Message] = field(default_factory=list)


def message(row: dict[str, Any], line: int, parent_id: str | None) -> Message:
    message_id = row.get("message_id")
    if not isinstance(message_id, str | int) or message_id == "":
        raise RowProblem("a message has no message_id")
    what = f"message '{message_id}'"
    role = row.get("role")
    if role not in _ROLES:
        raise RowProblem(f"{what} has role {role!r}, not 'prompter' or 'assistant'")
    rank = row.get("rank")
    if isinstance(rank, str) and rank.strip().isdigit():
        rank = int(rank)  # a CSV export
    elif rank == "" or (isinstance(rank, float) and rank != rank):
        rank = None  # an empty CSV cell, or a missing value in a Parquet export
    elif isinstance(rank, float) and rank.is_integer():
        rank = int(rank)
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 0):
        raise RowProblem(f"{what} has rank {rank!r}, not a whole number from 0")
    deleted = row.get("deleted") in (True, "true", "True")
    text = row.get("text")
    return Message(
        id=str(message_id),
        parent_id=parent_id,
        role=role,
        text=str(text or "") if deleted else text_value(text, f"{what}'s text"),
        rank=rank,
        line=line,
        deleted=deleted,
    )


def nested(row: dict[str, Any], line: int) -> Message:
    """The tree of one `prompt` row, built without recursion (trees can be deep)."""
    root = message(row["prompt"], line, None)
    pending = [(row["prompt"], root)]
    while pending:
        raw, parent = pending.pop()
        replies = raw.get("replies") or []
        if not isinstance(replies, list):
            raise RowProblem(f"message '{parent.id}': replies must be a list")
        for reply in replies:
            if not isinstance(reply, dict):
                raise RowProblem(f"message '{parent.id}': a reply is not an object")
            child = message(reply, line, parent.id)
            parent.replies.append(child)
            pending.append((reply, child))
    return root


def flat(rows: Sequence[NumberedRow], tree_id: str) -> Message:
    messages: dict[str, Message] = {}
    for item in rows:
        parent = item.row.get("parent_id")
        try:
            found = message(item.row, item.line, None if parent in (None, "") else str(parent))
        except RowProblem as problem:
            raise RowProblem(str(problem), item.line) from None
        if found.id in messages:
            raise RowProblem(f"message '{found.id}' appears twice", item.line)
        messages[found.id] = found
    roots = []
    for found in messages.values():
        if found.parent_id is None:
            roots.append(found)
        elif found.parent_id not in messages:
            raise RowProblem(
                f"message '{found.id}' replies to '{found.parent_id}', "
                f"which is not in tree '{tree_id}'",
                found.line,
            )
        else:
            messages[found.parent_id].replies.append(found)
    if len(roots) != 1:
        raise RowProblem(f"tree '{tree_id}' has {len(roots)} first messages, not one")
    return roots[0]


def _size(root: Message) -> int:
    size, pending = 0, [root]
    while pending:
        size += 1
        pending.extend(pending.pop().replies)
    return size


def _reply_warnings(current: Message, replies: list[Message], ranked: int) -> list[RowError]:
    """Replies kept as responses but not compared: an unranked one, or all of them when fewer
    than two are ranked (a lone reply, the usual leaf of a tree)."""
    if ranked >= 2:
        return [
            RowError(
                reply.line,
                f"message '{reply.id}' has no rank among its siblings; "
                "kept as a response, not compared",
            )
            for reply in replies
            if reply.rank is None
        ]
    return [
        RowError(
            reply.line,
            f"message '{reply.id}' is not compared: fewer than two replies to "
            f"'{current.id}' are ranked; kept as a response",
        )
        for reply in replies
    ]


def tree_records(root: Message, tree_id: str, *, one_row: bool) -> list[Record | RowError]:
    """Every message is accounted for: a prompter message is a record (its prompt, its replies
    as candidates), an assistant message a candidate in its parent's record, and a deleted
    one is reported with its replies. `one_row`: the whole tree is one row of the file (the
    nested form), so its first record stands for that row and carries every remark."""
    if root.role != "prompter":
        raise RowProblem(f"tree '{tree_id}' starts with an assistant message")
    records: list[Record] = []
    left_out: list[RowError] = []
    remarks: list[RowError] = []
    pending: list[tuple[Message, tuple[Turn, ...]]] = [(root, ())]
    while pending:
        current, before = pending.pop()
        if current.deleted:
            left_out.append(
                RowError(
                    current.line,
                    f"message '{current.id}' is deleted; left out with its "
                    f"{_size(current) - 1} replies",
                    rows=_size(current),
                    deleted=True,
                )
            )
            continue
        path = (*before, Turn(_ROLES[current.role], current.text))  # type: ignore[arg-type]
        for reply in current.replies:
            if reply.role == current.role:
                raise RowProblem(
                    f"message '{reply.id}' ({reply.role}) replies to a message of the same role",
                    reply.line,
                )
            pending.append((reply, path))
        if current.role != "prompter":
            continue
        replies = [reply for reply in current.replies if not reply.deleted]
        ranked = [reply for reply in replies if reply.rank is not None]
        warnings = _reply_warnings(current, replies, len(ranked))
        top = min(ranked, key=lambda reply: reply.rank or 0) if len(ranked) >= 2 else None
        remarks.extend(warnings)
        records.append(
            Record(
                line=current.line,
                prompt=path,
                demonstration=() if top is None else (Turn("assistant", top.text),),
                candidates=tuple(
                    Candidate(reply.text, rank=None if reply.rank is None else reply.rank + 1)
                    for reply in replies
                ),
                meta={"message_tree_id": tree_id, "message_id": current.id},
                rows=1 + len(replies),
                warnings=tuple(warnings),
            )
        )
    records.sort(key=lambda record: (record.line, record.meta["message_id"]))
    if root.deleted:
        # Nothing of the tree is imported: its one report stands for every message.
        rows = 1 if one_row else left_out[0].rows
        return [RowError(root.line, left_out[0].reason, rows=rows, deleted=True)]
    if one_row:
        first, *rest = records
        # The tree row's remarks all name its line, so they count it once, as warned.
        notes = tuple(
            RowError(note.line, note.reason)
            for note in sorted([*remarks, *left_out], key=lambda note: note.reason)
        )
        return [dataclasses.replace(first, rows=1, warnings=notes)] + [
            dataclasses.replace(record, rows=0, warnings=()) for record in rest
        ]
    return [*records, *sorted(left_out, key=lambda note: note.line)]


def parse(row: dict[str, Any], line: int) -> list[Record | RowError]:
    """One tree row (the nested form)."""
    if not isinstance(row.get("prompt"), dict):
        raise RowProblem("a tree row needs a 'prompt' message with its replies")
    tree_id = str(row.get("message_tree_id") or row["prompt"].get("message_id"))
    return tree_records(nested(row, line), tree_id, one_row=True)  # type: ignore[return-value]


def records(items: Iterable[RowItem]) -> Iterator[Record | RowError]:
    """Tree rows one by one; flat messages gathered per tree (consecutive rows with the same
    message_tree_id, or from one first message to the next when there is none)."""
    group: list[NumberedRow] = []
    group_id: str | None = None
    finished: set[str] = set()

    def flush() -> Iterator[Record | RowError]:
        if not group:
            return
        try:
            yield from tree_records(flat(group, group_id or ""), group_id or "", one_row=False)
        except RowProblem as problem:
            yield RowError(problem.line or group[0].line, str(problem), rows=len(group))

    for item in items:
        if isinstance(item, RowError):
            yield item
            continue
        if isinstance(item.row.get("prompt"), dict):
            try:
                yield from parse(item.row, item.line)
            except RowProblem as problem:
                yield RowError(item.line, str(problem))
            continue
        tree_id = item.row.get("message_tree_id")
        starts_tree = item.row.get("parent_id") in (None, "")
        key = str(tree_id) if tree_id not in (None, "") else None
        if key is None and starts_tree:
            key = f"#{item.line}"
        # A reply without a tree id joins the tree being gathered.
        if key is not None and key != group_id:
            yield from flush()
            if group_id is not None:
                finished.add(group_id)
            group, group_id = [], key
            if key in finished:
                yield RowError(
                    item.line,
                    f"tree '{key}' continues here after other trees: "
                    "keep each tree's messages together",
                )
                group_id = None
                continue
        group.append(item)
    yield from flush()

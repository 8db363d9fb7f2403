"""What every importer yields, whatever the file's format: one record per usable row, or an
error naming the row. The import service stores records; it never sees a file's format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str


@dataclass(frozen=True)
class Candidate:
    """A response to the record's prompt, with what the source said of it."""

    content: str
    # Where it came from, e.g. the model name an UltraFeedback row gives.
    source_name: str = ""
    # The source's own rating, on the source's own scale (kept as given, e.g. 1 to 10).
    rating: float | None = None
    # 1 is best; equal ranks are ties. None when the source gives no order.
    rank: int | None = None


@dataclass(frozen=True)
class RowError:
    """A row left out, with why; `rows` when it stands for several (a bad Open-Assistant tree
    given as flat messages, a deleted message with its replies)."""

    line: int
    reason: str
    rows: int = 1
    # Rows the source itself withdrew (messages Open-Assistant's moderators deleted, with their
    # replies): nothing wrong with the file, so counted apart and never a reason to stop.
    deleted: bool = False


@dataclass(frozen=True)
class Record:
    """One row's content: a prompt, and a demonstration and/or candidates to compare."""

    # 1-based line (JSONL), row (CSV, counting the header as line 1) or row index + 1 (Parquet).
    line: int
    # The conversation prefix, ending with a user turn.
    prompt: tuple[Turn, ...]
    # The turns written after the prompt by a person (SFT data), starting with the assistant.
    demonstration: tuple[Turn, ...] = ()
    # Responses; when any has a rank, they form a judgement stored as an imported comparison.
    candidates: tuple[Candidate, ...] = ()
    category: str | None = None
    # Extra fields the source row carried, kept for provenance (e.g. an id).
    meta: dict[str, str] = field(default_factory=dict)
    # How many rows of the file (messages, for Open-Assistant) this record accounts for: 0 for
    # a second record from the same row. The import's counts add up to the rows read with it.
    rows: int = 1
    # Rows among them imported with a remark (e.g. one completion, so no comparison); each
    # counts its line once as warned rather than imported.
    warnings: tuple[RowError, ...] = ()

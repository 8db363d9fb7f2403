"""Row streams from JSONL, CSV and Parquet files: one dict per row with its line number, or a
RowError saying why the row is unusable. Memory stays bounded by one row (JSONL, CSV) or one
record batch (Parquet), however large the file.

Files must be UTF-8 (a byte-order mark is allowed). A file that is plainly another encoding
(UTF-16 or UTF-32) is refused as a whole, up front; bytes that are not UTF-8 inside a row (e.g.
Latin-1) make that row a RowError naming its line, never mojibake."""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from app.datasets.records import RowError
from app.errors import InvalidInput
from app.schemas.common import NON_FINITE_MESSAGE, text_problem

# One row (a JSONL line, a CSV record) may be this large; a bigger one is reported, not read.
MAX_ROW_BYTES = 10 * 1024 * 1024
# Reading granularity: a line longer than this arrives in pieces, so an oversized row is
# measured and dropped without ever being held whole.
CHUNK_BYTES = 1024 * 1024
PARQUET_BATCH_ROWS = 1000

Row = dict[str, Any]


@dataclass(frozen=True)
class NumberedRow:
    line: int
    row: Row


RowItem = NumberedRow | RowError

_FOREIGN_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def check_encoding(head: bytes) -> None:
    """Refuse a file that is UTF-16 or UTF-32 (with a byte-order mark, or ASCII text with NUL
    bytes between its letters), which would otherwise read as rows of garbage."""
    # UTF-32's marks start with UTF-16's, so the longer ones are tried first.
    for bom, name in _FOREIGN_BOMS.items():
        if head.startswith(bom):
            raise InvalidInput(
                f"the file is {name} (it starts with a {name} byte-order mark); save it as UTF-8"
            )
    sample = head[:64]
    if len(sample) >= 4 and sample.count(0) * 3 >= len(sample):
        raise InvalidInput(
            "the file looks like UTF-16 or UTF-32 (NUL bytes between its "
            "characters); save it as UTF-8"
        )


def decode_line(raw: bytes, line: int) -> str | RowError:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        column = raw.rfind(b"\n", 0, error.start) + 1
        return RowError(
            line,
            f"not UTF-8: byte 0x{raw[error.start]:02x} at column {error.start - column + 1} "
            "(the file must be UTF-8, e.g. not Latin-1)",
        )


def value_problem(value: Any) -> str | None:
    """The first reason the database would refuse a value from a row: a NUL byte or a lone
    surrogate in a string or key, or a NaN or infinite number."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, float):
            if not math.isfinite(item):
                return NON_FINITE_MESSAGE
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return None


def physical_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | int]]:
    """(line number, bytes) per line; for a line over `limit` bytes, (line number, its size),
    having read past it in chunks. A UTF-8 byte-order mark at the start is dropped."""
    number = 0
    first = True
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        number += 1
        if first:
            check_encoding(raw)
            if raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            first = False
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield number, raw
            continue
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = stream.readline(CHUNK_BYTES)
            if not raw:
                break
            size += len(raw)
        yield number, size


def read_jsonl(stream: BinaryIO, *, limit: int = MAX_ROW_BYTES) -> Iterator[RowItem]:
    """One JSON object per line; blank lines are skipped."""
    for line, raw in physical_lines(stream, limit):
        if isinstance(raw, int):
            yield RowError(
                line,
                f"the line is {megabytes(raw)}, over the limit of {megabytes(limit)} for one row",
            )
            continue
        text = decode_line(raw, line)
        if isinstance(text, RowError):
            yield text
            continue
        if not text.strip():
            continue
        try:
            row = json.loads(text.rstrip("\r\n"), parse_constant=_refuse_constant)
        except json.JSONDecodeError as error:
            yield RowError(
                line,
                f"invalid JSON: {error.msg.removesuffix(' at')} at column "
                f"{error.colno} (a truncated line?)",
            )
            continue
        except ValueError as error:
            yield RowError(line, str(error))
            continue
        if not isinstance(row, dict):
            yield RowError(line, f"a row must be a JSON object, not {json_kind(row)}")
            continue
        # A NUL or a lone surrogate can only come from a \u escape (JSON refuses raw control
        # characters, and the line decoded as UTF-8): the row is walked only when one is there.
        problem = value_problem(row) if _SUSPECT_ESCAPE.search(text) else None
        yield RowError(line, problem) if problem else NumberedRow(line, row)


_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _refuse_constant(name: str) -> Any:
    raise ValueError(NON_FINITE_MESSAGE + f" ({name})")


def json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), "a number")


def csv_records(stream: BinaryIO, limit: int) -> Iterator[tuple[int, str | RowError]]:
    """Whole CSV records as text with the line they start on: physical lines are joined while
    a quoted field is open (an odd number of quotes so far), so a record is never held over
    `limit` bytes; an oversized or non-UTF-8 record is a RowError."""
    start, parts, size, quotes, too_big = 0, [], 0, 0, False
    for line, raw in physical_lines(stream, limit):
        if not parts and not too_big:
            start = line
        if isinstance(raw, int):
            # A line that long is not kept; its quotes are unknown, so the record ends here.
            size, too_big, quotes = size + raw, True, 0
        else:
            size += len(raw)
            quotes += raw.count(b'"')
            too_big = too_big or size > limit
            if too_big:
                parts = []
            else:
                parts.append(raw)
        if quotes % 2:
            continue
        if too_big:
            reason = (
                f"the row is {megabytes(size)}, over the limit of {megabytes(limit)} for one row"
            )
            yield start, RowError(start, reason)
        else:
            yield start, decode_line(b"".join(parts), start)
        start, parts, size, quotes, too_big = 0, [], 0, 0, False
    if parts or too_big:
        yield start, RowError(start, "the file ends inside a quoted field (a truncated row?)")


class CsvRows:
    """A CSV file with a header line: `columns` is known before the first row is read."""

    def __init__(self, stream: BinaryIO, *, limit: int = MAX_ROW_BYTES) -> None:
        # The module-wide cap on one field (128 KiB by default) is raised to the row limit:
        # rows are already bounded before the csv module sees them.
        if csv.field_size_limit() < limit:
            csv.field_size_limit(limit)
        self._records = csv_records(stream, limit)
        header = next(self._records, None)
        if header is None:
            raise InvalidInput("the CSV file is empty: it needs a header line naming its columns")
        _, text = header
        if isinstance(text, RowError):
            raise InvalidInput(f"the CSV header line is unusable: {text.reason}")
        columns = next(csv.reader([text]), [])
        names = [name.strip() for name in columns]
        if not any(names):
            raise InvalidInput("the CSV file's first line must name its columns")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InvalidInput(f"the CSV header names a column twice: {', '.join(duplicates)}")
        self.columns = names

    def __iter__(self) -> Iterator[RowItem]:
        for line, text in self._records:
            if isinstance(text, RowError):
                yield text
                continue
            if not text.strip():
                continue
            try:
                cells = next(csv.reader([text]))
            except csv.Error as error:
                yield RowError(line, f"invalid CSV: {error}")
                continue
            if len(cells) != len(self.columns):
                yield RowError(
                    line, f"the row has {len(cells)} fields, the header {len(self.columns)}"
                )
                continue
            row = dict(zip(self.columns, cells, strict=True))
            problem = value_problem(row)
            yield RowError(line, problem) if problem else NumberedRow(line, row)


class ParquetRows:
    """A Parquet file read one record batch at a time; a row's line is its index + 1."""

    def __init__(self, stream: BinaryIO, *, limit: int = MAX_ROW_BYTES) -> None:
        import pyarrow.parquet as pq
        from pyarrow import ArrowException

        try:
            self._file = pq.ParquetFile(stream)
        except (ArrowException, OSError) as error:
            raise InvalidInput(f"not a readable Parquet file: {error}") from error
        self.columns = list(self._file.schema_arrow.names)
        self._limit = limit

    def __iter__(self) -> Iterator[RowItem]:
        line = 0
        for batch in self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                line += 1
                size = text_size(row)
                if size > self._limit:
                    yield RowError(
                        line,
                        f"the row is {megabytes(size)}, over the limit of "
                        f"{megabytes(self._limit)} for one row",
                    )
                    continue
                problem = value_problem(row)
                yield RowError(line, problem) if problem else NumberedRow(line, row)


def text_size(value: Any) -> int:
    """Bytes of text in a value (UTF-8 length of every string), as a row's size."""
    total, pending = 0, [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, bytes):
            total += len(item)
        elif isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return total

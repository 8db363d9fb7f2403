"""An opened dataset file: its kind from its name (JSONL, CSV, Parquet, or text for
dialogues), its format named or recognised from the first rows, and its records as a stream.
Whole-file problems (an unknown kind, a foreign encoding, a missing CSV column, a format that
cannot be recognised) are raised as InvalidInput when it is opened, before anything is read
into the database."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, islice
from pathlib import PurePath
from typing import BinaryIO

from app.datasets.dialogue import DialogueFilters, FilterReport, read_dialogues
from app.datasets.files import (
    MAX_ROW_BYTES,
    CsvRows,
    NumberedRow,
    ParquetRows,
    RowItem,
    read_jsonl,
)
from app.datasets.formats import DIALOGUE, FORMAT_NAMES, check_columns, detect_format, parse_rows
from app.datasets.records import Record, RowError
from app.errors import InvalidInput

KINDS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
}
# Rows looked at to recognise a format: the first readable one decides, the rest are there so
# a few bad lines at the top do not hide it.
PEEK_ROWS = 20


def kind_of(name: str) -> str:
    suffix = PurePath(name).suffix.lower()
    if suffix not in KINDS:
        raise InvalidInput(
            f"cannot read {PurePath(name).name!r}: use a file ending in {', '.join(KINDS)}",
            field="name",
        )
    return KINDS[suffix]


class Dataset:
    """Iterate it once for the records; `rows_read` and `filter_report` fill in as it goes."""

    def __init__(
        self,
        stream: BinaryIO,
        kind: str,
        format: str | None = None,
        *,
        dialogue_filters: DialogueFilters | None = None,
        limit: int = MAX_ROW_BYTES,
    ) -> None:
        if format is not None and format not in FORMAT_NAMES:
            raise InvalidInput(
                f"unknown format {format!r}; use one of {', '.join(FORMAT_NAMES)}", field="format"
            )
        self.rows_read = 0
        self.filter_report: FilterReport | None = None
        if kind == "text" or format == DIALOGUE:
            if kind != "text" or format not in (None, DIALOGUE):
                raise InvalidInput(
                    "dialogue text comes in a .txt file, and a .txt file holds dialogue text",
                    field="format",
                )
            self.format = DIALOGUE
            self.filter_report = FilterReport()
            self._records = read_dialogues(
                stream, dialogue_filters or DialogueFilters(), self.filter_report, limit=limit
            )
            return
        rows: Iterator[RowItem]
        if kind == "jsonl":
            rows, columns = read_jsonl(stream, limit=limit), None
        elif kind == "csv":
            table = CsvRows(stream, limit=limit)
            rows, columns = iter(table), table.columns
        elif kind == "parquet":
            parquet = ParquetRows(stream, limit=limit)
            rows, columns = iter(parquet), parquet.columns
        else:
            raise InvalidInput(f"unknown file kind {kind!r}")
        if format is None:
            peeked = list(islice(rows, PEEK_ROWS))
            rows = chain(peeked, rows)
            format = detect_format([item.row for item in peeked if isinstance(item, NumberedRow)])
            if format is None:
                raise InvalidInput(self._undetected(peeked), field="format")
        if columns is not None:
            check_columns(format, columns)
        self.format = format
        self._records = parse_rows(format, self._counted(rows))

    def _counted(self, rows: Iterator[RowItem]) -> Iterator[RowItem]:
        for item in rows:
            self.rows_read += 1
            yield item

    @staticmethod
    def _undetected(peeked: list[RowItem]) -> str:
        readable = [item for item in peeked if isinstance(item, NumberedRow)]
        if readable:
            return (
                "could not recognise the format from the columns "
                f"{', '.join(readable[0].row) or '(none)'}; name one of {', '.join(FORMAT_NAMES)}"
            )
        if peeked:
            first = peeked[0]
            assert isinstance(first, RowError)
            return (
                f"could not recognise the format: none of the first {len(peeked)} rows is "
                f"readable (line {first.line}: {first.reason})"
            )
        return "the file has no rows"

    def __iter__(self) -> Iterator[Record | RowError]:
        if self.format == DIALOGUE:
            assert self.filter_report is not None
            for item in self._records:
                self.rows_read = self.filter_report.dialogues
                yield item
            self.rows_read = self.filter_report.dialogues
            return
        yield from self._records

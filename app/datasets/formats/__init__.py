"""The row formats, recognised from a file's first rows or named by the caller. Each module
has NAME, COLUMNS (the sets of columns it can read; one must be present), detect(first_rows)
and parse(row, line) -> list[Record] (a row may give several, e.g. an Open-Assistant tree),
raising RowProblem for a bad row; oasst also reads across rows (flat message exports)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from types import ModuleType
from typing import Any

from app.datasets.files import RowItem
from app.datasets.formats import hh_rlhf, oasst, preference, prompts, sft, ultrafeedback
from app.datasets.formats.common import RowProblem
from app.datasets.records import Record, RowError
from app.errors import InvalidInput

# Detection order matters: an HH-RLHF row also has chosen/rejected, a preference row may also
# have a prompt, so the most specific formats are tried first.
ROW_FORMATS: dict[str, ModuleType] = {
    module.NAME: module for module in (oasst, hh_rlhf, preference, ultrafeedback, sft, prompts)
}
DIALOGUE = "dialogue"
FORMAT_NAMES = (*ROW_FORMATS, DIALOGUE)


def row_format(name: str) -> ModuleType:
    if name not in ROW_FORMATS:
        raise InvalidInput(
            f"unknown format {name!r}; use one of {', '.join(FORMAT_NAMES)}", field="format"
        )
    return ROW_FORMATS[name]


def detect_format(first_rows: Sequence[dict[str, Any]]) -> str | None:
    if not first_rows:
        return None
    return next((name for name, module in ROW_FORMATS.items() if module.detect(first_rows)), None)


def check_columns(name: str, columns: Sequence[str]) -> None:
    """Up front, for files whose columns are known before reading (CSV, Parquet)."""
    options: tuple[tuple[str, ...], ...] = row_format(name).COLUMNS
    if any(set(option) <= set(columns) for option in options):
        return
    closest = min(options, key=lambda option: len(set(option) - set(columns)))
    missing = [column for column in closest if column not in columns]
    raise InvalidInput(
        f"the file has no column {', '.join(repr(column) for column in missing)} that the "
        f"{name} format needs (it needs {' or '.join(', '.join(o) for o in options)}; "
        f"the file has {', '.join(columns) or 'no columns'})"
    )


def parse_rows(name: str, items: Iterable[RowItem]) -> Iterator[Record | RowError]:
    module = row_format(name)
    if hasattr(module, "records"):
        yield from module.records(items)
        return
    for item in items:
        if isinstance(item, RowError):
            yield item
            continue
        try:
            yield from module.parse(item.row, item.line)
        except RowProblem as problem:
            yield RowError(problem.line or item.line, str(problem))

"""app.datasets.files: JSONL, CSV and Parquet rows with their line numbers; bad rows reported
with the line and reason; foreign encodings refused; oversized rows measured, never held."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.datasets.files import CsvRows, NumberedRow, ParquetRows, read_jsonl
from app.datasets.records import RowError
from app.errors import InvalidInput

MB = 1024 * 1024


def jsonl(*lines: str) -> io.BytesIO:
    return io.BytesIO("\n".join(lines).encode("utf-8") + b"\n")


def test_jsonl_rows_keep_their_line_numbers_and_skip_blank_lines() -> None:
    stream = jsonl('{"prompt": "a"}', "", "   ", '{"prompt": "b", "n": 2}')

    assert list(read_jsonl(stream)) == [
        NumberedRow(1, {"prompt": "a"}),
        NumberedRow(4, {"prompt": "b", "n": 2}),
    ]


def test_jsonl_with_a_utf8_byte_order_mark() -> None:
    stream = io.BytesIO(b'\xef\xbb\xbf{"prompt": "caf\xc3\xa9"}\n')

    assert list(read_jsonl(stream)) == [NumberedRow(1, {"prompt": "café"})]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            '{"prompt": "cut off',
            "invalid JSON: Unterminated string starting at column 12 (a truncated line?)",
        ),
        ('["a", "list"]', "a row must be a JSON object, not an array"),
        ('"text"', "a row must be a JSON object, not a string"),
        ('{"prompt": "nul \\u0000"}', "text may not contain NUL bytes"),
        ('{"prompt": "half \\ud800"}', "text contains invalid unicode (a lone surrogate)"),
        ('{"score": NaN}', "numbers must be finite (no NaN or Infinity) (NaN)"),
        ('{"score": -Infinity}', "numbers must be finite (no NaN or Infinity) (-Infinity)"),
    ],
)
def test_bad_jsonl_lines_are_row_errors(line: str, reason: str) -> None:
    stream = jsonl('{"prompt": "fine"}', line, '{"prompt": "also fine"}')

    assert list(read_jsonl(stream)) == [
        NumberedRow(1, {"prompt": "fine"}),
        RowError(2, reason),
        NumberedRow(3, {"prompt": "also fine"}),
    ]


def test_a_truncated_last_line_without_newline() -> None:
    stream = io.BytesIO(b'{"prompt": "a"}\n{"prompt": "b", "chos')

    assert list(read_jsonl(stream)) == [
        NumberedRow(1, {"prompt": "a"}),
        RowError(2, "invalid JSON: Unterminated string starting at column 17 (a truncated line?)"),
    ]


def test_latin1_bytes_name_the_line_and_column() -> None:
    stream = io.BytesIO('{"prompt": "a"}\n{"prompt": "café"}\n'.encode("latin-1"))

    assert list(read_jsonl(stream)) == [
        NumberedRow(1, {"prompt": "a"}),
        RowError(2, "not UTF-8: byte 0xe9 at column 16 (the file must be UTF-8, e.g. not Latin-1)"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            '{"prompt": "a"}\n'.encode("utf-16"),
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8",
        ),
        (
            '{"prompt": "a"}\n'.encode("utf-32"),
            "the file is UTF-32 (it starts with a UTF-32 byte-order mark); save it as UTF-8",
        ),
        (
            '{"prompt": "a"}\n'.encode("utf-16-le"),
            "the file looks like UTF-16 or UTF-32 (NUL bytes between its characters); save it "
            "as UTF-8",
        ),
    ],
)
def test_utf16_and_utf32_files_are_refused_up_front(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        list(read_jsonl(io.BytesIO(data)))
    assert caught.value.message == message


def test_an_oversized_line_is_measured_and_skipped() -> None:
    big = '{"prompt": "' + "x" * (3 * MB) + '"}'
    stream = jsonl('{"prompt": "a"}', big, '{"prompt": "b"}')

    assert list(read_jsonl(stream, limit=MB)) == [
        NumberedRow(1, {"prompt": "a"}),
        RowError(2, "the line is 3.0 MB, over the limit of 1.0 MB for one row"),
        NumberedRow(3, {"prompt": "b"}),
    ]


def test_a_50_mb_field_is_reported_with_the_default_limit() -> None:
    big = '{"prompt": "' + "x" * (50 * MB) + '"}'
    stream = jsonl(big, '{"prompt": "b"}')

    assert list(read_jsonl(stream)) == [
        RowError(1, "the line is 50.0 MB, over the limit of 10.0 MB for one row"),
        NumberedRow(2, {"prompt": "b"}),
    ]


# --- CSV --------------------------------------------------------------------------------------


def test_csv_rows_by_header_with_quoted_newlines_and_lines_where_rows_start() -> None:
    data = b'prompt,chosen,rejected\r\nHi,"Hello,\r\nthere","No ""quote"""\r\nQ,A,B\r\n'
    table = CsvRows(io.BytesIO(data))

    assert table.columns == ["prompt", "chosen", "rejected"]
    assert list(table) == [
        NumberedRow(2, {"prompt": "Hi", "chosen": "Hello,\r\nthere", "rejected": 'No "quote"'}),
        NumberedRow(4, {"prompt": "Q", "chosen": "A", "rejected": "B"}),
    ]


def test_csv_fields_above_the_csv_modules_default_limit_are_read() -> None:
    long = "y" * 200_000
    table = CsvRows(io.BytesIO(f"prompt\n{long}\n".encode()))

    assert list(table) == [NumberedRow(2, {"prompt": long})]


def test_a_50_mb_csv_field_is_a_row_error_naming_line_and_size() -> None:
    data = b"prompt,chosen\na,b\n" + b'"' + b"z" * (50 * MB) + b'",c\nd,e\n'

    assert list(CsvRows(io.BytesIO(data))) == [
        NumberedRow(2, {"prompt": "a", "chosen": "b"}),
        RowError(3, "the row is 50.0 MB, over the limit of 10.0 MB for one row"),
        NumberedRow(4, {"prompt": "d", "chosen": "e"}),
    ]


def test_an_oversized_record_spread_over_lines() -> None:
    data = b'prompt\n"' + (b"w" * 1000 + b"\n") * 2000 + b'"\nok\n'

    assert list(CsvRows(io.BytesIO(data), limit=MB)) == [
        RowError(2, "the row is 1.9 MB, over the limit of 1.0 MB for one row"),
        NumberedRow(2003, {"prompt": "ok"}),
    ]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"prompt,chosen\na,b,c\n", RowError(2, "the row has 3 fields, the header 2")),
        (
            b"prompt,chosen\nna\xefve,b\n",
            RowError(
                2, "not UTF-8: byte 0xef at column 3 (the file must be UTF-8, e.g. not Latin-1)"
            ),
        ),
        (
            b'prompt,chosen\n"open,b\n',
            RowError(2, "the file ends inside a quoted field (a truncated row?)"),
        ),
    ],
)
def test_bad_csv_rows(data: bytes, error: RowError) -> None:
    assert list(CsvRows(io.BytesIO(data))) == [error]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the CSV file is empty: it needs a header line naming its columns"),
        (b"prompt,prompt\na,b\n", "the CSV header names a column twice: prompt"),
        (b",\na,b\n", "the CSV file's first line must name its columns"),
        (
            "prompt\nhi\n".encode("utf-16"),
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8",
        ),
    ],
)
def test_unusable_csv_headers(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        CsvRows(io.BytesIO(data))
    assert caught.value.message == message


# --- Parquet ----------------------------------------------------------------------------------


def parquet(rows: list[dict[str, object]]) -> io.BytesIO:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out, row_group_size=2)
    out.seek(0)
    return out


def test_parquet_rows_are_numbered_from_one_across_batches() -> None:
    rows = [{"prompt": f"p{i}", "score": float(i)} for i in range(5)]
    table = ParquetRows(parquet(rows))

    assert table.columns == ["prompt", "score"]
    assert list(table) == [NumberedRow(i + 1, row) for i, row in enumerate(rows)]


def test_bad_parquet_rows() -> None:
    rows = [
        {"prompt": "ok", "score": 1.0},
        {"prompt": "nul\x00", "score": 1.0},
        {"prompt": "nan", "score": float("nan")},
        {"prompt": "x" * (2 * MB), "score": 1.0},
    ]

    assert list(ParquetRows(parquet(rows), limit=MB)) == [
        NumberedRow(1, {"prompt": "ok", "score": 1.0}),
        RowError(2, "text may not contain NUL bytes"),
        RowError(3, "numbers must be finite (no NaN or Infinity)"),
        RowError(4, "the row is 2.0 MB, over the limit of 1.0 MB for one row"),
    ]


def test_a_file_that_is_not_parquet() -> None:
    with pytest.raises(InvalidInput, match="not a readable Parquet file"):
        ParquetRows(io.BytesIO(json.dumps({"prompt": "a"}).encode()))

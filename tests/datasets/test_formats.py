"""app.datasets.formats and app.datasets.reading: each format's records from small exact
rows, what makes a row bad, and recognising the format from the first rows."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.datasets.reading import Dataset, kind_of
from app.datasets.records import Candidate, Record, RowError, Turn
from app.errors import InvalidInput

U, A, S = "user", "assistant", "system"


def turns(*pairs: tuple[str, str]) -> tuple[Turn, ...]:
    return tuple(Turn(role, content) for role, content in pairs)  # type: ignore[arg-type]


def read(rows: list[Any], format: str | None = None) -> tuple[str, list[Record | RowError]]:
    data = "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows)
    dataset = Dataset(io.BytesIO(data.encode() + b"\n"), "jsonl", format)
    return dataset.format, list(dataset)


def one(row: dict[str, Any], format: str | None = None) -> Record | RowError:
    _, found = read([row], format)
    assert len(found) == 1
    return found[0]


def msgs(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


# --- prompts ----------------------------------------------------------------------------------


def test_prompts_plain_and_conversational() -> None:
    fmt, records = read(
        [
            {"prompt": "Write a haiku.", "category": "generation", "id": 7},
            {"messages": msgs((S, "Be brief."), (U, "Hi"), (A, "Hello"), (U, "Bye?"))},
        ]
    )

    assert fmt == "prompts"
    assert records == [
        Record(
            line=1, prompt=turns((U, "Write a haiku.")), category="generation", meta={"id": "7"}
        ),
        Record(line=2, prompt=turns((S, "Be brief."), (U, "Hi"), (A, "Hello"), (U, "Bye?"))),
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"prompt": "  "}, "the prompt is empty"),
        ({"prompt": 3}, "the prompt must be text or a list of messages, not int"),
        (
            {"prompt": "Hi", "category": "poetry"},
            "unknown category 'poetry'; use one of generation, open_qa, brainstorming, chat, "
            "rewrite, summarization, classification, closed_qa, extraction, other",
        ),
        ({"messages": msgs((U, "Hi"), (A, "Hello"))}, "messages must end with a user turn"),
        (
            {"messages": msgs((U, "Hi"), (S, "Rules"), (U, "Go"))},
            "messages: a system message can only come first",
        ),
        (
            {"messages": [{"role": "bot", "content": "x"}]},
            "messages: message 1 has role 'bot', not one of system, user, assistant",
        ),
        ({"messages": []}, "messages must be a non-empty list of messages"),
        ({"prompt": "x" * 100_001}, "the prompt is 100,001 characters, over the limit of 100,000"),
    ],
)
def test_bad_prompt_rows(row: dict[str, Any], reason: str) -> None:
    assert one(row, "prompts") == RowError(1, reason)


# --- sft --------------------------------------------------------------------------------------


def test_sft_messages_split_at_the_last_user_turn() -> None:
    fmt, records = read(
        [
            {"messages": msgs((U, "Hi"), (A, "Hello"), (U, "Joke?"), (A, "Knock knock."))},
            {"prompt": "2+2?", "completion": "4"},
            {"prompt": msgs((U, "Hi")), "completion": msgs((A, "Hey"), (U, "More"), (A, "Sure"))},
        ]
    )

    assert fmt == "sft"
    assert records == [
        Record(
            line=1,
            prompt=turns((U, "Hi"), (A, "Hello"), (U, "Joke?")),
            demonstration=turns((A, "Knock knock.")),
        ),
        Record(line=2, prompt=turns((U, "2+2?")), demonstration=turns((A, "4"))),
        Record(
            line=3,
            prompt=turns((U, "Hi")),
            demonstration=turns((A, "Hey"), (U, "More"), (A, "Sure")),
        ),
    ]


def test_bad_sft_rows() -> None:
    _, records = read(
        [
            {"messages": msgs((U, "Hi"))},
            {"messages": msgs((A, "Hello"))},
            {"messages": msgs((U, "Hi"), (A, ""))},
            {"prompt": "Hi", "completion": msgs((U, "me again"))},
        ],
        "sft",
    )

    assert records == [
        RowError(1, "messages end with a user turn: there is no assistant answer"),
        RowError(2, "messages has no user turn"),
        RowError(3, "messages: message 2's content is empty"),
        RowError(4, "the demonstration must start with an assistant turn"),
    ]


# --- preference (TRL) -------------------------------------------------------------------------


def test_preference_plain_conversational_and_implicit_prompt() -> None:
    fmt, records = read(
        [
            {
                "prompt": "Sky colour?",
                "chosen": "Blue.",
                "rejected": "Green.",
                "score_chosen": 9.0,
                "score_rejected": 3,
            },
            {
                "prompt": msgs((U, "Hi")),
                "chosen": msgs((A, "Hello!")),
                "rejected": msgs((A, "Go.")),
            },
            {
                "chosen": msgs((U, "Hi"), (A, "Hey"), (U, "Joke?"), (A, "Ha.")),
                "rejected": msgs((U, "Hi"), (A, "Hey"), (U, "Joke?"), (A, "No.")),
            },
        ]
    )

    assert fmt == "preference"
    assert records == [
        Record(
            line=1,
            prompt=turns((U, "Sky colour?")),
            candidates=(
                Candidate("Blue.", rating=9.0, rank=1),
                Candidate("Green.", rating=3.0, rank=2),
            ),
        ),
        Record(
            line=2,
            prompt=turns((U, "Hi")),
            candidates=(Candidate("Hello!", rank=1), Candidate("Go.", rank=2)),
        ),
        Record(
            line=3,
            prompt=turns((U, "Hi"), (A, "Hey"), (U, "Joke?")),
            candidates=(Candidate("Ha.", rank=1), Candidate("No.", rank=2)),
        ),
    ]


def test_bad_preference_rows() -> None:
    _, records = read(
        [
            {"prompt": "Q", "chosen": "", "rejected": "b"},
            {"prompt": "Q", "chosen": "a"},
            {"prompt": "Q", "chosen": msgs((A, "a"), (A, "b")), "rejected": "c"},
            {"chosen": msgs((U, "Hi"), (A, "a")), "rejected": msgs((U, "Yo"), (A, "b"))},
            {"chosen": "Hi a", "rejected": "Hi b"},
            {"prompt": "Q", "chosen": "a", "rejected": "b", "score_chosen": "high"},
        ],
        "preference",
    )

    assert records == [
        RowError(1, "the chosen response is empty"),
        RowError(2, "the row has no 'rejected'"),
        RowError(3, "the chosen response must be one assistant turn"),
        RowError(4, "chosen and rejected do not share a prompt"),
        RowError(5, "without a 'prompt', chosen and rejected must be conversations"),
        RowError(6, "score_chosen must be a number, not 'high'"),
    ]


# --- hh-rlhf ----------------------------------------------------------------------------------

HH_PROMPT = (
    "\n\nHuman: What is a prime?\n\nAssistant: A number with two divisors.\n\nHuman: An example?"
)


def test_hh_rlhf_transcripts_split_into_a_shared_prompt_and_two_responses() -> None:
    fmt, records = read(
        [
            {
                "chosen": HH_PROMPT + "\n\nAssistant: 7.",
                "rejected": HH_PROMPT + "\n\nAssistant: 8.",
            },
        ]
    )

    assert fmt == "hh-rlhf"
    assert records == [
        Record(
            line=1,
            prompt=turns(
                (U, "What is a prime?"), (A, "A number with two divisors."), (U, "An example?")
            ),
            candidates=(Candidate("7.", rank=1), Candidate("8.", rank=2)),
        ),
    ]


@pytest.mark.parametrize(
    ("chosen", "rejected", "reason"),
    [
        (
            "\n\nHuman: Hi\n\nAssistant: a",
            "\n\nHuman: Yo\n\nAssistant: b",
            "the two transcripts do not share a prompt",
        ),
        (
            "\n\nHuman: Hi\n\nAssistant: a\n\nHuman: more\n\nAssistant: c",
            "\n\nHuman: Hi\n\nAssistant: b",
            "the two transcripts do not share a prompt",
        ),
        (
            "\n\nHuman: Hi\n\nAssistant: a",
            "\n\nHuman: Hi\n\nAssistant: a",
            "chosen and rejected are the same transcript",
        ),
        (
            "\n\nHuman: Hi\n\nAssistant: a",
            "\n\nHuman: Hi\n\nAssistant:",
            "the rejected response is empty",
        ),
        (
            "\n\nHuman: Hi\n\nAssistant:  ",
            "\n\nHuman: Hi\n\nAssistant: b",
            "the chosen response is empty",
        ),
        (
            "Hi there\n\nHuman: Hi\n\nAssistant: a",
            "\n\nHuman: Hi\n\nAssistant: b",
            "chosen must start with '\\n\\nHuman:'",
        ),
    ],
)
def test_bad_hh_rlhf_rows(chosen: str, rejected: str, reason: str) -> None:
    assert one({"chosen": chosen, "rejected": rejected}, "hh-rlhf") == RowError(1, reason)


# --- ultrafeedback ----------------------------------------------------------------------------


def completion(model: str, text: str, **ratings: Any) -> dict[str, Any]:
    return {"model": model, "response": text, **ratings}


def test_ultrafeedback_ranks_from_overall_score_or_averaged_ratings_with_ties() -> None:
    annotations = {
        "helpfulness": {"Rating": "4", "Rationale": "ok"},
        "honesty": {"Rating": "5"},
        "instruction_following": {"Rating": "N/A"},
        "truthfulness": {"Rating": "3", "Type": ["0"]},
    }
    fmt, records = read(
        [
            {
                "source": "evol_instruct",
                "instruction": "Explain tides.",
                "completions": [
                    completion("gpt-4", "The moon pulls.", overall_score=8.5),
                    completion("llama", "Waves.", overall_score=4),
                    completion("falcon", "Gravity.", overall_score=8.5),
                    completion("wizard", "Moon and sun.", annotations=annotations),
                    completion("mpt", "Unsure."),
                ],
            }
        ]
    )

    assert fmt == "ultrafeedback"
    assert records == [
        Record(
            line=1,
            prompt=turns((U, "Explain tides.")),
            meta={"source": "evol_instruct"},
            candidates=(
                Candidate("The moon pulls.", source_name="gpt-4", rating=8.5, rank=1),
                Candidate("Waves.", source_name="llama", rating=4.0, rank=2),
                Candidate("Gravity.", source_name="falcon", rating=8.5, rank=1),
                Candidate("Moon and sun.", source_name="wizard", rating=4.0, rank=2),
                Candidate("Unsure.", source_name="mpt", rating=None, rank=None),
            ),
        ),
    ]


def test_bad_ultrafeedback_rows() -> None:
    _, records = read(
        [
            {"instruction": "Q", "completions": [completion("m1", "a"), completion("m2", "  ")]},
            {"instruction": "Q", "completions": []},
            {"instruction": "Q", "completions": [{"model": "m1"}]},
            {"instruction": "Q", "completions": [completion("m1", "a", overall_score="good")]},
        ],
        "ultrafeedback",
    )

    assert records == [
        RowError(1, "completion 2 (m2)'s response is empty"),
        RowError(2, "completions must be a non-empty list"),
        RowError(3, "completion 1 (m1)'s response is missing"),
        RowError(4, "completion 1 (m1)'s overall_score must be a number, not 'good'"),
    ]


# --- detection and whole-file problems ----------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"prompt": "Hi"}, "prompts"),
        ({"messages": msgs((U, "Hi"))}, "prompts"),
        ({"messages": msgs((U, "Hi"), (A, "Hey"))}, "sft"),
        ({"prompt": "Hi", "completion": "Hey"}, "sft"),
        ({"prompt": "Hi", "chosen": "a", "rejected": "b"}, "preference"),
        (
            {"chosen": msgs((U, "Hi"), (A, "a")), "rejected": msgs((U, "Hi"), (A, "b"))},
            "preference",
        ),
        (
            {
                "chosen": "\n\nHuman: Hi\n\nAssistant: a",
                "rejected": "\n\nHuman: Hi\n\nAssistant: b",
            },
            "hh-rlhf",
        ),
        ({"instruction": "Q", "completions": []}, "ultrafeedback"),
        (
            {
                "message_tree_id": "t",
                "prompt": {"message_id": "m", "role": "prompter", "text": "Q"},
            },
            "oasst",
        ),
        ({"message_id": "m", "parent_id": None, "role": "prompter", "text": "Q"}, "oasst"),
    ],
)
def test_formats_are_recognised_from_the_first_readable_row(
    row: dict[str, Any], expected: str
) -> None:
    fmt, _ = read(['{"broken', row])
    assert fmt == expected


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"question": "Q", "answer": "A"}'],
            "could not recognise the format from the columns question, answer; name one of "
            "oasst, hh-rlhf, preference, ultrafeedback, sft, prompts, dialogue",
        ),
        (
            ['{"broken', "[1]"],
            "could not recognise the format: none of the first 2 rows is readable (line 1: "
            "invalid JSON: Unterminated string starting at column 2 (a truncated line?))",
        ),
        ([""], "the file has no rows"),
    ],
)
def test_unrecognised_files(lines: list[str], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read(lines)
    assert caught.value.message == message


def test_an_unknown_format_name_and_file_kind() -> None:
    with pytest.raises(InvalidInput, match="unknown format 'alpaca'; use one of oasst, "):
        read([{"prompt": "Hi"}], "alpaca")
    with pytest.raises(
        InvalidInput,
        match=r"cannot read 'data.xlsx': use a file ending in "
        r"\.jsonl, \.ndjson, \.csv, \.parquet, \.txt",
    ):
        kind_of("some/data.xlsx")
    assert [kind_of(n) for n in ("a.JSONL", "b.csv", "c.parquet", "d.txt")] == [
        "jsonl",
        "csv",
        "parquet",
        "text",
    ]


def test_a_csv_missing_a_required_column_is_refused_before_any_row() -> None:
    data = b"prompt,chosen\nHi,Hello\n"
    with pytest.raises(InvalidInput) as caught:
        Dataset(io.BytesIO(data), "csv", "preference")
    assert caught.value.message == (
        "the file has no column 'rejected' that the preference format needs (it needs "
        "chosen, rejected; the file has prompt, chosen)"
    )


def test_csv_with_a_json_messages_column() -> None:
    data = (
        'messages,category\n"'
        + json.dumps(msgs((U, "Hi"), (A, "Hey"))).replace('"', '""')
        + '",chat\n'
    ).encode()
    dataset = Dataset(io.BytesIO(data), "csv")

    assert dataset.format == "sft"
    assert list(dataset) == [
        Record(line=2, prompt=turns((U, "Hi")), demonstration=turns((A, "Hey")), category="chat")
    ]


def test_parquet_preference_rows() -> None:
    out = io.BytesIO()
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "prompt": msgs((U, "Hi")),
                    "chosen": msgs((A, "Hello")),
                    "rejected": msgs((A, "Bye")),
                },
                {"prompt": msgs((U, "Q")), "chosen": msgs((A, "")), "rejected": msgs((A, "B"))},
            ]
        ),
        out,
    )
    out.seek(0)
    dataset = Dataset(out, "parquet")

    assert dataset.format == "preference"
    assert list(dataset) == [
        Record(
            line=1,
            prompt=turns((U, "Hi")),
            candidates=(Candidate("Hello", rank=1), Candidate("Bye", rank=2)),
        ),
        RowError(2, "the chosen response: message 1's content is empty"),
    ]
    assert dataset.rows_read == 2

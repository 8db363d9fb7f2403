"""app.datasets.dialogue: `[A]:`/`[B]:` dialogue text, its filters and their counts."""

from __future__ import annotations

import io

from app.datasets.dialogue import DialogueFilters, FilterReport, read_dialogues
from app.datasets.reading import Dataset
from app.datasets.records import Record, RowError, Turn

TEXT = """[A]: Hi, who are you?
[B]: A helpful assistant.
I answer questions.
[A]: What is 2+2?
[B]: 4.

[A]: Just one turn.

[A]: Hello
[A]: Anyone?

Some preface.
[A]: Hi
[B]: Hello

[A]: Tell me a long story.
[B]: {long}

[A]: Hi
[C]: I am a third speaker.

[A]: Hi
[B]:

[A]: Ends with the user
[B]: Sure
[A]: Thanks!
"""


def report_of(text: str, filters: DialogueFilters) -> tuple[list[Record | RowError], FilterReport]:
    report = FilterReport()
    found = list(read_dialogues(io.BytesIO(text.encode()), filters, report))
    return found, report


def test_dialogues_pass_or_are_counted_under_the_first_filter_they_fail() -> None:
    found, report = report_of(TEXT.format(long="x" * 101), DialogueFilters(max_turn_chars=100))

    assert found == [
        Record(
            line=1,
            prompt=(
                Turn("user", "Hi, who are you?"),
                Turn("assistant", "A helpful assistant.\nI answer questions."),
                Turn("user", "What is 2+2?"),
            ),
            demonstration=(Turn("assistant", "4."),),
        ),
        Record(
            line=25,
            prompt=(
                Turn("user", "Ends with the user"),
                Turn("assistant", "Sure"),
                Turn("user", "Thanks!"),
            ),
        ),
    ]
    assert report == FilterReport(
        dialogues=8,
        kept=2,
        dropped={
            "text_outside_turns": 1,
            "unknown_speaker": 1,
            "empty_turn": 1,
            "too_few_turns": 1,
            "turn_too_long": 1,
            "not_alternating": 1,
            "one_speaker": 0,
        },
    )


def test_b_as_the_user_and_a_higher_turn_minimum() -> None:
    text = "[B]: Question?\n[A]: Answer.\n\n[A]: a\n[B]: b\n[A]: c\n"
    found, report = report_of(text, DialogueFilters(min_turns=3, user_speaker="B"))

    assert found == [
        Record(
            line=4,
            prompt=(Turn("assistant", "a"), Turn("user", "b")),
            demonstration=(Turn("assistant", "c"),),
        ),
    ]
    assert (report.dialogues, report.kept, report.dropped["too_few_turns"]) == (2, 1, 1)


def test_one_speaker_with_a_one_turn_minimum() -> None:
    found, report = report_of("[A]: alone\n", DialogueFilters(min_turns=1))

    assert found == []
    assert (report.dialogues, report.kept, report.dropped["one_speaker"]) == (1, 0, 1)


def test_a_line_that_is_not_utf8_is_reported_and_its_dialogue_dropped() -> None:
    data = b"[A]: Hi\n[B]: caf\xe9\n\n[A]: Q\n[B]: R\n"
    dataset = Dataset(io.BytesIO(data), "text")

    assert list(dataset) == [
        RowError(2, "not UTF-8: byte 0xe9 at column 9 (the file must be UTF-8, e.g. not Latin-1)"),
        Record(line=4, prompt=(Turn("user", "Q"),), demonstration=(Turn("assistant", "R"),)),
    ]
    assert dataset.format == "dialogue"
    assert dataset.rows_read == 2
    assert dataset.filter_report == FilterReport(dialogues=2, kept=1)

"""app.services.imports.import_records: records stored in one transaction, in batches, with
prompts deduplicated, imported comparisons and their pairs; stop or skip on a bad row."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.records import Candidate, Record, RowError, Turn
from app.errors import InvalidInput, NotFound
from app.models import (
    Comparison,
    ComparisonItem,
    Demonstration,
    Pair,
    Project,
    Prompt,
    PromptCategory,
    Response,
    User,
)
from app.schemas.imports import ImportProgress, ImportResult, ImportRowError
from app.services.imports import import_records
from app.services.prompts import prompt_content_hash
from tests.api.helpers import db_state

TABLES = ("prompts", "responses", "demonstrations", "comparisons", "comparison_items", "pairs")


def make_project(db: Session, name: str = "Imports") -> Project:
    project = Project(name=name, label_schema={"flags": []})
    db.add(project)
    # Committed: a stopped import rolls back, and must take only its own rows with it.
    db.commit()
    return project


def user(text: str) -> Turn:
    return Turn("user", text)


def assistant(text: str) -> Turn:
    return Turn("assistant", text)


def ranked(line: int, prompt: str, *answers: tuple[str, int, float | None]) -> Record:
    return Record(
        line=line,
        prompt=(user(prompt),),
        candidates=tuple(
            Candidate(text, source_name=f"model-{index}", rating=rating, rank=rank)
            for index, (text, rank, rating) in enumerate(answers)
        ),
    )


def run(db: Session, project: Project, records: list[Any], **options: Any) -> ImportResult:
    options.setdefault("on_error", "skip")
    options.setdefault("acting", None)
    return import_records(db, project.id, records, source="test.jsonl", **options)


def test_ranked_candidates_become_an_imported_comparison_with_pairs(
    db: Session, admin: User
) -> None:
    project = make_project(db)
    record = ranked(
        3, "Name a colour.", ("Red.", 1, 6.0), ("Blue.", 2, 4.0), ("Hm.", 2, 4.0), ("No.", 4, 1.0)
    )

    result = run(db, project, [record], acting=admin)

    assert result == ImportResult(
        source="test.jsonl",
        rows_read=1,
        records_imported=1,
        prompts_created=1,
        responses=4,
        comparisons=1,
        pairs=5,
        rows_imported=1,
    )
    prompt = db.scalars(select(Prompt)).one()
    assert (prompt.project_id, prompt.messages, prompt.category, prompt.source) == (
        project.id,
        [{"role": "user", "content": "Name a colour."}],
        PromptCategory.other,
        "import:test.jsonl",
    )
    assert prompt.content_hash == prompt_content_hash(prompt.messages)
    assert prompt.created_by_id == admin.id
    responses = db.scalars(select(Response).order_by(Response.id)).all()
    assert [(r.prompt_id, r.content, r.source.value, r.source_name) for r in responses] == [
        (prompt.id, "Red.", "import", "model-0"),
        (prompt.id, "Blue.", "import", "model-1"),
        (prompt.id, "Hm.", "import", "model-2"),
        (prompt.id, "No.", "import", "model-3"),
    ]
    comparison = db.scalars(select(Comparison)).one()
    assert (
        comparison.prompt_id,
        comparison.source.value,
        comparison.source_name,
        comparison.labeler_id,
        comparison.task_id,
        comparison.all_unacceptable,
    ) == (prompt.id, "import", "test.jsonl", None, None, False)
    red, blue, hm, no = (r.id for r in responses)
    items = db.execute(
        select(ComparisonItem.response_id, ComparisonItem.score, ComparisonItem.rank).order_by(
            ComparisonItem.response_id
        )
    ).all()
    # Dense ranks (4 becomes 3); the ratings are on a 1..7 scale and whole, so kept as scores.
    assert [tuple(item) for item in items] == [(red, 6, 1), (blue, 4, 2), (hm, 4, 2), (no, 1, 3)]
    pairs = db.execute(
        select(
            Pair.prompt_id, Pair.winner_response_id, Pair.loser_response_id, Pair.margin
        ).order_by(Pair.id)
    ).all()
    assert [tuple(pair) for pair in pairs] == [
        (prompt.id, red, blue, 2.0),
        (prompt.id, red, hm, 2.0),
        (prompt.id, red, no, 5.0),
        (prompt.id, blue, no, 3.0),
        (prompt.id, hm, no, 3.0),
    ]


def test_ratings_off_the_1_to_7_scale_give_no_scores_but_still_margins(db: Session) -> None:
    project = make_project(db)
    run(
        db,
        project,
        [
            ranked(1, "Q", ("a", 1, 9.5), ("b", 2, 7.0)),
            ranked(2, "R", ("c", 1, None), ("d", 2, None)),
        ],
    )

    assert db.execute(
        select(ComparisonItem.score).order_by(ComparisonItem.response_id)
    ).scalars().all() == [None, None, None, None]
    assert db.execute(select(Pair.margin).order_by(Pair.id)).scalars().all() == [2.5, None]


def test_prompts_are_deduplicated_within_the_project_and_across_batches(db: Session) -> None:
    project, other = make_project(db), make_project(db, "Other")
    existing = Prompt(
        project_id=project.id,
        messages=[{"role": "user", "content": "Old"}],
        source="manual",
        content_hash=prompt_content_hash([{"role": "user", "content": "Old"}]),
    )
    elsewhere = Prompt(
        project_id=other.id,
        messages=[{"role": "user", "content": "New"}],
        source="manual",
        content_hash=prompt_content_hash([{"role": "user", "content": "New"}]),
    )
    db.add_all([existing, elsewhere])
    db.commit()
    records = [
        ranked(line, text, ("x", 1, None), ("y", 2, None))
        for line, text in enumerate(["Old", "New", "New", "Newer", "New"], start=1)
    ]

    result = run(db, project, records, batch_size=2)

    assert (result.prompts_created, result.prompts_reused) == (2, 3)
    # "New" three times with the same two answers, the third in a later batch: one row
    # stored, two merged, their responses counted as merged rather than stored again.
    assert (result.comparisons, result.responses, result.responses_merged) == (3, 6, 4)
    assert (result.rows_imported, result.rows_merged, result.skipped) == (3, 2, 0)
    ids = db.execute(select(Comparison.prompt_id).order_by(Comparison.id)).scalars().all()
    new, newer = (
        db.scalar(
            select(Prompt.id).where(
                Prompt.project_id == project.id,
                Prompt.content_hash == prompt_content_hash([{"role": "user", "content": text}]),
            )
        )
        for text in ("New", "Newer")
    )
    assert ids == [existing.id, new, newer]


def test_demonstrations_and_prompts_alone(db: Session) -> None:
    project = make_project(db)
    sft = Record(
        line=1,
        prompt=(user("Hi"),),
        demonstration=(assistant("Hello."), user("Bye"), assistant("Bye!")),
        category="chat",
    )
    top = Record(
        line=2,
        prompt=(user("Q"),),
        demonstration=(assistant("best"),),
        candidates=(Candidate("worse", rank=2), Candidate("best", rank=1), Candidate("unranked")),
    )
    alone = Record(line=3, prompt=(Turn("system", "Be brief."), user("Why?")))

    result = run(db, project, [sft, top, alone])

    assert result.model_dump(
        include={
            "records_imported",
            "prompts_created",
            "responses",
            "demonstrations",
            "comparisons",
            "pairs",
        }
    ) == {
        "records_imported": 3,
        "prompts_created": 3,
        "responses": 4,
        "demonstrations": 2,
        "comparisons": 1,
        "pairs": 1,
    }
    demos = db.scalars(select(Demonstration).order_by(Demonstration.id)).all()
    responses = {r.id: r.content for r in db.scalars(select(Response))}
    assert [
        (d.source.value, d.source_name, d.labeler_id, d.messages, responses[d.response_id])
        for d in demos
    ] == [
        (
            "import",
            "test.jsonl",
            None,
            [
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Bye!"},
            ],
            "Hello.",
        ),
        ("import", "test.jsonl", None, [{"role": "assistant", "content": "best"}], "best"),
    ]
    categories = db.execute(select(Prompt.category).order_by(Prompt.id)).scalars().all()
    assert categories == [PromptCategory.chat, PromptCategory.other, PromptCategory.other]
    # The unranked reply is stored as a response but is no part of the judgement.
    assert db.execute(
        select(ComparisonItem.rank).order_by(ComparisonItem.rank)
    ).scalars().all() == [1, 2]


def test_stop_on_a_bad_row_keeps_nothing(db: Session) -> None:
    project = make_project(db)
    before = db_state(db, TABLES)
    records = [ranked(line, f"Q{line}", ("a", 1, None), ("b", 2, None)) for line in range(1, 6)]
    records.insert(4, RowError(5, "invalid JSON"))

    result = run(db, project, records, on_error="stop", batch_size=2)

    assert result == ImportResult(
        source="test.jsonl",
        rows_read=5,
        stopped=True,
        stop_error=ImportRowError(line=5, reason="invalid JSON"),
    )
    assert db_state(db, TABLES) == before


def test_skip_counts_and_lists_the_first_errors(db: Session) -> None:
    project = make_project(db)
    records: list[Any] = [RowError(line, f"bad {line}") for line in range(1, 106)]
    records.append(ranked(106, "Q", ("a", 1, None), ("b", 2, None)))
    records.append(Record(line=107, prompt=(assistant("not a prompt"),)))
    seen: list[ImportProgress] = []

    result = run(db, project, records, progress=seen.append)

    assert (result.rows_read, result.records_imported, result.skipped) == (107, 1, 106)
    assert len(result.errors) == 100
    assert result.errors[0] == ImportRowError(line=1, reason="bad 1")
    assert result.errors[-1] == ImportRowError(line=100, reason="bad 100")
    assert seen == [ImportProgress(rows_read=107, records_imported=1, skipped=106)]
    assert db_state(db, ("comparisons",))["comparisons"][0]["source"] == "import"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (
            Record(line=4, prompt=(user("Q"),), candidates=(Candidate(" ", rank=1),)),
            "empty text in the prompt, a demonstration or a response",
        ),
        (Record(line=4, prompt=(user("Q\x00"),)), "text may not contain NUL bytes"),
        (
            Record(line=4, prompt=(user("Q"),), candidates=(Candidate("a", rank=0),)),
            "rank 0 is not 1 or more",
        ),
        (Record(line=4, prompt=(user("Q"),), category="poetry"), "unknown category 'poetry'"),
        (
            Record(line=4, prompt=(user("Q"),), demonstration=(user("again"),)),
            "a demonstration must start with an assistant turn",
        ),
    ],
)
def test_records_from_elsewhere_are_checked(db: Session, record: Record, reason: str) -> None:
    project = make_project(db)
    before = db_state(db, TABLES)

    result = run(
        db, project, [ranked(1, "fine", ("a", 1, None), ("b", 2, None)), record], on_error="stop"
    )

    assert result.stop_error == ImportRowError(line=4, reason=reason)
    assert db_state(db, TABLES) == before


def test_an_exception_mid_stream_rolls_back(db: Session) -> None:
    project = make_project(db)
    before = db_state(db, TABLES)

    def records() -> Any:
        yield ranked(1, "Q", ("a", 1, None), ("b", 2, None))
        raise InvalidInput("the file broke off")

    with pytest.raises(InvalidInput, match="the file broke off"):
        run(db, project, records(), batch_size=1)
    assert db_state(db, TABLES) == before


def test_bad_arguments_are_refused(db: Session) -> None:
    project = make_project(db)
    with pytest.raises(NotFound, match="no project with id 999999"):
        import_records(db, 999999, [], source="x", on_error="skip", acting=None)
    with pytest.raises(InvalidInput, match="on_error must be 'skip' or 'stop'"):
        import_records(
            db,
            project.id,
            [],
            source="x",
            on_error="ignore",  # type: ignore[arg-type]
            acting=None,
        )
    with pytest.raises(InvalidInput, match="name the import's source"):
        import_records(db, project.id, [], source=" ", on_error="skip", acting=None)


def test_progress_is_reported_after_each_batch_and_at_the_end(db: Session) -> None:
    project = make_project(db)
    records: list[Any] = [
        ranked(line, f"Q{line}", ("a", 1, None), ("b", 2, None)) for line in range(1, 6)
    ]
    records.insert(1, RowError(9, "bad"))
    seen: list[ImportProgress] = []

    run(db, project, records, batch_size=2, progress=seen.append)

    assert seen == [
        ImportProgress(rows_read=3, records_imported=2, skipped=1),
        ImportProgress(rows_read=5, records_imported=4, skipped=1),
        ImportProgress(rows_read=6, records_imported=5, skipped=1),
    ]

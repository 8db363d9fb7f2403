"""app.services.search: the same words find the same prompts on both databases; on SQLite the
FTS5 tables follow every insert, update and delete, and nothing typed is FTS5 syntax."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models import Prompt, Response, ResponseSource
from app.services import search
from tests.factories import make_project, make_prompt, make_responses


def found(db: Session, words: str, project_id: int) -> list[int]:
    matches = search.prompt_matches(db, words)
    assert matches is not None
    query = select(Prompt.id).where(Prompt.project_id == project_id, matches)
    return list(db.scalars(query.order_by(Prompt.id)))


def found_with_responses(db: Session, words: str, project_id: int, walk: int = 1000) -> list[int]:
    query = select(Prompt.id).where(Prompt.project_id == project_id)
    rows = search.newest_prompts(db, query, words, 100, walk=walk)
    return sorted(row.id for row in rows)


def test_fts5_query_quotes_every_word() -> None:
    assert search.fts5_query("Haiku  rain") == '"Haiku" "rain"'
    assert search.fts5_query('say "hi" OR NEAR(a b) col:x pre*') == (
        '"say" """hi""" "OR" "NEAR(a" "b)" "col:x" "pre*"'
    )
    assert search.fts5_query("a\x00b") == '"a" "b"'
    # Words without a letter or digit hold no token: left out, and nothing left is None.
    assert search.fts5_query("% haiku --") == '"haiku"'
    assert search.fts5_query('% " -- *') is None


def test_an_empty_search_selects_everything(db: Session) -> None:
    assert search.prompt_matches(db, "") is None
    assert search.prompt_matches(db, " \t\n") is None
    project = make_project(db)
    prompts = [make_prompt(db, project, f"Prompt {n}") for n in range(3)]
    query = select(Prompt.id).where(Prompt.project_id == project.id)
    rows = search.newest_prompts(db, query, "  ", 2)
    assert [row.id for row in rows] == [prompts[2].id, prompts[1].id]


def test_every_word_whole_and_in_any_case(db: Session) -> None:
    project = make_project(db)
    rain = make_prompt(db, project, "Write a haiku about RAIN.")
    cafe = make_prompt(db, project, "Café au lait, s'il vous plaît?")
    other = make_prompt(db, make_project(db, name="Other"), "A haiku about rain.")
    db.flush()

    assert found(db, "haiku rain", project.id) == [rain.id]
    assert found(db, "HAIKU", project.id) == [rain.id]
    assert found(db, "haiku sunshine", project.id) == []
    assert found(db, "hai", project.id) == []  # no prefixes
    assert found(db, "haikus", project.id) == []  # no stemming
    assert found(db, "about a", project.id) == [rain.id]  # no stop words
    assert found(db, "haiku\x00rain", project.id) == [rain.id]  # NUL parts words, no error
    assert found(db, "café", project.id) == [cafe.id]
    assert found(db, "CAFÉ", project.id) == [cafe.id]
    assert found(db, "cafe", project.id) == []  # diacritics count, as in 'simple'
    # The role is a string of the messages too, as PostgreSQL's to_tsvector(jsonb) reads it.
    assert found(db, "user", project.id) == [rain.id, cafe.id]
    assert found(db, "haiku", other.project_id) == [other.id]


@pytest.mark.parametrize(
    "typed",
    ['"', '"haiku', "haiku OR", "NEAR(haiku rain)", "text:haiku", "hai*", "^haiku", "(", "%", "-"],
)
def test_nothing_typed_is_query_syntax(db: Session, typed: str) -> None:
    project = make_project(db)
    make_prompt(db, project, "Write a haiku about rain or snow.")
    db.flush()
    expected = {
        '"': [],
        '"haiku': "all",
        "haiku OR": "all",  # "or" is a word of the prompt
        "NEAR(haiku rain)": [],  # "near" is not
        "text:haiku": [],
        "hai*": [],
        "^haiku": "all",
        "(": [],
        "%": [],
        "-": [],
    }[typed]
    prompt_ids = list(db.scalars(select(Prompt.id).where(Prompt.project_id == project.id)))
    assert found(db, typed, project.id) == (prompt_ids if expected == "all" else [])
    assert found_with_responses(db, typed, project.id) == (prompt_ids if expected == "all" else [])


def test_a_prompt_is_found_by_its_own_words_or_one_response_holding_them_all(
    db: Session,
) -> None:
    project = make_project(db)
    asked = make_prompt(db, project, "Explain photosynthesis.")
    answered = make_prompt(db, project, "Tell me about plants.")
    make_responses(db, answered, 2)  # "answer 0", "answer 1"
    db.flush()

    assert found_with_responses(db, "photosynthesis", project.id) == [asked.id]
    assert found_with_responses(db, "answer", project.id) == [answered.id]
    assert found_with_responses(db, "ANSWER 1", project.id) == [answered.id]
    # All words in one place: the prompt, or one response.
    assert found_with_responses(db, "answer plants", project.id) == []
    assert found_with_responses(db, "answer 2", project.id) == []
    assert found(db, "answer", project.id) == []


@pytest.mark.parametrize("walk", [1, 2, 3, 1000])
def test_newest_first_whether_the_newest_are_walked_or_the_index_is_asked(
    db: Session, walk: int
) -> None:
    # On PostgreSQL the newest `walk` prompts are tested first, then the GIN indexes are asked
    # when they hold less than the page: the page is the same either way.
    project = make_project(db)
    prompts = [make_prompt(db, project, f"Prompt {n}") for n in range(6)]
    for prompt in (prompts[0], prompts[2]):
        prompt.messages = [{"role": "user", "content": f"Zebra {prompt.id}"}]
    make_responses(db, prompts[3], 1)  # "answer 0"
    db.add(
        Response(
            prompt_id=prompts[5].id,
            content="A zebra.",
            source=ResponseSource.imported,
            source_name="t",
        )
    )
    db.flush()
    query = select(Prompt.id).where(Prompt.project_id == project.id)

    def page(words: str, count: int, below: int | None = None) -> list[int]:
        paged = query if below is None else query.where(Prompt.id < below)
        return [row.id for row in search.newest_prompts(db, paged, words, count, walk=walk)]

    zebras = [prompts[5].id, prompts[2].id, prompts[0].id]
    assert page("zebra", 10) == zebras
    assert page("zebra", 2) == zebras[:2]
    assert page("zebra", 2, below=zebras[1]) == zebras[2:]
    assert page("ZEBRA", 1, below=prompts[5].id) == [prompts[2].id]
    assert page("answer", 10) == [prompts[3].id]
    assert page("answer zebra", 10) == []
    assert page("%", 10) == []


@pytest.fixture
def sqlite_only(db: Session) -> None:
    if db.get_bind().dialect.name != "sqlite":
        pytest.skip("the FTS5 tables are SQLite's")


def fts_rowids(db: Session, fts: str, words: str) -> list[int]:
    rows = db.execute(
        text(f"SELECT rowid FROM {fts} WHERE {fts} MATCH :q ORDER BY rowid"),
        {"q": search.fts5_query(words)},
    )
    return [row[0] for row in rows]


def integrity_check(db: Session) -> None:
    for fts in ("prompts_fts", "responses_fts"):
        db.execute(text(f"INSERT INTO {fts} ({fts}) VALUES ('integrity-check')"))


def test_sqlite_fts_tables_follow_inserts_updates_and_deletes(
    db: Session, sqlite_only: None
) -> None:
    project = make_project(db)
    prompt = make_prompt(db, project, "Describe a zebra.")
    [response] = make_responses(db, prompt, 1)
    db.flush()
    assert fts_rowids(db, "prompts_fts", "zebra") == [prompt.id]
    assert fts_rowids(db, "responses_fts", "answer 0") == [response.id]

    prompt.messages = [{"role": "user", "content": "Describe a giraffe."}]
    response.content = "a long neck"
    db.flush()
    assert fts_rowids(db, "prompts_fts", "zebra") == []
    assert fts_rowids(db, "prompts_fts", "giraffe") == [prompt.id]
    assert fts_rowids(db, "responses_fts", "answer") == []
    assert fts_rowids(db, "responses_fts", "neck") == [response.id]
    assert found_with_responses(db, "neck", project.id) == [prompt.id]
    integrity_check(db)

    # An update of another column leaves the index as it was.
    prompt.source = "elsewhere"
    response.source_name = "elsewhere"
    db.flush()
    assert fts_rowids(db, "prompts_fts", "giraffe") == [prompt.id]
    assert fts_rowids(db, "responses_fts", "neck") == [response.id]

    db.delete(response)
    db.flush()
    assert fts_rowids(db, "responses_fts", "neck") == []
    db.delete(prompt)
    db.flush()
    assert fts_rowids(db, "prompts_fts", "giraffe") == []
    assert prompt.id not in fts_rowids(db, "prompts_fts", "user")
    integrity_check(db)


def test_sqlite_fts_reads_every_string_of_the_messages(db: Session, sqlite_only: None) -> None:
    project = make_project(db)
    prompt = Prompt(
        project_id=project.id,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Ünïcödé 東京 question"},
        ],
        source="test",
        content_hash="hash-strings",
    )
    db.add(prompt)
    db.flush()
    for words in ("system brief", "ÜNÏCÖDÉ", "東京", "question user"):
        assert found(db, words, project.id) == [prompt.id], words
    # Keys are not words of the prompt (nor are they on PostgreSQL).
    assert found(db, "content", project.id) == []

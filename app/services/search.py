"""Full-text search of prompts and responses, for the data browser (app/services/browsing.py).

A search is words, every one of which must be found; case does not matter, a word matches a
whole word (no stemming, no prefixes, no stop words), so every language is treated alike.

PostgreSQL: `to_tsvector('simple', ...) @@ plainto_tsquery('simple', ...)` on the expressions
the GIN indexes of migration 0008_search are built on. The prompt search (prompt or response)
tests the newest prompts one by one before it asks the indexes (`newest_prompts`).

SQLite: the FTS5 tables of migration 0010 (`prompts_fts`, `responses_fts`; unicode61
tokenizer, diacritics kept). Each word of the search is quoted, so nothing a person types is
FTS5 syntax: `"a OR b"`, `NEAR(...)`, `col:word` and `word*` are plain words. A word FTS5
splits into several tokens ("e-mail") must be found as that phrase; PostgreSQL's parser keeps
"e-mail" as one word besides its parts ("e-mail", "e", "mail"), so it finds "e-mail" but not
"e mail", which SQLite also finds. A search with no letter or digit finds nothing on both
(PostgreSQL's parser, like FTS5's tokenizer, makes no word of it), without asking either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    column,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    table,
    union,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.models import Prompt, Response

# A literal, not a bound parameter, so the expression is the very one the GIN indexes of
# migration 0008_search are built on (app/models/content.py search_index) and the planner uses them.
SEARCH_CONFIG = literal_column("'simple'::regconfig")
# The FTS5 tables of migration 0010 (SQLite only): rowid is the prompt's or response's id.
PROMPTS_FTS = table("prompts_fts", column("rowid"), column("text"))
RESPONSES_FTS = table("responses_fts", column("rowid"), column("text"))
# How many of the newest prompts (after the other filters) the prompt search on PostgreSQL
# tests one by one before it asks the indexes (1,000 that miss cost about 45 ms on a 2-core
# machine at load 10); a word in at least 1 prompt in 20 fills a page of 50 from them.
WALK = 1000


def _words(search: str) -> list[str]:
    # NUL ends a string in SQLite's C API and PostgreSQL refuses it: it separates words here.
    return search.replace("\x00", " ").split()


def fts5_query(search: str) -> str | None:
    """The FTS5 query for every word of `search`, each a quoted string; None when no word
    holds a letter or digit (FTS5 would find no token in it)."""
    words = [word for word in _words(search) if any(char.isalnum() for char in word)]
    return " ".join('"' + word.replace('"', '""') + '"' for word in words) or None


def _postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def _tsquery(search: str) -> Any:
    return func.plainto_tsquery(SEARCH_CONFIG, " ".join(_words(search)))


def _fts_ids(fts: Any, query: str) -> Any:
    return select(fts.c.rowid).where(fts.c.text.match(query))


def prompt_matches(db: Session, search: str) -> ColumnElement[bool] | None:
    """The prompt (its messages) holds every word of `search`; None for an empty search."""
    if not _words(search):
        return None
    query = fts5_query(search)
    if query is None:
        return false()
    if _postgres(db):
        return _vector(Prompt.messages).op("@@")(_tsquery(search))
    return Prompt.id.in_(_fts_ids(PROMPTS_FTS, query))


def newest_prompts(
    db: Session, query: Select[Any], search: str, count: int, *, walk: int = WALK
) -> Sequence[Row[Any]]:
    """The first `count` rows of `query` (prompts, newest first) that hold every word of
    `search` in the prompt or in one of its responses; every row for an empty search."""
    newest = query.order_by(Prompt.id.desc())
    if not _words(search):
        return db.execute(newest.limit(count)).all()
    words = fts5_query(search)
    if words is None:
        return []
    if not _postgres(db):
        responses = select(Response.prompt_id).where(
            Response.id.in_(_fts_ids(RESPONSES_FTS, words))
        )
        found = or_(Prompt.id.in_(_fts_ids(PROMPTS_FTS, words)), Prompt.id.in_(responses))
        return db.execute(newest.where(found).limit(count)).all()
    # A word in most rows is found among the newest prompts at once, but the GIN indexes
    # return every row that has it (the ids of every prompt, united and sorted, took 1.3 s
    # for a word in every response at a million comparisons); a rare word is the other way
    # round. So the newest `walk` prompts are tested one by one first, and the indexes are
    # asked only when those hold less than a page. Both steps find the same rows, newest
    # first, so the page is the same either way.
    tsquery = _tsquery(search)
    bound = db.scalar(
        query.with_only_columns(Prompt.id).order_by(Prompt.id.desc()).offset(walk - 1).limit(1)
    )
    walked = newest.where(_tested_one_by_one(tsquery))
    if bound is not None:
        walked = walked.where(Prompt.id >= bound)
    rows = db.execute(walked.limit(count)).all()
    if len(rows) == count or bound is None:
        return rows
    indexed = union(
        select(Prompt.id).where(_vector(Prompt.messages).op("@@")(tsquery)),
        select(Response.prompt_id).where(_vector(Response.content).op("@@")(tsquery)),
    )
    return db.execute(newest.where(Prompt.id.in_(indexed)).limit(count)).all()


def _vector(text: Any) -> Any:
    return func.to_tsvector(SEARCH_CONFIG, text)


def _tested_one_by_one(tsquery: Any) -> ColumnElement[bool]:
    # OFFSET 0 keeps PostgreSQL from turning the EXISTS into a hash of every matching
    # response, which it may judge cheaper for a common word (0.5 s at 100,000 comparisons).
    in_response = exists(
        select(1)
        .where(Response.prompt_id == Prompt.id, _vector(Response.content).op("@@")(tsquery))
        .offset(0)
    )
    return or_(_vector(Prompt.messages).op("@@")(tsquery), in_response)

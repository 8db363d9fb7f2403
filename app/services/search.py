"""Full-text search of prompts and responses, for the data browser (app/services/browsing.py).

A search is words, every one of which must be found; case does not matter, a word matches a
whole word (no stemming, no prefixes, no stop words), so every language is treated alike.

PostgreSQL: `to_tsvector('simple', ...) @@ plainto_tsquery('simple', ...)` on the expressions
the GIN indexes of migration 0008_search are built on.

SQLite: the FTS5 tables of migration 0009 (`prompts_fts`, `responses_fts`; unicode61
tokenizer, diacritics kept). Each word of the search is quoted, so nothing a person types is
FTS5 syntax: `"a OR b"`, `NEAR(...)`, `col:word` and `word*` are plain words. A word FTS5
splits into several tokens ("e-mail") must be found as that phrase; PostgreSQL's parser keeps
"e-mail" as one word besides its parts ("e-mail", "e", "mail"), so it finds "e-mail" but not
"e mail", which SQLite also finds. A search with no letter or digit finds nothing on both
(PostgreSQL's parser, like FTS5's tokenizer, makes no word of it), without asking either.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import column, exists, false, func, literal_column, or_, select, table
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from app.models import Prompt, Response

# A literal, not a bound parameter, so the expression is the very one the GIN indexes of
# migration 0008_search are built on (app/models/content.py search_index) and the planner uses them.
SEARCH_CONFIG = literal_column("'simple'::regconfig")
# The FTS5 tables of migration 0009 (SQLite only): rowid is the prompt's or response's id.
PROMPTS_FTS = table("prompts_fts", column("rowid"), column("text"))
RESPONSES_FTS = table("responses_fts", column("rowid"), column("text"))


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
        return func.to_tsvector(SEARCH_CONFIG, Prompt.messages).op("@@")(_tsquery(search))
    return Prompt.id.in_(_fts_ids(PROMPTS_FTS, query))


def prompt_or_response_matches(db: Session, search: str) -> ColumnElement[bool] | None:
    """The prompt, or one of its responses, holds every word of `search`; None for an empty
    search."""
    if not _words(search):
        return None
    query = fts5_query(search)
    if query is None:
        return false()
    if _postgres(db):
        # Two EXISTS, so PostgreSQL plans each side on its own and picks per word: for a rare
        # word it reads the GIN index once and keeps the ids in a hash ("hashed SubPlan") to
        # test the prompts against from the newest (a word found nowhere reads them all: 0.1 s
        # at 333,000 prompts); for a word in most rows it tests the newest prompts' own text
        # one by one and stops at the page's end. One plan for both fails one of them: the ids
        # from the indexes, united and sorted, took 1.3 s for a word in every response at a
        # million comparisons.
        tsquery = _tsquery(search)
        searched = aliased(Prompt)
        in_prompt = exists().where(
            searched.id == Prompt.id,
            func.to_tsvector(SEARCH_CONFIG, searched.messages).op("@@")(tsquery),
        )
        in_response = exists().where(
            Response.prompt_id == Prompt.id,
            func.to_tsvector(SEARCH_CONFIG, Response.content).op("@@")(tsquery),
        )
        return or_(in_prompt, in_response)
    responses = select(Response.prompt_id).where(Response.id.in_(_fts_ids(RESPONSES_FTS, query)))
    return or_(Prompt.id.in_(_fts_ids(PROMPTS_FTS, query)), Prompt.id.in_(responses))

"""What gets labeled: prompts (conversation prefixes) and candidate responses."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, func, literal_column
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, JSONType, str_enum


class PromptCategory(enum.StrEnum):
    """InstructGPT's use-case categories."""

    generation = "generation"
    open_qa = "open_qa"
    brainstorming = "brainstorming"
    chat = "chat"
    rewrite = "rewrite"
    summarization = "summarization"
    classification = "classification"
    closed_qa = "closed_qa"
    extraction = "extraction"
    other = "other"


class ResponseSource(enum.StrEnum):
    human = "human"
    imported = "import"
    model = "model"


def search_index(name: str, column: str) -> Index:
    """A GIN index on to_tsvector('simple', column), created on PostgreSQL alone (SQLite
    searches the FTS5 tables of migration 0010; see app/services/search.py)."""
    vector = func.to_tsvector(literal_column("'simple'::regconfig"), literal_column(column))
    return Index(name, vector, postgresql_using="gin").ddl_if(dialect="postgresql")


class Prompt(CreatedAt, Base):
    """A conversation prefix ending with a user turn: [{"role": ..., "content": ...}, ...]."""

    __tablename__ = "prompts"
    # Full-text search of the data browser (app/services/search.py), PostgreSQL only.
    __table_args__ = (search_index("ix_prompts_search", "messages"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    category: Mapped[PromptCategory] = mapped_column(
        str_enum(PromptCategory, "prompt_category"), default=PromptCategory.other
    )
    # Where it came from, e.g. "labeler", "import:hh-rlhf.jsonl".
    source: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the canonical messages, for finding duplicates on import.
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Response(CreatedAt, Base):
    """One candidate assistant turn for a prompt, with where it came from."""

    __tablename__ = "responses"
    __table_args__ = (
        CheckConstraint("source <> 'human' OR author_id IS NOT NULL", name="human_has_author"),
        CheckConstraint("source <> 'model' OR model_id IS NOT NULL", name="model_has_model"),
        search_index("ix_responses_search", "content"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    content: Mapped[str] = mapped_column(Text)
    source: Mapped[ResponseSource] = mapped_column(str_enum(ResponseSource, "response_source"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    # Free-text origin for imports ("gpt-3.5-turbo via UltraFeedback").
    source_name: Mapped[str] = mapped_column(String(200), default="")
    # Sampling settings of a model response (temperature, top_p, max_new_tokens, seed).
    sampling: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # The response this one was rewritten from, when a labeler edited a candidate.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("responses.id"))

"""Request and response shapes for prompts and their candidate responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.models.content import PromptCategory, ResponseSource
from app.schemas.common import Text

MAX_CONTENT_LENGTH = 100_000
MAX_MESSAGES = 1_000


def _not_blank(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"{what} cannot be blank")
    return value


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    # Kept exactly as written: leading spaces and newlines can matter to a model.
    content: Text = Field(min_length=1, max_length=MAX_CONTENT_LENGTH)

    _content = field_validator("content")(
        classmethod(lambda cls, v: _not_blank(v, "a message's content"))
    )


class PromptCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(max_length=MAX_MESSAGES)
    category: PromptCategory = PromptCategory.other
    source: Text = Field(default="manual", min_length=1, max_length=200)

    @field_validator("messages")
    @classmethod
    def _messages(cls, value: list[Message]) -> list[Message]:
        if not value:
            raise ValueError("a prompt needs at least one message")
        if any(message.role == "system" for message in value[1:]):
            raise ValueError("a system message can only come first")
        if value[-1].role != "user":
            raise ValueError("a prompt must end with a user turn")
        return value

    _source = field_validator("source")(
        classmethod(lambda cls, v: _not_blank(v, "a prompt's source").strip())
    )


class PromptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    messages: list[dict[str, Any]]
    category: PromptCategory
    source: str
    content_hash: str
    created_by_id: int | None
    created_at: datetime


class PromptPage(BaseModel):
    items: list[PromptOut]
    total: int
    limit: int
    offset: int


class ResponseCreate(BaseModel):
    """A candidate response. Staff may add imported or human-written ones; a model response
    must name its registered model."""

    model_config = ConfigDict(extra="forbid")

    content: Text = Field(min_length=1, max_length=MAX_CONTENT_LENGTH)
    source: ResponseSource = ResponseSource.imported
    source_name: Text = Field(default="", max_length=200)
    # Checked even when left out: a model response without its model is refused.
    model_id: int | None = Field(default=None, validate_default=True)

    _content = field_validator("content")(
        classmethod(lambda cls, v: _not_blank(v, "a response's content"))
    )

    @field_validator("model_id")
    @classmethod
    def _model_matches_source(cls, value: int | None, info: ValidationInfo) -> int | None:
        source = info.data.get("source")
        if source == ResponseSource.model and value is None:
            raise ValueError("a model response needs its model_id")
        if source is not None and source != ResponseSource.model and value is not None:
            raise ValueError("model_id is only for responses with source 'model'")
        return value

    @field_validator("source_name")
    @classmethod
    def _source_name(cls, value: str) -> str:
        return value.strip()


def typed_response(content: str, source_name: str) -> ResponseCreate:
    """A response typed into a prompts page: written by the person typing it, unless they
    name where it came from (a model's name, a website), which makes it imported from
    there. ValidationError as ResponseCreate's."""
    source = ResponseSource.imported if source_name.strip() else ResponseSource.human
    return ResponseCreate(content=content, source=source, source_name=source_name)


class ResponseOut(BaseModel):
    """Staff only: the source says which response came from where, which labelers never see."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    prompt_id: int
    content: str
    source: ResponseSource
    source_name: str
    author_id: int | None
    model_id: int | None
    run_id: int | None
    sampling: dict[str, Any] | None
    parent_id: int | None
    created_at: datetime


class ResponseEdit(BaseModel):
    """New text for a response no label references yet."""

    model_config = ConfigDict(extra="forbid")

    content: Text = Field(min_length=1, max_length=MAX_CONTENT_LENGTH)

    _content = field_validator("content")(
        classmethod(lambda cls, v: _not_blank(v, "a response's content"))
    )


class BatchResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: Text = Field(min_length=1, max_length=MAX_CONTENT_LENGTH)
    source_name: Text = Field(default="", max_length=200)

    _content = field_validator("content")(
        classmethod(lambda cls, v: _not_blank(v, "a response's content"))
    )


class PromptBatchLine(BaseModel):
    """One line of a pasted or uploaded batch: {"prompt": "..."} or {"messages": [...]}, with an
    optional category and responses (text, or {"content": ..., "source_name": ...})."""

    model_config = ConfigDict(extra="forbid")

    prompt: Text | None = Field(default=None, max_length=MAX_CONTENT_LENGTH)
    messages: list[Message] | None = Field(default=None, max_length=MAX_MESSAGES)
    category: PromptCategory = PromptCategory.other
    responses: list[Text | BatchResponse] = Field(default=[], max_length=MAX_MESSAGES)

    def as_prompt(self, source: str) -> PromptCreate:
        """The prompt this line describes; pydantic's errors name the line's fault."""
        if (self.prompt is None) == (self.messages is None):
            raise ValueError('give either "prompt" (text) or "messages" (a conversation)')
        messages = (
            [Message(role="user", content=self.prompt)]
            if self.prompt is not None
            else self.messages
        )
        return PromptCreate(messages=messages, category=self.category, source=source)

    def as_responses(self) -> list[ResponseCreate]:
        return [
            ResponseCreate(content=item)
            if isinstance(item, str)
            else ResponseCreate(content=item.content, source_name=item.source_name)
            for item in self.responses
        ]

"""app.services.prompts: prompts (with their content hash) and candidate responses."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import Model, ModelRole, Project, PromptCategory, ResponseSource, User
from app.schemas.prompts import PromptCreate, ResponseCreate
from app.services import prompts
from tests.api.helpers import db_state

TABLES = ("prompts", "responses")


def make_project(db: Session, name: str = "Chat") -> Project:
    project = Project(name=name, label_schema={"flags": []})
    db.add(project)
    db.commit()
    return project


def user_turn(content: str = "Hi") -> dict[str, str]:
    return {"role": "user", "content": content}


def schema_error(model: type[Any], **fields: Any) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    problem = caught.value.errors()[0]
    return ".".join(str(part) for part in problem["loc"]), problem["msg"]


# --- prompts ----------------------------------------------------------------------------------


def test_create_prompt_stores_messages_category_source_and_hash(
    db: Session, researcher: User
) -> None:
    project = make_project(db)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "  Another — ünïcode  "},
    ]
    data = PromptCreate(messages=messages, category="open_qa", source="  hh-rlhf  ")

    prompt = prompts.create_prompt(db, project.id, data, researcher)

    db.expire_all()
    stored = prompts.get_prompt(db, prompt.id)
    assert stored.project_id == project.id
    assert stored.messages == messages
    assert stored.category == PromptCategory.open_qa
    assert stored.source == "hh-rlhf"
    assert stored.created_by_id == researcher.id
    canonical = (
        '[{"content":"Be brief.","role":"system"},{"content":"Name a prime.","role":"user"},'
        '{"content":"2","role":"assistant"},{"content":"  Another — ünïcode  ","role":"user"}]'
    )
    assert stored.content_hash == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_prompt_defaults_to_category_other_and_source_manual(db: Session, admin: User) -> None:
    prompt = prompts.create_prompt(
        db, make_project(db).id, PromptCreate(messages=[user_turn()]), admin
    )
    assert (prompt.category, prompt.source) == (PromptCategory.other, "manual")
    expected = hashlib.sha256(b'[{"content":"Hi","role":"user"}]').hexdigest()
    assert prompt.content_hash == expected


def test_same_conversation_has_the_same_hash_whatever_the_key_order() -> None:
    assert prompts.prompt_content_hash(
        [{"content": "Hi", "role": "user"}]
    ) == prompts.prompt_content_hash([{"role": "user", "content": "Hi"}])
    assert prompts.prompt_content_hash([user_turn("Hi")]) != prompts.prompt_content_hash(
        [user_turn("Hi ")]
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"messages": []}, ("messages", "Value error, a prompt needs at least one message")),
        (
            {"messages": [user_turn(), {"role": "assistant", "content": "Hello"}]},
            ("messages", "Value error, a prompt must end with a user turn"),
        ),
        (
            {"messages": [user_turn(), {"role": "system", "content": "x"}, user_turn()]},
            ("messages", "Value error, a system message can only come first"),
        ),
        (
            {"messages": [{"role": "system", "content": "Be nice."}]},
            ("messages", "Value error, a prompt must end with a user turn"),
        ),
        (
            {"messages": [user_turn("")]},
            ("messages.0.content", "String should have at least 1 character"),
        ),
        (
            {"messages": [user_turn(" \n ")]},
            ("messages.0.content", "Value error, a message's content cannot be blank"),
        ),
        (
            {"messages": [user_turn("x" * 100_001)]},
            ("messages.0.content", "String should have at most 100000 characters"),
        ),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            ("messages.0.role", "Input should be 'system', 'user' or 'assistant'"),
        ),
        (
            {"messages": [{"role": "user", "content": "x", "name": "bob"}]},
            ("messages.0.name", "Extra inputs are not permitted"),
        ),
        (
            {"messages": [user_turn()], "category": "poetry"},
            (
                "category",
                "Input should be 'generation', 'open_qa', 'brainstorming', 'chat', 'rewrite', "
                "'summarization', 'classification', 'closed_qa', 'extraction' or 'other'",
            ),
        ),
        (
            {"messages": [user_turn()], "source": "   "},
            ("source", "Value error, a prompt's source cannot be blank"),
        ),
    ],
    ids=[
        "no-messages",
        "ends-with-assistant",
        "system-in-the-middle",
        "only-system",
        "empty-content",
        "blank-content",
        "content-too-long",
        "unknown-role",
        "extra-key",
        "unknown-category",
        "blank-source",
    ],
)
def test_invalid_prompts_are_refused(fields: dict[str, Any], expected: tuple[str, str]) -> None:
    assert schema_error(PromptCreate, **fields) == expected


def test_content_of_exactly_100k_characters_is_fine() -> None:
    assert len(PromptCreate(messages=[user_turn("x" * 100_000)]).messages[0].content) == 100_000


def test_prompt_for_an_unknown_project_is_404_and_adds_nothing(db: Session, admin: User) -> None:
    before = db_state(db, TABLES)
    with pytest.raises(NotFound) as caught:
        prompts.create_prompt(db, 999_999, PromptCreate(messages=[user_turn()]), admin)
    assert caught.value.message == "no project with id 999999"
    assert db_state(db, TABLES) == before


def test_list_prompts_pages_through_one_project_in_creation_order(db: Session, admin: User) -> None:
    project, other = make_project(db, "A"), make_project(db, "B")
    made = [
        prompts.create_prompt(db, project.id, PromptCreate(messages=[user_turn(f"q{i}")]), admin)
        for i in range(5)
    ]
    prompts.create_prompt(db, other.id, PromptCreate(messages=[user_turn("elsewhere")]), admin)

    assert [p.id for p in prompts.list_prompts(db, project.id, 2, 0)] == [made[0].id, made[1].id]
    assert [p.id for p in prompts.list_prompts(db, project.id, 2, 4)] == [made[4].id]
    assert prompts.list_prompts(db, project.id, 2, 5) == []
    assert prompts.count_prompts(db, project.id) == 5
    with pytest.raises(NotFound):
        prompts.list_prompts(db, 999_999, 10, 0)


def test_unknown_prompt_is_404(db: Session) -> None:
    with pytest.raises(NotFound) as caught:
        prompts.get_prompt(db, 999_999)
    assert caught.value.message == "no prompt with id 999999"


# --- responses --------------------------------------------------------------------------------


@pytest.fixture
def prompt_id(db: Session, admin: User) -> int:
    return prompts.create_prompt(
        db, make_project(db).id, PromptCreate(messages=[user_turn()]), admin
    ).id


def test_imported_response_has_no_author(db: Session, researcher: User, prompt_id: int) -> None:
    response = prompts.add_response(
        db,
        prompt_id,
        ResponseCreate(content="Hello!", source_name="  gpt-3.5 via UltraFeedback "),
        researcher,
    )
    db.expire_all()
    assert prompts.list_responses(db, prompt_id) == [response]
    assert (response.content, response.source, response.source_name) == (
        "Hello!",
        ResponseSource.imported,
        "gpt-3.5 via UltraFeedback",
    )
    assert (response.author_id, response.model_id) == (None, None)


def test_human_response_is_written_by_the_person_adding_it(
    db: Session, admin: User, prompt_id: int
) -> None:
    response = prompts.add_response(
        db, prompt_id, ResponseCreate(content="Hi there.", source="human"), admin
    )
    assert (response.source, response.author_id) == (ResponseSource.human, admin.id)


def test_model_response_names_a_registered_model(db: Session, admin: User, prompt_id: int) -> None:
    model = Model(name="sft-1", role=ModelRole.policy, path="/models/sft-1")
    db.add(model)
    db.commit()
    response = prompts.add_response(
        db, prompt_id, ResponseCreate(content="Hey", source="model", model_id=model.id), admin
    )
    assert (response.source, response.model_id, response.author_id) == (
        ResponseSource.model,
        model.id,
        None,
    )


def test_model_response_with_an_unknown_model_is_refused(
    db: Session, admin: User, prompt_id: int
) -> None:
    before = db_state(db, TABLES)
    with pytest.raises(InvalidInput) as caught:
        prompts.add_response(
            db, prompt_id, ResponseCreate(content="Hey", source="model", model_id=999_999), admin
        )
    assert (caught.value.message, caught.value.field) == ("no model with id 999999", "model_id")
    assert db_state(db, TABLES) == before


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"content": ""}, ("content", "String should have at least 1 character")),
        ({"content": "  "}, ("content", "Value error, a response's content cannot be blank")),
        (
            {"content": "x", "source": "model"},
            ("model_id", "Value error, a model response needs its model_id"),
        ),
        (
            {"content": "x", "source": "import", "model_id": 1},
            ("model_id", "Value error, model_id is only for responses with source 'model'"),
        ),
        (
            {"content": "x", "source": "robot"},
            ("source", "Input should be 'human', 'import' or 'model'"),
        ),
        ({"content": "x", "author_id": 1}, ("author_id", "Extra inputs are not permitted")),
    ],
    ids=["empty", "blank", "model-without-id", "id-without-model", "unknown-source", "extra"],
)
def test_invalid_responses_are_refused(fields: dict[str, Any], expected: tuple[str, str]) -> None:
    assert schema_error(ResponseCreate, **fields) == expected


def test_responses_of_an_unknown_prompt_are_404(db: Session, admin: User) -> None:
    before = db_state(db, TABLES)
    with pytest.raises(NotFound) as caught:
        prompts.add_response(db, 999_999, ResponseCreate(content="x"), admin)
    assert caught.value.message == "no prompt with id 999999"
    with pytest.raises(NotFound):
        prompts.list_responses(db, 999_999)
    assert db_state(db, TABLES) == before


def test_list_responses_is_in_creation_order_and_only_the_prompts_own(
    db: Session, admin: User, prompt_id: int
) -> None:
    project_id = prompts.get_prompt(db, prompt_id).project_id
    other = prompts.create_prompt(db, project_id, PromptCreate(messages=[user_turn()]), admin)
    first = prompts.add_response(db, prompt_id, ResponseCreate(content="a"), admin)
    prompts.add_response(db, other.id, ResponseCreate(content="elsewhere"), admin)
    second = prompts.add_response(db, prompt_id, ResponseCreate(content="b"), admin)

    assert [r.id for r in prompts.list_responses(db, prompt_id)] == [first.id, second.id]

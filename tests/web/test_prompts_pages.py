"""The prompts pages: staff write prompts (single or multi-turn) with responses, paste or
upload a batch, edit categories and responses nothing refers to yet; admins put prompts into
queues. Every refused form stores nothing."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Project,
    Prompt,
    PromptCategory,
    QueueKind,
    Response,
    ResponseSource,
    Task,
    TaskResponse,
    User,
)
from app.services import browsing
from app.services.prompts import prompt_content_hash
from tests.conftest import web_login
from tests.factories import make_project, make_prompt, make_queue, make_responses
from tests.web.helpers import snapshot


def _texts(pattern: str, page: str) -> list[str]:
    return [html.unescape(found) for found in re.findall(pattern, page, re.S)]


def _notice(page: str) -> str:
    return _texts(r'data-testid="notice">(.*?)</p>', page)[0]


def _project(db: Session, admin: User) -> Project:
    project = make_project(db, "Alpha", admin)
    db.commit()
    return project


def _prompts(db: Session) -> list[tuple[list[dict[str, str]], PromptCategory, str]]:
    db.expire_all()
    rows = db.scalars(select(Prompt).order_by(Prompt.id))
    return [(p.messages, p.category, p.source) for p in rows]


def _responses(db: Session) -> list[tuple[str, str, str]]:
    rows = db.scalars(select(Response).order_by(Response.id))
    return [(r.content, r.source.value, r.source_name) for r in rows]


# --- one prompt at a time ------------------------------------------------------------------


def test_admin_creates_a_prompt_with_two_responses(
    client: TestClient, db: Session, admin: User
) -> None:
    project = _project(db, admin)
    csrf = web_login(client, admin.username)

    sent = client.post(
        f"/projects/{project.id}/prompts",
        data={
            "csrf_token": csrf,
            "role": ["user"],
            "content": ["Name a colour."],
            "category": "open_qa",
            "response": ["Blue.", "Red.", ""],
            "response_source": ["model-a", "", ""],
            "action": "save",
        },
    )

    assert sent.status_code == 303
    prompt_id = db.scalars(select(Prompt.id)).one()
    assert sent.headers["location"] == f"/projects/{project.id}/prompts/{prompt_id}"
    assert _prompts(db) == [
        ([{"role": "user", "content": "Name a colour."}], PromptCategory.open_qa, "manual")
    ]
    # A response with a named source came from there; one without was written by the admin.
    assert _responses(db) == [("Blue.", "import", "model-a"), ("Red.", "human", "")]
    assert list(db.scalars(select(Response.author_id).order_by(Response.id))) == [None, admin.id]
    page = client.get(sent.headers["location"])
    assert _notice(page.text) == f"Created prompt {prompt_id} with 2 responses."
    listed = client.get(f"/projects/{project.id}/prompts").text
    assert _texts(r'data-testid="response-count">(\d+)<', listed) == ["2"]
    assert _texts(r'data-testid="task-count">(\d+)<', listed) == ["0"]


def test_add_turn_is_a_round_trip_that_stores_nothing_then_a_conversation_saves(
    client: TestClient, db: Session, admin: User
) -> None:
    project = _project(db, admin)
    csrf = web_login(client, admin.username)
    before = snapshot(db)

    more = client.post(
        f"/projects/{project.id}/prompts",
        data={"csrf_token": csrf, "role": "user", "content": "Hi.", "action": "add_turn"},
    )

    assert more.status_code == 200
    assert snapshot(db) == before
    assert _texts(
        r'<textarea id="content-\d" name="content" rows="4">(.*?)</textarea>', more.text
    ) == [
        "Hi.",
        "",
    ]
    assert re.search(
        r'id="role-2"[^>]*>\s*<option value="user" >user</option>'
        r'<option value="assistant" selected>',
        more.text,
    )

    saved = client.post(
        f"/projects/{project.id}/prompts",
        data={
            "csrf_token": csrf,
            "role": ["user", "assistant", "user"],
            "content": ["Hi.", "Hello! How can I help?", "Tell me a joke."],
            "category": "chat",
            "action": "save",
        },
    )

    assert saved.status_code == 303
    assert _prompts(db) == [
        (
            [
                {"role": "user", "content": "Hi."},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "Tell me a joke."},
            ],
            PromptCategory.chat,
            "manual",
        )
    ]


def test_a_bad_prompt_or_response_is_shown_inline_and_nothing_is_stored(
    client: TestClient, db: Session, admin: User
) -> None:
    project = _project(db, admin)
    csrf = web_login(client, admin.username)
    before = snapshot(db)

    ends_with_assistant = client.post(
        f"/projects/{project.id}/prompts",
        data={
            "csrf_token": csrf,
            "role": ["user", "assistant"],
            "content": ["Hi.", "Hello."],
            "response": ["   ", "fine"],
            "response_source": ["", ""],
            "action": "save",
        },
    )

    assert ends_with_assistant.status_code == 422
    assert _texts(r'data-testid="messages-error">(.*?)</p>', ends_with_assistant.text) == [
        "a prompt must end with a user turn"
    ]
    assert _texts(r'data-testid="response-error-1">(.*?)</p>', ends_with_assistant.text) == [
        "content: a response's content cannot be blank"
    ]
    # What was typed is still there.
    assert "Hello.</textarea>" in ends_with_assistant.text
    empty = client.post(
        f"/projects/{project.id}/prompts",
        data={"csrf_token": csrf, "role": "user", "content": "", "action": "save"},
    )
    assert empty.status_code == 422
    assert _texts(r'data-testid="messages-error">(.*?)</p>', empty.text) == [
        "a prompt needs at least one message"
    ]
    nul = client.post(
        f"/projects/{project.id}/prompts",
        data={"csrf_token": csrf, "role": "user", "content": "a\x00b", "action": "save"},
    )
    assert nul.status_code == 422
    assert snapshot(db) == before


def test_category_and_an_unlabeled_response_are_edited(
    client: TestClient, db: Session, admin: User
) -> None:
    project = _project(db, admin)
    prompt = make_prompt(db, project, "Sum 2 and 2.")
    first, _ = make_responses(db, prompt, 2)
    db.commit()
    csrf = web_login(client, admin.username)
    base = f"/projects/{project.id}/prompts/{prompt.id}"

    assert (
        client.post(
            f"{base}/category", data={"csrf_token": csrf, "category": "closed_qa"}
        ).status_code
        == 303
    )
    edited = client.post(
        f"{base}/responses/{first.id}/edit", data={"csrf_token": csrf, "content": "4"}
    )
    added = client.post(
        f"{base}/responses", data={"csrf_token": csrf, "content": "Four.", "source_name": "me"}
    )
    written = client.post(
        f"{base}/responses", data={"csrf_token": csrf, "content": "It is 4.", "source_name": " "}
    )

    assert edited.status_code == 303
    assert added.status_code == 303
    assert written.status_code == 303
    db.expire_all()
    assert prompt.category == PromptCategory.closed_qa
    assert _responses(db) == [
        ("4", "import", "test"),
        ("answer 1", "import", "test"),
        ("Four.", "import", "me"),
        ("It is 4.", "human", ""),
    ]
    assert db.scalars(select(Response.author_id).order_by(Response.id.desc())).first() == admin.id
    # The data browser's "a person" filter finds it.
    people = browsing.list_prompts(
        db, project.id, browsing.PromptFilters(response_source=ResponseSource.human)
    )
    assert [row.id for row in people.items] == [prompt.id]
    bad_category = client.post(f"{base}/category", data={"csrf_token": csrf, "category": "poetry"})
    assert bad_category.status_code == 422
    assert "&#39;poetry&#39; is not a category" in bad_category.text


def test_a_labeled_response_keeps_its_text_and_the_page_says_why(
    client: TestClient, db: Session, admin: User, labeler: User
) -> None:
    project = _project(db, admin)
    prompt = make_prompt(db, project)
    first, second = make_responses(db, prompt, 2)
    judged = Comparison(prompt_id=prompt.id, labeler_id=labeler.id, source=LabelSource.labeler)
    db.add(judged)
    db.flush()
    db.add(ComparisonItem(comparison_id=judged.id, response_id=first.id, rank=1))
    db.commit()
    csrf = web_login(client, admin.username)
    base = f"/projects/{project.id}/prompts/{prompt.id}"
    page = client.get(base).text
    assert _texts(rf'data-testid="response-locked-{first.id}">(.*?)</p>', page) == [
        "Its text is fixed: comparisons already refer to it. Add a new response instead."
    ]
    assert f'data-testid="response-locked-{second.id}"' not in page
    before = snapshot(db)

    refused = client.post(
        f"{base}/responses/{first.id}/edit", data={"csrf_token": csrf, "content": "changed"}
    )

    assert refused.status_code == 409
    assert _texts(rf'data-testid="edit-error-{first.id}">(.*?)</p>', refused.text) == [
        f"response {first.id} cannot be edited: comparisons already refer to its text; "
        "add a new response instead"
    ]
    assert snapshot(db) == before
    # Another prompt's response is not this prompt's to edit.
    other = make_prompt(db, project, "Other.")
    foreign = make_responses(db, other, 1)[0]
    db.commit()
    assert (
        client.post(
            f"{base}/responses/{foreign.id}/edit", data={"csrf_token": csrf, "content": "x"}
        ).status_code
        == 404
    )


# --- batches and queues ---------------------------------------------------------------------

GOOD_BATCH = (
    '{"prompt": "Name a fruit.", "category": "brainstorming", "responses": ["Apple.", "Pear."]}\n'
    "\n"
    '{"messages": [{"role": "user", "content": "Hi."}], "responses": '
    '[{"content": "Hello.", "source_name": "model-a"}, "Hey."]}\n'
)


def _task_rows(db: Session) -> list[tuple[int, int, list[int]]]:
    db.expire_all()
    rows = []
    for task in db.scalars(select(Task).order_by(Task.id)):
        shown = db.scalars(
            select(TaskResponse.response_id)
            .where(TaskResponse.task_id == task.id)
            .order_by(TaskResponse.position)
        )
        rows.append((task.queue_id, task.prompt_id, list(shown)))
    return rows


def test_a_pasted_batch_makes_prompts_responses_and_comparison_tasks(
    client: TestClient, db: Session, admin: User
) -> None:
    project = _project(db, admin)
    queue = make_queue(db, project, QueueKind.comparison)
    db.commit()
    csrf = web_login(client, admin.username)

    sent = client.post(
        f"/projects/{project.id}/prompts/batch",
        data={"csrf_token": csrf, "batch": GOOD_BATCH, "queue_id": str(queue.id)},
    )

    assert sent.status_code == 303
    assert _notice(client.get(sent.headers["location"]).text) == (
        "Prompts: 2 new, 0 already in the project, 0 repeated in the batch. Responses: 4 new, "
        "0 already under their prompt, 0 repeated in the batch. Added 2 tasks to comparison "
        "queue."
    )
    assert _prompts(db) == [
        ([{"role": "user", "content": "Name a fruit."}], PromptCategory.brainstorming, "paste"),
        ([{"role": "user", "content": "Hi."}], PromptCategory.other, "paste"),
    ]
    assert _responses(db) == [
        ("Apple.", "import", ""),
        ("Pear.", "import", ""),
        ("Hello.", "import", "model-a"),
        ("Hey.", "import", ""),
    ]
    first, second = db.scalars(select(Prompt.id).order_by(Prompt.id))
    answers = list(db.scalars(select(Response.id).order_by(Response.id)))
    assert _task_rows(db) == [
        (queue.id, first, answers[:2]),
        (queue.id, second, answers[2:]),
    ]


def test_a_batch_merges_prompts_and_responses_already_there_and_counts_them(
    client: TestClient, db: Session, admin: User
) -> None:
    project = _project(db, admin)
    queue = make_queue(db, project, QueueKind.comparison)
    db.commit()
    csrf = web_login(client, admin.username)
    url = f"/projects/{project.id}/prompts/batch"
    first = client.post(url, data={"csrf_token": csrf, "batch": GOOD_BATCH})
    assert first.status_code == 303
    stored_prompts, stored_responses = _prompts(db), _responses(db)
    again = (
        # Already in the project, with one response already under it and one new.
        '{"prompt": "Name a fruit.", "responses": ["Apple.", "Plum."]}\n'
        # New, then repeated in the batch with a repeated and a new response.
        '{"prompt": "Name a tree.", "responses": ["Oak.", "Elm."]}\n'
        '{"messages": [{"role": "user", "content": "Name a tree."}], '
        '"responses": ["Oak.", "Ash."]}\n'
    )

    sent = client.post(url, data={"csrf_token": csrf, "batch": again, "queue_id": str(queue.id)})

    assert sent.status_code == 303
    assert _notice(client.get(sent.headers["location"]).text) == (
        "Prompts: 1 new, 1 already in the project, 1 repeated in the batch. Responses: 4 new, "
        "1 already under their prompt, 1 repeated in the batch. Added 2 tasks to comparison "
        "queue."
    )
    assert _prompts(db) == [
        *stored_prompts,
        ([{"role": "user", "content": "Name a tree."}], PromptCategory.other, "paste"),
    ]
    assert _responses(db) == [
        *stored_responses,
        ("Plum.", "import", ""),
        ("Oak.", "import", ""),
        ("Elm.", "import", ""),
        ("Ash.", "import", ""),
    ]
    fruit, _, tree = db.scalars(select(Prompt.id).order_by(Prompt.id))
    answers = list(db.scalars(select(Response.id).order_by(Response.id)))
    # Each prompt once, with all its responses.
    assert _task_rows(db) == [
        (queue.id, fruit, [answers[0], answers[1], answers[4]]),
        (queue.id, tree, answers[5:]),
    ]
    before = snapshot(db)

    repeat = client.post(url, data={"csrf_token": csrf, "batch": again, "queue_id": str(queue.id)})

    assert repeat.status_code == 303
    assert snapshot(db) == before
    assert _notice(client.get(repeat.headers["location"]).text) == (
        "Prompts: 0 new, 3 already in the project, 0 repeated in the batch. Responses: 0 new, "
        "6 already under their prompt, 0 repeated in the batch. Added 0 tasks to comparison "
        "queue (2 already there)."
    )


def test_a_batch_response_merges_with_the_same_text_from_any_source(
    client: TestClient, db: Session, admin: User
) -> None:
    project = _project(db, admin)
    prompt = make_prompt(db, project, "Name a fruit.")
    prompt.content_hash = prompt_content_hash(prompt.messages)
    db.add(
        Response(
            prompt_id=prompt.id, content="Apple.", source=ResponseSource.human, author_id=admin.id
        )
    )
    db.commit()
    csrf = web_login(client, admin.username)

    sent = client.post(
        f"/projects/{project.id}/prompts/batch",
        data={"csrf_token": csrf, "batch": '{"prompt": "Name a fruit.", "responses": ["Apple."]}'},
    )

    assert sent.status_code == 303
    assert _notice(client.get(sent.headers["location"]).text) == (
        "Prompts: 0 new, 1 already in the project, 0 repeated in the batch. Responses: 0 new, "
        "1 already under their prompt, 0 repeated in the batch."
    )
    assert _responses(db) == [("Apple.", "human", "")]


def test_a_bad_batch_lists_every_bad_line_and_stores_nothing(
    client: TestClient, db: Session, admin: User
) -> None:
    project = _project(db, admin)
    queue = make_queue(db, project, QueueKind.comparison)
    db.commit()
    csrf = web_login(client, admin.username)
    before = snapshot(db)
    lines = "\n".join(
        [
            '{"prompt": "Fine.", "responses": ["a", "b"]}',
            "not json",
            '{"prompt": "One answer only.", "responses": ["a"]}',
            '{"prompt": "One answer twice.", "responses": ["a", "a"]}',
            '{"prompt": "Bad\\u0000byte", "responses": ["a", "b"]}',
            '{"messages": [{"role": "assistant", "content": "x"}], "responses": ["a", "b"]}',
            '["a list"]',
            '{"prompt": "x", "colour": "red", "responses": ["a", "b"]}',
        ]
    )

    sent = client.post(
        f"/projects/{project.id}/prompts/batch",
        files={"file": ("rows.jsonl", lines.encode())},
        data={"csrf_token": csrf, "queue_id": str(queue.id)},
    )

    assert sent.status_code == 422
    assert snapshot(db) == before
    assert _texts(r'data-testid="batch-problem">(.*?)</li>', sent.text) == [
        "line 2: not JSON (Expecting value)",
        "line 3: a comparison task shows 2 to 9 responses; this line has 1",
        "line 4: a comparison task shows 2 to 9 responses; this line has 1 "
        "(a repeated text is one response)",
        "line 5: prompt: text may not contain NUL bytes",
        "line 6: messages: a prompt must end with a user turn",
        "line 7: a line must be a JSON object, not list",
        "line 8: colour: Extra inputs are not permitted",
    ]
    assert "Nothing was stored: 7 of 8 lines cannot be used." in html.unescape(sent.text)


def test_admin_adds_a_prompt_to_a_queue_once(client: TestClient, db: Session, admin: User) -> None:
    project = _project(db, admin)
    queue = make_queue(db, project, QueueKind.comparison)
    lonely = make_prompt(db, project, "One answer.")
    make_responses(db, lonely, 1)
    prompt = make_prompt(db, project)
    answers = make_responses(db, prompt, 2)
    db.commit()
    csrf = web_login(client, admin.username)
    base = f"/projects/{project.id}/prompts"

    added = client.post(
        f"{base}/{prompt.id}/tasks", data={"csrf_token": csrf, "queue_id": str(queue.id)}
    )

    assert added.status_code == 303
    assert _task_rows(db) == [(queue.id, prompt.id, [a.id for a in answers])]
    before = snapshot(db)
    again = client.post(
        f"{base}/{prompt.id}/tasks", data={"csrf_token": csrf, "queue_id": str(queue.id)}
    )
    assert again.status_code == 409
    task_id = db.scalars(select(Task.id)).one()
    assert _texts(r'data-testid="queue-error">(.*?)</p>', again.text) == [
        f"comparison queue already has a task with the same responses for prompt {prompt.id} "
        f"(task {task_id}): nothing was added (a new task for a prompt needs a different set "
        "of responses)"
    ]
    too_few = client.post(
        f"{base}/{lonely.id}/tasks", data={"csrf_token": csrf, "queue_id": str(queue.id)}
    )
    assert too_few.status_code == 422
    assert _texts(r'data-testid="queue-error">(.*?)</p>', too_few.text) == [
        "a comparison task needs at least 2 responses: add another response first"
    ]
    assert snapshot(db) == before
    # A new round of responses for the prompt is a new task.
    newer = make_responses(db, prompt, 1)
    db.commit()
    round_two = client.post(
        f"{base}/{prompt.id}/tasks", data={"csrf_token": csrf, "queue_id": str(queue.id)}
    )
    assert round_two.status_code == 303
    assert _task_rows(db)[1:] == [(queue.id, prompt.id, [a.id for a in answers + newer])]


def test_roles_researchers_write_prompts_but_fill_no_queue_and_labelers_see_nothing(
    client: TestClient, db: Session, admin: User, researcher: User, labeler: User
) -> None:
    project = _project(db, admin)
    queue = make_queue(db, project, QueueKind.comparison)
    prompt = make_prompt(db, project)
    make_responses(db, prompt, 2)
    db.commit()
    base = f"/projects/{project.id}/prompts"
    csrf = web_login(client, labeler.username)
    assert client.get(base).status_code == 403
    assert client.get(f"{base}/{prompt.id}").status_code == 403
    client.cookies.clear()
    csrf = web_login(client, researcher.username)
    before = snapshot(db)

    into_queue = client.post(
        f"{base}/batch", data={"csrf_token": csrf, "batch": GOOD_BATCH, "queue_id": str(queue.id)}
    )
    task = client.post(
        f"{base}/{prompt.id}/tasks", data={"csrf_token": csrf, "queue_id": str(queue.id)}
    )

    assert into_queue.status_code == 403
    assert _texts(r'data-testid="batch-queue-error">(.*?)</p>', into_queue.text) == [
        "only admins add tasks to queues"
    ]
    assert task.status_code == 403
    assert snapshot(db) == before
    assert (
        client.post(f"{base}/batch", data={"csrf_token": csrf, "batch": GOOD_BATCH}).status_code
        == 303
    )
    assert len(_prompts(db)) == 3

"""Helpers for the schema-driven fuzz test: a seeded database and the operations to leave out.

The database gets real rows (a project with a published guideline and a draft, a comparison
queue whose labeler holds a lease, prompts with responses, tasks, a base model, a snapshot and a
run), so that a path parameter drawn from `REAL_IDS` names something that exists and the fuzzer
reaches the code behind the 404."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.models import GuidelineVersion, QueueKind, Role
from app.schemas.users import TokenCreate
from app.services import assignments, auth
from app.settings import Settings
from tests.conftest import make_token, make_user
from tests.factories import (
    make_comparison_tasks,
    make_project,
    make_prompt,
    make_queue,
    make_responses,
    publish_guideline,
)
from tests.training_factories import make_model, make_run, make_snapshot

SCHEMA_PATH = "/api/v1/openapi.json"

# Operations the fuzzer never calls, with why. Everything else under /api/v1 is fuzzed.
EXCLUDED: dict[tuple[str, str], str] = {
    # A random new password would lock the fuzzing admin out of nothing (tokens survive), but
    # a correct current password is never drawn, so it only ever answers 403; it is covered by
    # tests/api/test_auth_api.py instead of spending examples here.
    ("POST", "/api/v1/me/password"): "needs the current password; covered by test_auth_api",
}


@dataclass(frozen=True)
class Seeded:
    """Ids of real rows by path parameter name, and the callers' tokens."""

    ids: dict[str, int | str]
    admin_token: str
    labeler_token: str


def seed(db: Session, settings: Settings) -> Seeded:
    """Rows for every kind of path parameter the API takes; committed, so the app sees them."""
    admin = make_user(db, "fuzz-admin", Role.admin)
    labeler = make_user(db, "fuzz-labeler", Role.labeler)
    victim = make_user(db, "fuzz-victim", Role.researcher)
    spare_token, _ = auth.create_api_token(db, victim, TokenCreate(name="spare"))

    project = make_project(db, "Fuzzed", creator=admin)
    publish_guideline(db, project, 1)
    db.add(GuidelineVersion(project_id=project.id, version=2, body="Be kind, and brief."))
    queue = make_queue(db, project, QueueKind.comparison)
    task, _ = make_comparison_tasks(db, queue, project, 2, responses_each=2)
    assignment = assignments.lease_next_task(db, queue.id, labeler)
    assert assignment is not None and assignment.task_id == task.id
    spare_prompt = make_prompt(db, project, "Name a colour.")
    response = make_responses(db, spare_prompt, 2)[0]

    model = make_model(db, settings, "base", project=project)
    snapshot = make_snapshot(db, settings, project)
    run = make_run(db, project, model, snapshot, creator=admin)
    db.commit()
    ids: dict[str, int | str] = {
        "project_id": project.id,
        "version": 1,
        "queue_id": queue.id,
        "task_id": task.id,
        "prompt_id": spare_prompt.id,
        "response_id": response.id,
        "assignment_id": assignment.id,
        "user_id": victim.id,
        "token_id": spare_token.id,
        "model_id": model.id,
        "snapshot_id": snapshot.id,
        "run_id": run.id,
        "name": "train.jsonl",
    }
    return Seeded(ids, make_token(db, admin, "fuzz"), make_token(db, labeler, "fuzz"))


def real_path_parameters(names: list[str], ids: dict[str, int | str]) -> dict[str, int | str]:
    """The seeded value for each path parameter that has one."""
    return {name: ids[name] for name in names if name in ids}


# --- unstorable text -------------------------------------------------------------------------

# Text no database stores: a NUL byte, and a lone surrogate (JSON carries it as "\ud800").
UNSTORABLE = ("a\x00b", "a\ud800b")
# The same in a URL: NUL as %00; a surrogate has no UTF-8 form, so its bytes (ED A0 80, which
# are invalid UTF-8) are sent raw, as a careless client would.
UNSTORABLE_IN_URL = ("a%00b", "a%ED%A0%80b")
# Marks a place in a body where a dict key goes, not a value.
KEY = "<key>"

Place = tuple[str | int, ...]


def text_places(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> list[Place]:
    """Every place in a JSON body of `schema` that takes a string: object properties by name,
    array items as index 0, a dict's keys as KEY; values of any type count as strings too."""
    if depth > 8:
        return []
    if "$ref" in schema:
        return text_places(components[schema["$ref"].rsplit("/", 1)[1]], components, depth + 1)
    places: list[Place] = []
    for arm in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        places += [p for p in text_places(arm, components, depth + 1) if p not in places]
    kind = schema.get("type")
    if kind == "string" and "enum" not in schema and "const" not in schema:
        places.append(())
    elif kind == "object":
        for name, sub in schema.get("properties", {}).items():
            places += [(name, *place) for place in text_places(sub, components, depth + 1)]
        extra = schema.get("additionalProperties", False)
        if extra is not False:
            places.append((KEY,))
            # A value of any type ({} or true) is a string as well as anything else.
            value = {"type": "string"} if extra in (True, {}) else extra
            places += [("extra", *place) for place in text_places(value, components, depth + 1)]
    elif kind == "array" and "items" in schema:
        places += [(0, *place) for place in text_places(schema["items"], components, depth + 1)]
    return places


def placed(body: Any, place: Place, value: str) -> Any:
    """A copy of `body` with `value` at `place`, making the objects and arrays on the way."""
    root: Any = copy.deepcopy(body) if isinstance(body, dict | list) else {}
    if not place:
        return value
    node = root
    for step, following in itertools.pairwise(place):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(node, list):
            if not node or not isinstance(node[0], type(empty)):
                node[:1] = [empty]
            node = node[0]
        else:
            if not isinstance(node.get(step), type(empty)):
                node[step] = empty
            node = node[step]
    last = place[-1]
    if last == KEY:
        node[value] = "x"
    elif isinstance(node, list):
        node[:1] = [value]
    else:
        node[last] = value
    return root


def string_parameters(
    operation: dict[str, Any], where: str, components: dict[str, Any]
) -> list[str]:
    """Names of the operation's parameters `in` where (query, path) that take a string (an
    enum, also by $ref to a component, takes only its own values)."""
    return [
        parameter["name"]
        for parameter in operation.get("parameters", [])
        if parameter["in"] == where and text_places(parameter.get("schema", {}), components) == [()]
    ]

"""Helpers for the schema-driven fuzz test: a seeded database and the operations to leave out.

The database gets real rows (a project with a published guideline and a draft, a comparison
queue whose labeler holds a lease, prompts with responses, tasks, a base model, a snapshot and a
run), so that a path parameter drawn from `REAL_IDS` names something that exists and the fuzzer
reaches the code behind the 404."""

from __future__ import annotations

from dataclasses import dataclass

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

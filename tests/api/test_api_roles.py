"""Every JSON API route, classified by who may call it, checked against the app's real routes.

A route added under /api/ fails `test_every_api_route_is_classified` until it is put in exactly
one of ADMIN_ONLY, STAFF, LABELER, SIGNED_IN or PUBLIC below, with a minimal valid request for
it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    Base,
    DatasetJob,
    DatasetJobKind,
    Draft,
    Evaluation,
    GuidelineVersion,
    Model,
    ModelRole,
    Project,
    QueueKind,
    Role,
    Run,
    RunStatus,
    Snapshot,
    SnapshotKind,
    TaskResponse,
    User,
)
from app.models.base import utcnow
from app.schemas.critique import PrincipleCreate
from app.schemas.labeling import DemonstrationSubmit
from app.schemas.snapshots import SnapshotCreate
from app.schemas.users import TokenCreate
from app.services import assignments, auth
from app.services.principles import create_principle
from app.services.snapshots import create_snapshot
from app.services.submitting import submit_demonstration
from app.settings import Settings
from tests.api.helpers import API, Json, db_state, error, fill_path
from tests.conftest import PASSWORD, bearer, make_token, make_user, web_login
from tests.factories import (
    judge_task,
    make_comparison_tasks,
    make_project,
    make_prompt,
    make_queue,
    make_responses,
    make_task,
    publish_guideline,
)
from tests.training_factories import make_model, make_run, make_snapshot

Endpoint = tuple[str, str]  # (HTTP method, path template as the app declares it)
Ids = dict[str, int]
IMPORT_FILE = "tiny.jsonl"


@dataclass(frozen=True)
class Call:
    """A minimal valid request for an endpoint, and the status a permitted caller gets.

    `body` may be built from the ids (for bodies that name rows, such as response ids);
    `ids` maps a path parameter to the id of ids_for to fill it with, where the default
    (the parameter's own name) is the wrong object for this route."""

    ok: int
    body: Json | Callable[[Ids], Json] | None = None
    params: dict[str, int] | None = None
    ids: dict[str, str] = field(default_factory=dict)


ADMIN_ONLY: dict[Endpoint, Call] = {
    ("GET", f"{API}/admin/task-events"): Call(200),
    ("GET", f"{API}/users"): Call(200),
    ("POST", f"{API}/users"): Call(201, {"username": "newcomer"}),
    ("GET", f"{API}/users/{{user_id}}"): Call(200),
    ("PATCH", f"{API}/users/{{user_id}}"): Call(200, {"display_name": "Renamed"}),
    ("POST", f"{API}/users/{{user_id}}/reset-password"): Call(200),
    ("DELETE", f"{API}/users/{{user_id}}"): Call(204),
    ("POST", f"{API}/projects"): Call(201, {"name": "Brand new"}),
    ("PATCH", f"{API}/projects/{{project_id}}"): Call(200, {"description": "changed"}),
    ("POST", f"{API}/projects/{{project_id}}/guidelines"): Call(201, {"body": "Be kinder."}),
    ("POST", f"{API}/projects/{{project_id}}/guidelines/{{version}}/publish"): Call(
        200, ids={"version": "draft_version"}
    ),
    ("POST", f"{API}/projects/{{project_id}}/queues"): Call(
        201, {"name": "Fresh queue", "kind": "comparison"}
    ),
    ("PATCH", f"{API}/queues/{{queue_id}}"): Call(200, {"name": "Renamed"}),
    ("POST", f"{API}/queues/{{queue_id}}/pause"): Call(200),
    ("POST", f"{API}/queues/{{queue_id}}/resume"): Call(200),
    ("PUT", f"{API}/queues/{{queue_id}}/labelers"): Call(200, {"labeler_ids": []}),
    ("POST", f"{API}/queues/{{queue_id}}/tasks"): Call(
        201,
        lambda ids: {
            "items": [
                {
                    "prompt_id": ids["prompt_id"],
                    "response_ids": [ids["prompt_response_a"], ids["prompt_response_b"]],
                }
            ]
        },
    ),
    ("PUT", f"{API}/tasks/{{task_id}}/gold"): Call(
        200, lambda ids: {"ranking": [[ids["task_response_a"]], [ids["task_response_b"]]]}
    ),
    ("POST", f"{API}/queues/{{queue_id}}/requeue-superseded"): Call(200),
    ("POST", f"{API}/comparisons/{{comparison_id}}/review"): Call(
        201, {"verdict": "rejected", "reason": "ranked without reading"}
    ),
    ("POST", f"{API}/demonstrations/{{demonstration_id}}/review"): Call(
        201, {"verdict": "accepted"}
    ),
    ("POST", f"{API}/tasks/{{task_id}}/send-back"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/agreement/labelers.csv"): Call(200),
    ("GET", f"{API}/demographics"): Call(200),
    # It names labelers next to their figures.
    ("GET", f"{API}/projects/{{project_id}}/dashboard/labelers.csv"): Call(200),
    # A queue setting like the others: whether the workbench shows the judge's ranking.
    ("PUT", f"{API}/queues/{{queue_id}}/suggestions"): Call(200, {"mode": "after"}),
}
# Admins and researchers: the project's data, its queues and how the labeling goes.
STAFF: dict[Endpoint, Call] = {
    ("GET", f"{API}/projects/{{project_id}}/prompts"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/review-queue"): Call(200),
    # The data browser.
    ("GET", f"{API}/projects/{{project_id}}/labels"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/labels.csv"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/prompt-search"): Call(200),
    ("POST", f"{API}/projects/{{project_id}}/prompts"): Call(
        201, {"messages": [{"role": "user", "content": "Name a fruit."}]}
    ),
    ("GET", f"{API}/prompts/{{prompt_id}}"): Call(200),
    ("GET", f"{API}/prompts/{{prompt_id}}/responses"): Call(200),
    ("POST", f"{API}/prompts/{{prompt_id}}/responses"): Call(201, {"content": "A pear."}),
    ("GET", f"{API}/projects/{{project_id}}/queues"): Call(200),
    ("GET", f"{API}/queues/{{queue_id}}"): Call(200),
    ("GET", f"{API}/queues/{{queue_id}}/tasks"): Call(200),
    ("GET", f"{API}/queues/{{queue_id}}/progress"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/agreement"): Call(200),
    ("GET", f"{API}/tasks/{{task_id}}/consensus"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/dashboard"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/dashboard/queues.csv"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/dashboard/agreement-over-time.csv"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/dashboard/categories.csv"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/dashboard/flags.csv"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/dashboard/cost.csv"): Call(200),
    # Datasets in and out (the file named is in the import folder the settings below set up).
    ("POST", f"{API}/projects/{{project_id}}/imports"): Call(202, {"name": IMPORT_FILE}),
    ("POST", f"{API}/projects/{{project_id}}/snapshots"): Call(
        202, {"name": "Prompts", "kind": "prompts"}
    ),
    ("POST", f"{API}/snapshots/{{snapshot_id}}/supersede"): Call(
        202, {"name": "Prompts again", "kind": "prompts"}
    ),
    ("GET", f"{API}/projects/{{project_id}}/dataset-jobs"): Call(200),
    ("GET", f"{API}/dataset-jobs/{{dataset_job_id}}"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/snapshots"): Call(200),
    ("GET", f"{API}/snapshots/{{snapshot_id}}"): Call(200),
    ("GET", f"{API}/snapshots/{{snapshot_id}}/preview"): Call(200),
    ("GET", f"{API}/snapshots/{{snapshot_id}}/files/{{name}}"): Call(200),
    ("POST", f"{API}/projects/{{project_id}}/exports/raw"): Call(200, {}),
    ("POST", f"{API}/projects/{{project_id}}/exports/kto"): Call(200, {}),
    # Training runs and the model registry (rows from `training_rows` below).
    ("POST", f"{API}/projects/{{project_id}}/runs"): Call(
        202,
        lambda ids: {
            "kind": "sft",
            "base_model_id": ids["model_id"],
            "snapshot_id": ids["sft_snapshot_id"],
        },
    ),
    ("GET", f"{API}/projects/{{project_id}}/runs"): Call(200),
    ("GET", f"{API}/runs/{{run_id}}"): Call(200),
    ("GET", f"{API}/runs/{{run_id}}/metrics"): Call(200),
    ("POST", f"{API}/runs/{{run_id}}/cancel"): Call(200),
    ("POST", f"{API}/runs/{{run_id}}/resume"): Call(202, ids={"run_id": "failed_run_id"}),
    ("GET", f"{API}/projects/{{project_id}}/models"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/models/tree"): Call(200),
    ("POST", f"{API}/projects/{{project_id}}/models"): Call(
        201, {"name": "registered again", "path": "models/base"}
    ),
    ("GET", f"{API}/models/{{model_id}}"): Call(200),
    # The loop: side-by-side evaluations, rounds, the reward model audit, lineage.
    ("POST", f"{API}/projects/{{project_id}}/evaluations"): Call(
        202,
        lambda ids: {
            "model_a_id": ids["model_id"],
            "model_b_id": ids["other_policy_id"],
            "prompt_ids": [ids["prompt_id"]],
        },
    ),
    ("GET", f"{API}/projects/{{project_id}}/evaluations"): Call(200),
    ("GET", f"{API}/evaluations/{{evaluation_id}}"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/rounds"): Call(200),
    ("GET", f"{API}/models/{{model_id}}/audit"): Call(200, ids={"model_id": "reward_model_id"}),
    ("POST", f"{API}/models/{{model_id}}/audit/requeue"): Call(
        200, lambda ids: {"queue_id": ids["queue_id"]}, ids={"model_id": "reward_model_id"}
    ),
    # No judged responses in ids_for: refused on content, after the role check.
    ("POST", f"{API}/models/{{model_id}}/audit/score"): Call(
        422, ids={"model_id": "reward_model_id"}
    ),
    ("GET", f"{API}/responses/{{response_id}}/lineage"): Call(
        200, ids={"response_id": "prompt_response_a"}
    ),
    # Principles for critique runs, their revisions, and labelers' agreement with the judge.
    ("GET", f"{API}/projects/{{project_id}}/principles"): Call(200),
    ("POST", f"{API}/projects/{{project_id}}/principles"): Call(
        201, {"name": "honest", "critique_request": "True?", "revision_request": "Make it true."}
    ),
    ("GET", f"{API}/principles/{{principle_id}}"): Call(200),
    ("PUT", f"{API}/principles/{{principle_id}}"): Call(
        201, {"name": "kind", "critique_request": "Unkind?", "revision_request": "Be kinder."}
    ),
    ("DELETE", f"{API}/principles/{{principle_id}}"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/revisions"): Call(200),
    ("GET", f"{API}/queues/{{queue_id}}/suggestions"): Call(200),
    # AI judges against the people, and the judge template's versions.
    ("GET", f"{API}/projects/{{project_id}}/agreement/judges"): Call(200),
    ("POST", f"{API}/projects/{{project_id}}/agreement/judges/send-back"): Call(
        200, lambda ids: {"task_ids": [ids["task_id"]]}
    ),
    ("GET", f"{API}/projects/{{project_id}}/judge-templates"): Call(200),
    ("POST", f"{API}/projects/{{project_id}}/judge-templates"): Call(
        201, {"body": "Rank {responses}."}
    ),
}
# A labeler's own work. Leasing is for labelers alone; the assignment routes are open to
# everyone signed in but act only on the caller's own assignments (another's is a 404).
LEASE: Endpoint = ("POST", f"{API}/queues/{{queue_id}}/lease")
LABELER: dict[Endpoint, Call] = {
    LEASE: Call(200),
    ("GET", f"{API}/assignments"): Call(200),
    ("GET", f"{API}/assignments/{{assignment_id}}"): Call(200),
    ("POST", f"{API}/assignments/{{assignment_id}}/comparison"): Call(
        201,
        lambda ids: {
            "items": [
                {"response_id": ids["task_response_a"], "score": 6, "rank": 1},
                {"response_id": ids["task_response_b"], "score": 3, "rank": 2},
            ]
        },
    ),
    ("POST", f"{API}/assignments/{{assignment_id}}/demonstration"): Call(
        201,
        {"messages": [{"role": "assistant", "content": "An old pond; a frog jumps in."}]},
        ids={"assignment_id": "demonstration_assignment_id"},
    ),
    ("POST", f"{API}/assignments/{{assignment_id}}/skip"): Call(200, {"reason": "unclear_prompt"}),
    ("GET", f"{API}/assignments/{{assignment_id}}/draft"): Call(200),
    ("PUT", f"{API}/assignments/{{assignment_id}}/draft"): Call(200, {"content": {"comment": "x"}}),
    ("POST", f"{API}/assignments/{{assignment_id}}/renew"): Call(
        201, ids={"assignment_id": "expired_assignment_id"}
    ),
}
SIGNED_IN: dict[Endpoint, Call] = {
    ("GET", f"{API}/me"): Call(200),
    ("POST", f"{API}/me/password"): Call(
        204, {"current_password": PASSWORD, "new_password": "another long password"}
    ),
    ("GET", f"{API}/tokens"): Call(200),
    ("POST", f"{API}/tokens"): Call(201, {"name": "ci"}),
    ("DELETE", f"{API}/tokens/{{token_id}}"): Call(200),
    ("GET", f"{API}/projects"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/guidelines"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/guidelines/current"): Call(200),
    # Published versions only: a labeler gets 404 for the draft (tests/api/test_guidelines_api.py).
    ("GET", f"{API}/projects/{{project_id}}/guidelines/diff"): Call(
        200, params={"from": 1, "to": 1}
    ),
    ("GET", f"{API}/projects/{{project_id}}/guidelines/{{version}}"): Call(200),
    ("GET", f"{API}/me/queues"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}/guideline/status"): Call(200),
    ("POST", f"{API}/projects/{{project_id}}/guideline/read"): Call(200),
}
# Reached without a token: it is how a script gets one.
PUBLIC: dict[Endpoint, Call] = {
    ("POST", f"{API}/auth/token"): Call(201, {"username": "lena", "password": PASSWORD}),
}
CLASSIFIED: dict[Endpoint, Call] = {**ADMIN_ONLY, **STAFF, **LABELER, **SIGNED_IN, **PUBLIC}
CLASSES = (ADMIN_ONLY, STAFF, LABELER, SIGNED_IN, PUBLIC)
# Written and classified, but their router may not be included in app/api yet; every test
# checks them once they are. Remove an entry when its route is in the app for good.
PENDING: set[Endpoint] = set()
# Routes under the API prefix left out of the schema: the schema and its viewer, for any
# signed-in user by token or browser session (tests/api/test_openapi_api.py,
# tests/web/test_api_docs_pages.py).
DOCS_PATHS = {f"{API}/openapi.json", f"{API}/docs"}
# Refused requests must leave every table as it was, not only the ones about users.
ALL_TABLES = tuple(Base.metadata.tables)

NO_TOKEN = error("authentication_failed", "send an API token as 'Authorization: Bearer <token>'")
BAD_TOKEN = error(
    "authentication_failed", "the API token is unknown, revoked, expired or its user inactive"
)
NEEDS_ADMIN = error("permission_denied", "this needs the admin role")
NEEDS_STAFF = error("permission_denied", "this needs the admin or researcher role")
ONLY_LABELERS = error("permission_denied", "only labelers take tasks from queues")


def api_endpoints(app: FastAPI) -> set[Endpoint]:
    """(method, path) of every APIRoute of the app under /api/, however it was included."""
    found: set[Endpoint] = set()
    for route in iter_route_contexts(app.routes):
        if (
            isinstance(route.original_route, APIRoute)
            and route.path.startswith("/api/")
            and route.path not in DOCS_PATHS
        ):
            found |= {(method, route.path) for method in route.methods or ()}
    return found


def routed(app: FastAPI, group: dict[Endpoint, Call] | set[Endpoint]) -> list[Endpoint]:
    """The endpoints of `group` the app serves now (a PENDING one may not be yet)."""
    return sorted(set(group) & api_endpoints(app))


def skip_unless_routed(app: FastAPI, endpoint: Endpoint) -> None:
    if endpoint in PENDING and endpoint not in api_endpoints(app):
        pytest.skip(f"{endpoint} is not included in the app yet")


def send(client: TestClient, endpoint: Endpoint, ids: Ids, **headers: str) -> Response:
    method, template = endpoint
    call = CLASSIFIED[endpoint]
    path_ids = {**ids, **{param: ids[key] for param, key in call.ids.items()}}
    body = call.body(ids) if callable(call.body) else call.body
    return client.request(
        method,
        fill_path(template, path_ids),
        headers=headers,
        json=body,
        params=call.params,
    )


@pytest.fixture
def victim(db: Session) -> User:
    """A labeler without work that admin-only routes may act on (and delete)."""
    return make_user(db, "victim")


@pytest.fixture
def project(db: Session) -> Project:
    project = Project(name="Existing", label_schema={"flags": []})
    db.add(project)
    db.commit()
    return project


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """With an import folder holding one file, for the import route."""
    folder = tmp_path / "imports"
    folder.mkdir()
    (folder / IMPORT_FILE).write_text('{"prompt": "Name a fruit."}\n')
    return settings.model_copy(update={"import_dir": folder})


@pytest.fixture(autouse=True)
def dataset_rows(db: Session, settings: Settings, project: Project, admin: User) -> None:
    """A snapshot of the project (with its files) and a dataset job, for the dataset routes."""
    make_prompt(db, project, "A prompt to snapshot")  # an empty snapshot is refused
    create_snapshot(db, settings, project.id, SnapshotCreate(name="Old", kind="prompts"), admin)
    db.add(
        DatasetJob(
            project_id=project.id,
            kind=DatasetJobKind.snapshot,
            params={},
            source_name="Old",
            rows_done=0,
            bytes_done=0,
        )
    )
    db.commit()


@pytest.fixture(autouse=True)
def training_rows(db: Session, settings: Settings, project: Project) -> None:
    """A registered model, an SFT snapshot, a queued run and a failed one, for the run routes;
    a second policy, a reward model and an evaluation of one policy against the other, for
    the loop's routes."""
    base = make_model(db, settings, "base")
    snapshot = make_snapshot(db, settings, project, SnapshotKind.sft)
    make_run(db, project, base, snapshot)
    failed = make_run(db, project, base, snapshot)
    failed.status = RunStatus.failed
    failed.attempts = 1
    other = make_model(db, settings, "other-policy")
    make_model(db, settings, "rm", ModelRole.reward, base=base, project=project)
    queue = make_queue(db, project, QueueKind.comparison, name="Evaluation 1: other vs base")
    db.add(
        Evaluation(
            project_id=project.id,
            name="other vs base",
            model_a_id=other.id,
            model_b_id=base.id,
            queue_id=queue.id,
        )
    )
    db.commit()


def _response_ids(db: Session, task_id: int) -> list[int]:
    return list(
        db.scalars(
            select(TaskResponse.response_id)
            .where(TaskResponse.task_id == task_id)
            .order_by(TaskResponse.position)
        )
    )


def ids_for(caller: User, db: Session, victim: User, project: Project) -> Ids:
    """Existing ids for every path parameter (and the rows the bodies name); the token is one
    of the caller's own. Call once per test: it builds a fresh set of rows each time.

    The project gets a published guideline (version 1) and a draft (2); a comparison queue
    with two tasks, the first leased to a labeler (the caller when a labeler, else "worker"),
    the second left for the lease route; a demonstration queue with a task leased to the same
    labeler; and a prompt with two responses that has no task yet."""
    record, _ = auth.create_api_token(db, caller, TokenCreate(name="spare"))
    worker = caller if caller.role == Role.labeler else make_user(db, "worker")

    publish_guideline(db, project, 1)
    db.add(GuidelineVersion(project_id=project.id, version=2, body="Be kind, and brief."))

    queue = make_queue(db, project, QueueKind.comparison)
    leased_task, _ = make_comparison_tasks(db, queue, project, 2, responses_each=2)
    comparison = assignments.lease_next_task(db, queue.id, worker)
    assert comparison is not None and comparison.task_id == leased_task.id

    demo_queue = make_queue(db, project, QueueKind.demonstration)
    make_task(db, demo_queue, make_prompt(db, project, "Write a limerick."))
    db.commit()
    demonstration = assignments.lease_next_task(db, demo_queue.id, worker)
    assert demonstration is not None

    # A lease of a third queue that ran out, for the renew route; and a saved draft.
    late_queue = make_queue(db, project, QueueKind.comparison, name="late queue")
    make_comparison_tasks(db, late_queue, project, 1, responses_each=2)
    expired = assignments.lease_next_task(db, late_queue.id, worker)
    assert expired is not None
    expired.leased_at = utcnow() - timedelta(hours=2)
    expired.lease_expires_at = utcnow() - timedelta(hours=1)
    db.add(
        Draft(
            task_id=comparison.task_id,
            labeler_id=worker.id,
            assignment_id=comparison.id,
            content={"comment": "half done"},
        )
    )

    # A submitted comparison and demonstration, for the review routes: in a project of their
    # own, where the main one has nothing judged (the audit's score route says so).
    judge = make_user(db, "judge")
    reviewed = make_project(db, "Reviewed")
    judged_queue = make_queue(db, reviewed, QueueKind.comparison, name="judged queue")
    (judged_task,) = make_comparison_tasks(db, judged_queue, reviewed, 1, responses_each=2)
    comparison_id = judge_task(db, judged_queue, judge, _response_ids(db, judged_task.id))
    written_queue = make_queue(db, reviewed, QueueKind.demonstration, name="written queue")
    make_task(db, written_queue, make_prompt(db, reviewed, "Write a haiku."))
    db.commit()
    writing = assignments.lease_next_task(db, written_queue.id, judge)
    assert writing is not None
    written = submit_demonstration(
        db,
        writing.id,
        judge,
        DemonstrationSubmit(messages=[{"role": "assistant", "content": "Old pond, a frog."}]),
    )

    principle = create_principle(
        db, project.id,
        PrincipleCreate(name="kind", critique_request="Unkind?", revision_request="Be kind."),
        caller,
    )  # fmt: skip
    spare = make_prompt(db, project, "Name a colour.")
    spare_responses = make_responses(db, spare, 2)
    db.commit()

    task_responses = _response_ids(db, leased_task.id)
    snapshot_id = db.scalar(
        select(Snapshot.id).where(
            Snapshot.project_id == project.id, Snapshot.kind == SnapshotKind.prompts
        )
    )
    sft_snapshot_id = db.scalar(
        select(Snapshot.id).where(Snapshot.project_id == project.id, Snapshot.kind == "sft")
    )
    run_id, failed_run_id = db.scalars(
        select(Run.id).where(Run.project_id == project.id).order_by(Run.id)
    ).all()
    model_id = db.scalar(select(Model.id).where(Model.name == "base"))
    other_policy_id = db.scalar(select(Model.id).where(Model.name == "other-policy"))
    reward_model_id = db.scalar(select(Model.id).where(Model.name == "rm"))
    evaluation_id = db.scalar(select(Evaluation.id).where(Evaluation.project_id == project.id))
    job_id = db.scalar(select(DatasetJob.id).where(DatasetJob.project_id == project.id))
    assert snapshot_id is not None and job_id is not None
    return {
        "user_id": victim.id,
        "project_id": project.id,
        "token_id": record.id,
        "version": 1,
        "draft_version": 2,
        "queue_id": queue.id,
        "task_id": leased_task.id,
        "task_response_a": task_responses[0],
        "task_response_b": task_responses[1],
        "assignment_id": comparison.id,
        "comparison_id": comparison_id,
        "demonstration_id": written.label_id,
        "demonstration_assignment_id": demonstration.id,
        "expired_assignment_id": expired.id,
        "prompt_id": spare.id,
        "prompt_response_a": spare_responses[0].id,
        "prompt_response_b": spare_responses[1].id,
        "snapshot_id": snapshot_id,
        "dataset_job_id": job_id,
        "sft_snapshot_id": sft_snapshot_id,
        "run_id": run_id,
        "failed_run_id": failed_run_id,
        "model_id": model_id,
        "other_policy_id": other_policy_id,
        "reward_model_id": reward_model_id,
        "evaluation_id": evaluation_id,
        "principle_id": principle.id,
        "name": "train.jsonl",  # type: ignore[dict-item]  # a snapshot's file, not an id
    }


# --- the classification matches the app -----------------------------------------------------


def test_every_api_route_is_classified(app: FastAPI) -> None:
    actual = api_endpoints(app)

    unclassified = sorted(actual - CLASSIFIED.keys())
    assert not unclassified, (
        f"classify in ADMIN_ONLY, STAFF, LABELER, SIGNED_IN or PUBLIC: {unclassified}"
    )
    stale = sorted(CLASSIFIED.keys() - actual - PENDING)
    assert not stale, f"classified but gone from the app: {stale}"
    assert len(CLASSIFIED) == sum(len(group) for group in CLASSES), "one class each"
    assert not PENDING - CLASSIFIED.keys(), "a pending route must be classified too"


def test_only_the_docs_are_left_out_of_the_schema_under_the_api(app: FastAPI) -> None:
    undocumented = {
        route.path
        for route in iter_route_contexts(app.routes)
        if (route.path or "").startswith("/api/")
        and not (
            isinstance(route.original_route, APIRoute) and route.original_route.include_in_schema
        )
    }

    assert undocumented == DOCS_PATHS


# --- no valid token: 401 everywhere ---------------------------------------------------------


@pytest.fixture(
    params=["missing", "not-bearer", "unknown", "revoked", "expired", "deactivated-admin"]
)
def bad_credentials(
    request: pytest.FixtureRequest, db: Session, admin: User
) -> tuple[dict[str, str], Json]:
    """Authorization headers that must get a 401 (even when the token was an admin's)."""
    kind = request.param
    if kind == "missing":
        return {}, NO_TOKEN
    if kind == "not-bearer":
        return {"Authorization": "Basic cm9vdC1hZG1pbjpjb3JyZWN0"}, NO_TOKEN
    if kind == "unknown":
        return bearer("smy_not-a-real-token"), BAD_TOKEN
    owner = (
        make_user(db, "old-admin", Role.admin, active=False)
        if kind == "deactivated-admin"
        else admin
    )
    record, token = auth.create_api_token(db, owner, TokenCreate(name="bad"))
    if kind == "revoked":
        record.revoked_at = utcnow()
    elif kind == "expired":
        record.expires_at = utcnow()
    db.commit()
    return bearer(token), BAD_TOKEN


def test_every_route_refuses_a_missing_or_bad_token(
    app: FastAPI,
    client: TestClient,
    db: Session,
    admin: User,
    victim: User,
    project: Project,
    bad_credentials: tuple[dict[str, str], Json],
) -> None:
    headers, expected = bad_credentials
    ids = ids_for(admin, db, victim, project)
    endpoints = sorted(api_endpoints(app) - PUBLIC.keys())
    before = db_state(db, ALL_TABLES)

    answers = {}
    for endpoint in endpoints:
        response = send(client, endpoint, ids, **headers)
        answers[endpoint] = (
            response.status_code,
            response.json(),
            response.headers.get("www-authenticate"),
        )

    assert answers == {endpoint: (401, expected, "Bearer") for endpoint in endpoints}
    assert endpoints == routed(app, CLASSIFIED.keys() - PUBLIC.keys())
    assert db_state(db, ALL_TABLES) == before


def test_public_route_needs_no_token(
    client: TestClient, db: Session, labeler: User, victim: User, project: Project
) -> None:
    for endpoint, call in PUBLIC.items():
        response = send(client, endpoint, ids_for(labeler, db, victim, project))
        assert response.status_code == call.ok, (endpoint, response.text)


# --- roles ----------------------------------------------------------------------------------


def refusals(
    client: TestClient, endpoints: list[Endpoint], ids: Ids, headers: dict[str, str]
) -> dict[Endpoint, tuple[int, Json]]:
    answers = {}
    for endpoint in endpoints:
        response = send(client, endpoint, ids, **headers)
        answers[endpoint] = (response.status_code, response.json())
    return answers


@pytest.mark.parametrize("role", ["labeler", "researcher"])
@pytest.mark.parametrize("target", ["existing", "missing"])
def test_non_admins_get_403_on_every_admin_only_route(
    app: FastAPI,
    client: TestClient,
    db: Session,
    victim: User,
    project: Project,
    role: str,
    target: str,
) -> None:
    """Refused before the ids are looked at: a 403 whether or not the target exists."""
    caller = make_user(db, f"caller-{role}", Role(role))
    headers = bearer(make_token(db, caller))
    ids = ids_for(caller, db, victim, project)
    if target == "missing":
        ids = {name: 999999 for name in ids}
    endpoints = routed(app, ADMIN_ONLY)
    before = db_state(db, ALL_TABLES)

    answers = refusals(client, endpoints, ids, headers)

    assert answers == {endpoint: (403, NEEDS_ADMIN) for endpoint in endpoints}
    assert len(endpoints) == len(ADMIN_ONLY.keys() - (PENDING - api_endpoints(app)))
    assert db_state(db, ALL_TABLES) == before


@pytest.mark.parametrize("target", ["existing", "missing"])
def test_labelers_get_403_on_every_staff_route(
    app: FastAPI,
    client: TestClient,
    db: Session,
    labeler: User,
    victim: User,
    project: Project,
    target: str,
) -> None:
    headers = bearer(make_token(db, labeler))
    ids = ids_for(labeler, db, victim, project)
    if target == "missing":
        ids = {name: 999999 for name in ids}
    endpoints = routed(app, STAFF)
    before = db_state(db, ALL_TABLES)

    answers = refusals(client, endpoints, ids, headers)

    assert answers == {endpoint: (403, NEEDS_STAFF) for endpoint in endpoints}
    assert len(endpoints) == len(STAFF)
    assert db_state(db, ALL_TABLES) == before


@pytest.mark.parametrize("role", ["researcher", "admin"])
@pytest.mark.parametrize("target", ["existing", "missing"])
def test_only_labelers_lease_tasks(
    client: TestClient,
    db: Session,
    victim: User,
    project: Project,
    role: str,
    target: str,
) -> None:
    """Staff never take tasks, not even from a queue open to all."""
    caller = make_user(db, f"caller-{role}", Role(role))
    headers = bearer(make_token(db, caller))
    ids = ids_for(caller, db, victim, project)
    if target == "missing":
        ids = {name: 999999 for name in ids}
    before = db_state(db, ALL_TABLES)

    response = send(client, LEASE, ids, **headers)

    assert (response.status_code, response.json()) == (403, ONLY_LABELERS)
    assert db_state(db, ALL_TABLES) == before


@pytest.mark.parametrize("endpoint", sorted(ADMIN_ONLY), ids=" ".join)
def test_admin_gets_through_every_admin_only_route(
    app: FastAPI,
    client: TestClient,
    db: Session,
    admin: User,
    victim: User,
    project: Project,
    endpoint: Endpoint,
) -> None:
    """The bodies above are valid: the 403s are about the role, not the request."""
    skip_unless_routed(app, endpoint)

    response = send(
        client, endpoint, ids_for(admin, db, victim, project), **bearer(make_token(db, admin))
    )

    assert response.status_code == ADMIN_ONLY[endpoint].ok, response.text


@pytest.mark.parametrize("role", ["researcher", "admin"])
@pytest.mark.parametrize("endpoint", sorted(STAFF), ids=" ".join)
def test_staff_get_through_every_staff_route(
    client: TestClient,
    db: Session,
    victim: User,
    project: Project,
    endpoint: Endpoint,
    role: str,
) -> None:
    caller = make_user(db, f"caller-{role}", Role(role))

    response = send(
        client, endpoint, ids_for(caller, db, victim, project), **bearer(make_token(db, caller))
    )

    assert response.status_code == STAFF[endpoint].ok, response.text


@pytest.mark.parametrize("endpoint", sorted(LABELER), ids=" ".join)
def test_labeler_gets_through_every_labeler_route(
    client: TestClient,
    db: Session,
    labeler: User,
    victim: User,
    project: Project,
    endpoint: Endpoint,
) -> None:
    """With their own assignments (and a task left in the queue to lease)."""
    ids = ids_for(labeler, db, victim, project)

    response = send(client, endpoint, ids, **bearer(make_token(db, labeler)))

    assert response.status_code == LABELER[endpoint].ok, response.text
    if endpoint == LEASE:
        assert response.json()["message"] == "leased"
    elif endpoint == ("GET", f"{API}/assignments"):
        found = {assignment["id"] for assignment in response.json()}
        assert found == {ids["assignment_id"], ids["demonstration_assignment_id"]}


@pytest.mark.parametrize("role", ["labeler", "researcher", "admin"])
def test_assignment_routes_act_only_on_ones_own_assignments(
    client: TestClient,
    db: Session,
    labeler: User,
    victim: User,
    project: Project,
    role: str,
) -> None:
    """Open to everyone signed in, so they must check the owner: another's is a 404."""
    ids = ids_for(labeler, db, victim, project)
    intruder = make_user(db, f"intruder-{role}", Role(role))
    headers = bearer(make_token(db, intruder))
    endpoints = sorted(endpoint for endpoint in LABELER if "{assignment_id}" in endpoint[1])
    before = db_state(db, ALL_TABLES)

    answers = refusals(client, endpoints, ids, headers)
    mine = client.get(f"{API}/assignments", headers=headers)

    expected = {}
    for endpoint in endpoints:
        key = LABELER[endpoint].ids.get("assignment_id", "assignment_id")
        expected[endpoint] = (404, error("not_found", f"no assignment {ids[key]} of yours"))
    assert answers == expected
    assert len(endpoints) == 7
    assert (mine.status_code, mine.json()) == (200, [])
    assert db_state(db, ALL_TABLES) == before


@pytest.mark.parametrize("role", ["labeler", "researcher", "admin"])
@pytest.mark.parametrize("endpoint", sorted(SIGNED_IN), ids=" ".join)
def test_every_role_gets_through_every_signed_in_route(
    client: TestClient,
    db: Session,
    victim: User,
    project: Project,
    endpoint: Endpoint,
    role: str,
) -> None:
    caller = make_user(db, f"caller-{role}", Role(role))

    response = send(
        client, endpoint, ids_for(caller, db, victim, project), **bearer(make_token(db, caller))
    )

    assert response.status_code == SIGNED_IN[endpoint].ok, response.text


def test_signed_in_token_routes_touch_only_ones_own_tokens(
    client: TestClient, db: Session, labeler: User, victim: User
) -> None:
    """DELETE /tokens/{id} is open to everyone signed in, so it must check the owner."""
    theirs, _ = auth.create_api_token(db, victim, TokenCreate(name="theirs"))
    headers = bearer(make_token(db, labeler))
    before = db_state(db)

    response = client.delete(f"{API}/tokens/{theirs.id}", headers=headers)

    assert response.status_code == 404
    assert response.json() == error("not_found", f"no token with id {theirs.id}")
    assert db_state(db) == before


# --- routing and the schema -----------------------------------------------------------------


def test_openapi_lists_every_api_route_and_no_page(
    app: FastAPI, client: TestClient, db: Session
) -> None:
    reader = make_user(db, "reader", Role.labeler)
    response = client.get(f"{API}/openapi.json", headers=bearer(make_token(db, reader)))

    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Smiley"
    documented = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    }
    not_yet_routed = PENDING - api_endpoints(app)
    assert documented == (CLASSIFIED.keys() - not_yet_routed) | {("GET", "/healthz")}
    expected = [
        "/api/v1/admin/task-events",
        "/api/v1/assignments",
        "/api/v1/assignments/{assignment_id}",
        "/api/v1/assignments/{assignment_id}/comparison",
        "/api/v1/assignments/{assignment_id}/demonstration",
        "/api/v1/assignments/{assignment_id}/draft",
        "/api/v1/assignments/{assignment_id}/renew",
        "/api/v1/assignments/{assignment_id}/skip",
        "/api/v1/auth/token",
        "/api/v1/comparisons/{comparison_id}/review",
        "/api/v1/dataset-jobs/{dataset_job_id}",
        "/api/v1/demographics",
        "/api/v1/demonstrations/{demonstration_id}/review",
        "/api/v1/evaluations/{evaluation_id}",
        "/api/v1/me",
        "/api/v1/me/password",
        "/api/v1/me/queues",
        "/api/v1/models/{model_id}",
        "/api/v1/models/{model_id}/audit",
        "/api/v1/models/{model_id}/audit/requeue",
        "/api/v1/models/{model_id}/audit/score",
        "/api/v1/principles/{principle_id}",
        "/api/v1/projects",
        "/api/v1/projects/{project_id}",
        "/api/v1/projects/{project_id}/agreement",
        "/api/v1/projects/{project_id}/agreement/judges",
        "/api/v1/projects/{project_id}/agreement/judges/send-back",
        "/api/v1/projects/{project_id}/agreement/labelers.csv",
        "/api/v1/projects/{project_id}/dashboard",
        "/api/v1/projects/{project_id}/dashboard/agreement-over-time.csv",
        "/api/v1/projects/{project_id}/dashboard/categories.csv",
        "/api/v1/projects/{project_id}/dashboard/cost.csv",
        "/api/v1/projects/{project_id}/dashboard/flags.csv",
        "/api/v1/projects/{project_id}/dashboard/labelers.csv",
        "/api/v1/projects/{project_id}/dashboard/queues.csv",
        "/api/v1/projects/{project_id}/dataset-jobs",
        "/api/v1/projects/{project_id}/evaluations",
        "/api/v1/projects/{project_id}/exports/kto",
        "/api/v1/projects/{project_id}/exports/raw",
        "/api/v1/projects/{project_id}/guideline/read",
        "/api/v1/projects/{project_id}/guideline/status",
        "/api/v1/projects/{project_id}/guidelines",
        "/api/v1/projects/{project_id}/guidelines/current",
        "/api/v1/projects/{project_id}/guidelines/diff",
        "/api/v1/projects/{project_id}/guidelines/{version}",
        "/api/v1/projects/{project_id}/guidelines/{version}/publish",
        "/api/v1/projects/{project_id}/imports",
        "/api/v1/projects/{project_id}/judge-templates",
        "/api/v1/projects/{project_id}/labels",
        "/api/v1/projects/{project_id}/labels.csv",
        "/api/v1/projects/{project_id}/models",
        "/api/v1/projects/{project_id}/models/tree",
        "/api/v1/projects/{project_id}/principles",
        "/api/v1/projects/{project_id}/prompt-search",
        "/api/v1/projects/{project_id}/prompts",
        "/api/v1/projects/{project_id}/queues",
        "/api/v1/projects/{project_id}/review-queue",
        "/api/v1/projects/{project_id}/revisions",
        "/api/v1/projects/{project_id}/rounds",
        "/api/v1/projects/{project_id}/runs",
        "/api/v1/projects/{project_id}/snapshots",
        "/api/v1/prompts/{prompt_id}",
        "/api/v1/prompts/{prompt_id}/responses",
        "/api/v1/queues/{queue_id}",
        "/api/v1/queues/{queue_id}/labelers",
        "/api/v1/queues/{queue_id}/lease",
        "/api/v1/queues/{queue_id}/pause",
        "/api/v1/queues/{queue_id}/progress",
        "/api/v1/queues/{queue_id}/requeue-superseded",
        "/api/v1/queues/{queue_id}/resume",
        "/api/v1/queues/{queue_id}/suggestions",
        "/api/v1/queues/{queue_id}/tasks",
        "/api/v1/responses/{response_id}/lineage",
        "/api/v1/runs/{run_id}",
        "/api/v1/runs/{run_id}/cancel",
        "/api/v1/runs/{run_id}/metrics",
        "/api/v1/runs/{run_id}/resume",
        "/api/v1/snapshots/{snapshot_id}",
        "/api/v1/snapshots/{snapshot_id}/files/{name}",
        "/api/v1/snapshots/{snapshot_id}/preview",
        "/api/v1/snapshots/{snapshot_id}/supersede",
        "/api/v1/tasks/{task_id}/consensus",
        "/api/v1/tasks/{task_id}/gold",
        "/api/v1/tasks/{task_id}/send-back",
        "/api/v1/tokens",
        "/api/v1/tokens/{token_id}",
        "/api/v1/users",
        "/api/v1/users/{user_id}",
        "/api/v1/users/{user_id}/reset-password",
        "/healthz",
    ]
    absent = {path for _, path in not_yet_routed}
    assert sorted(schema["paths"]) == [path for path in expected if path not in absent]


def test_docs_page_is_served(client: TestClient, db: Session) -> None:
    web_login(client, make_user(db, "reader", Role.labeler).username)
    response = client.get(f"{API}/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f"{API}/openapi.json" in response.text


def test_unknown_api_path_is_a_json_404(client: TestClient) -> None:
    response = client.get(f"{API}/nothing-here")

    assert response.status_code == 404
    assert response.json() == error("not_found", "Not Found")


def test_wrong_method_is_a_json_405(client: TestClient, db: Session, admin: User) -> None:
    response = client.put(f"{API}/me", headers=bearer(make_token(db, admin)), json={})

    assert response.status_code == 405
    assert response.json() == error("http_error", "Method Not Allowed")
    assert response.headers["allow"] == "GET"

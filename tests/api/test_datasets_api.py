"""/api/v1 datasets: imports and snapshots start jobs (202, the job's id on the broker's
`default` queue); jobs, snapshots, previews and files are read back; raw and KTO exports.
Bad input is a clear 4xx with no job stored, no upload kept and nothing queued."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import DatasetJob, Project, Role, Snapshot, User
from app.schemas.dataset_jobs import ImportJobCreate
from app.schemas.snapshots import SnapshotCreate, SnapshotOut
from app.services.dataset_jobs import run_dataset_job
from app.services.snapshots import create_snapshot
from app.settings import Settings
from tests.api.helpers import API, Json, db_state, error, iso, validation_error
from tests.conftest import bearer, make_token, make_user
from tests.factories import make_project, make_prompt

GOOD = b'{"prompt": "Name a fruit."}\n{"prompt": "Name a colour."}\n'
TABLES = ("dataset_jobs", "prompts", "snapshots")


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    folder = tmp_path / "imports"
    folder.mkdir()
    (folder / "prompts.jsonl").write_bytes(GOOD)
    (tmp_path / "outside.jsonl").write_bytes(GOOD)
    return settings.model_copy(update={"import_dir": folder})


@pytest.fixture
def staff(db: Session) -> User:
    return make_user(db, "rhea", Role.researcher)


@pytest.fixture
def headers(db: Session, staff: User) -> dict[str, str]:
    return bearer(make_token(db, staff))


@pytest.fixture
def project(db: Session) -> Project:
    project = make_project(db, "Datasets")
    db.commit()
    return project


def queued(settings: Settings) -> list[tuple[str, str, list[Any]]]:
    """(task, queue, args) of every message waiting in the embedded broker."""
    folder = settings.broker_dir / "queue"
    found = []
    for path in sorted(folder.glob("*.msg")) if folder.exists() else []:
        message = json.loads(path.read_text())
        args = json.loads(base64.b64decode(message["body"]))[0]
        routing = message["properties"]["delivery_info"]["routing_key"]
        found.append((message["headers"]["task"], routing, args))
    return found


def uploads(settings: Settings) -> list[Path]:
    folder = settings.data_dir / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


def invalid_request(message: str, field: str, kind: str) -> Json:
    """A 422 for one invalid field of the body (pydantic's message and error type)."""
    location = f"body.{field}"
    return {
        "error": {
            "code": "invalid_request",
            "message": f"{location}: {message}",
            "field": field,
            "problems": [{"location": location, "message": message, "type": kind}],
        }
    }


def job_json(job: DatasetJob, **changes: Any) -> Json:
    return {
        "id": job.id,
        "project_id": job.project_id,
        "kind": job.kind.value,
        "status": job.status.value,
        "source_name": job.source_name,
        "rows_done": job.rows_done,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "fraction": 0.0,
        "result": None,
        "error": job.error,
        "snapshot_id": job.snapshot_id,
        "created_by_id": job.created_by_id,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "resent_at": iso(job.resent_at),
        **changes,
    }


def run_job(db: Session, settings: Settings, job_id: int) -> None:
    sessions = sessionmaker(
        bind=db.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    run_dataset_job(job_id, settings=settings, sessions=sessions)
    db.expire_all()


# --- imports --------------------------------------------------------------------------------


def test_an_upload_starts_an_import_job(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    headers: dict[str, str],
) -> None:
    response = client.post(
        f"{API}/projects/{project.id}/imports",
        headers=headers,
        files={"file": ("fruit.jsonl", GOOD, "application/octet-stream")},
        data={"on_error": "skip", "source": "  "},
    )

    assert response.status_code == 202, response.text
    job = db.scalars(select(DatasetJob)).one()
    assert response.json() == job_json(job)
    assert (job.kind, job.status, job.source_name, job.bytes_total) == (
        "import",
        "queued",
        "fruit.jsonl",
        len(GOOD),
    )
    assert (job.created_by_id, job.params["on_error"], job.params["source"]) == (
        staff.id,
        "skip",
        None,
    )
    assert queued(settings) == [("smiley.datasets.run", "default", [job.id])]
    assert [path.read_bytes() for path in uploads(settings)] == [GOOD]

    run_job(db, settings, job.id)
    done = client.get(f"{API}/dataset-jobs/{job.id}", headers=headers).json()

    assert (done["status"], done["rows_done"], done["fraction"]) == ("succeeded", 2, 1.0)
    assert done["result"]["records_imported"] == 2
    assert done["result"]["source"] == "fruit.jsonl"
    assert uploads(settings) == []


def test_a_file_in_the_import_folder_is_imported_by_name(
    client: TestClient, db: Session, settings: Settings, project: Project, headers: dict[str, str]
) -> None:
    response = client.post(
        f"{API}/projects/{project.id}/imports",
        headers=headers,
        json={"name": "prompts.jsonl", "format": "prompts", "on_error": "stop"},
    )

    assert response.status_code == 202, response.text
    job = db.scalars(select(DatasetJob)).one()
    assert response.json() == job_json(job)
    assert (job.source_name, job.upload_path, job.bytes_total) == (
        "prompts.jsonl",
        None,
        len(GOOD),
    )
    assert job.params == {
        "name": "prompts.jsonl",
        "format": "prompts",
        "on_error": "stop",
        "source": None,
        "min_turns": 2,
        "max_turn_chars": 4000,
        "user_speaker": "A",
    }
    assert queued(settings) == [("smiley.datasets.run", "default", [job.id])]
    assert uploads(settings) == []


def bad_imports(settings: Settings) -> dict[str, tuple[dict[str, Any], int, Json]]:
    file = {"file": ("fruit.jsonl", GOOD, "application/octet-stream")}
    return {
        "unknown project": (
            {"project_id": 987654, "json": {"name": "prompts.jsonl"}},
            404,
            error("not_found", "no project with id 987654"),
        ),
        "a path outside the import folder": (
            {"json": {"name": "../outside.jsonl"}},
            422,
            error(
                "invalid_input",
                "'../outside.jsonl' goes up a folder ('..'); name a file inside the import folder",
                "name",
            ),
        ),
        "an absolute path": (
            {"json": {"name": str(settings.data_dir.parent / "outside.jsonl")}},
            422,
            error(
                "invalid_input",
                f"{str(settings.data_dir.parent / 'outside.jsonl')!r} is an absolute path; "
                "name a file inside the import folder",
                "name",
            ),
        ),
        "both a file and a name": (
            {"files": file, "data": {"name": "prompts.jsonl"}},
            422,
            error(
                "invalid_input",
                "give either an uploaded file or the name of a file in the import folder, not both",
                "name",
            ),
        ),
        "neither, as JSON": (
            {"json": {}},
            422,
            error("invalid_input", "upload a file, or name a file in the import folder", "file"),
        ),
        "neither, as a form": (
            {"files": {"on_error": (None, "skip")}},
            422,
            error("invalid_input", "upload a file, or name a file in the import folder", "file"),
        ),
        "a text field called file": (
            {"files": {"file": (None, "not a file")}},
            422,
            error("invalid_input", "'file' must be a file, not a text field", "file"),
        ),
        "an unknown error mode": (
            {"files": file, "data": {"on_error": "maybe"}},
            422,
            invalid_request("Input should be 'skip' or 'stop'", "on_error", "literal_error"),
        ),
        "an unknown field": (
            {"json": {"name": "prompts.jsonl", "path": "x"}},
            422,
            validation_error("Extra inputs are not permitted", "path"),
        ),
        "an unknown format": (
            {"files": file, "data": {"format": "xml"}},
            422,
            error(
                "invalid_input",
                "unknown format 'xml'; use one of oasst, hh-rlhf, preference, ultrafeedback, "
                "sft, prompts, dialogue",
                "format",
            ),
        ),
        "a file kind it cannot read": (
            {"files": {"file": ("fruit.pdf", b"%PDF", "application/pdf")}},
            422,
            error(
                "invalid_input",
                "cannot read 'fruit.pdf': use a file ending in .jsonl, .ndjson, .csv, .parquet, "
                ".txt",
                "name",
            ),
        ),
        "neither JSON nor a form": (
            {"content": b"name=prompts.jsonl", "content_type": "text/plain"},
            422,
            error(
                "invalid_input",
                "send the file as multipart/form-data (field 'file'), or JSON naming a file in "
                "the import folder",
                "file",
            ),
        ),
    }


CASES = list(bad_imports(Settings(data_dir=Path("/x"))))


@pytest.mark.parametrize("case", CASES)
def test_bad_imports_are_refused_with_nothing_stored_or_queued(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    headers: dict[str, str],
    case: str,
) -> None:
    request, status, body = bad_imports(settings)[case]
    project_id = request.pop("project_id", project.id)
    content_type = request.pop("content_type", None)
    if content_type:
        headers = {**headers, "content-type": content_type}
    before = db_state(db, TABLES)

    response = client.post(f"{API}/projects/{project_id}/imports", headers=headers, **request)

    assert (response.status_code, response.json()) == (status, body)
    assert db_state(db, TABLES) == before
    assert (queued(settings), uploads(settings)) == ([], [])


def test_no_import_folder_means_no_import_by_name(
    client: TestClient, db: Session, settings: Settings, project: Project, headers: dict[str, str]
) -> None:
    settings.import_dir = None  # the app's own settings object
    before = db_state(db, TABLES)

    response = client.post(
        f"{API}/projects/{project.id}/imports", headers=headers, json={"name": "prompts.jsonl"}
    )

    assert (response.status_code, response.json()) == (
        422,
        error(
            "invalid_input",
            "no import folder is set up (SMILEY_IMPORT_DIR), so files cannot be imported by "
            "name; upload the file instead",
            "name",
        ),
    )
    assert db_state(db, TABLES) == before
    assert queued(settings) == []


@pytest.mark.parametrize("limit", [10, len(GOOD) - 1])
def test_an_upload_over_the_limit_is_refused(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    headers: dict[str, str],
    limit: int,
) -> None:
    """Far over: refused from its declared length before it is read; just over: while it is
    copied (the form around it may be the few bytes more)."""
    settings.max_upload_bytes = limit
    before = db_state(db, TABLES)

    response = client.post(
        f"{API}/projects/{project.id}/imports",
        headers=headers,
        files={"file": ("fruit.jsonl", GOOD * (10_000 if limit == 10 else 1))},
    )

    assert (response.status_code, response.json()) == (
        413,
        error(
            "upload_too_large",
            f"the file is larger than the upload limit of {limit:,} bytes; put it in the import "
            "folder and import it by name",
            "file",
        ),
    )
    assert db_state(db, TABLES) == before
    assert (queued(settings), uploads(settings)) == ([], [])


def test_invalid_json_is_refused(
    client: TestClient, settings: Settings, project: Project, headers: dict[str, str]
) -> None:
    response = client.post(
        f"{API}/projects/{project.id}/imports",
        headers={**headers, "content-type": "application/json"},
        content=b"{not json",
    )

    assert response.status_code == 422
    assert response.json()["error"]["message"] == "the request body is not valid JSON"
    assert queued(settings) == []


# --- snapshots ------------------------------------------------------------------------------


@pytest.fixture
def snapshot(db: Session, settings: Settings, project: Project, staff: User) -> Snapshot:
    make_prompt(db, project, "Name a fruit.")
    make_prompt(db, project, "Name a colour.")
    db.commit()
    data = SnapshotCreate(name="Prompts", kind="prompts", filters={"test_fraction": 0})
    return create_snapshot(db, settings, project.id, data, staff)


def test_a_snapshot_job_is_started_and_runs(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    headers: dict[str, str],
) -> None:
    make_prompt(db, project, "Name a fruit.")
    db.commit()

    response = client.post(
        f"{API}/projects/{project.id}/snapshots",
        headers=headers,
        json={"name": "All prompts", "kind": "prompts"},
    )

    assert response.status_code == 202, response.text
    job = db.scalars(select(DatasetJob)).one()
    assert response.json() == job_json(job)
    assert (job.kind, job.source_name) == ("snapshot", "All prompts")
    assert queued(settings) == [("smiley.datasets.run", "default", [job.id])]

    run_job(db, settings, job.id)
    done = client.get(f"{API}/dataset-jobs/{job.id}", headers=headers).json()
    snapshot = db.scalars(select(Snapshot)).one()
    assert (done["status"], done["snapshot_id"], done["rows_done"]) == (
        "succeeded",
        snapshot.id,
        1,
    )
    assert done["result"] == SnapshotOut.model_validate(snapshot).model_dump(mode="json")


def test_a_supersede_job_is_started(
    client: TestClient,
    db: Session,
    settings: Settings,
    snapshot: Snapshot,
    headers: dict[str, str],
) -> None:
    response = client.post(
        f"{API}/snapshots/{snapshot.id}/supersede",
        headers=headers,
        json={"name": "Prompts again", "kind": "prompts"},
    )

    assert response.status_code == 202, response.text
    job = db.scalars(select(DatasetJob)).one()
    assert job.params["supersedes_id"] == snapshot.id
    assert queued(settings) == [("smiley.datasets.run", "default", [job.id])]

    run_job(db, settings, job.id)

    db.refresh(snapshot)
    assert snapshot.superseded_by_id == db.get(DatasetJob, job.id).snapshot_id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "body", "status", "expected"),
    [
        (
            "/projects/987654/snapshots",
            {"name": "x", "kind": "sft"},
            404,
            error("not_found", "no project with id 987654"),
        ),
        (
            "/projects/{project_id}/snapshots",
            {"name": "x", "kind": "sft", "filters": {"min_agreement": 0.5}},
            422,
            error(
                "invalid_input",
                "min_agreement does not apply here: demonstrations carry no flags and no agreement",
                "filters.min_agreement",
            ),
        ),
        (
            "/projects/{project_id}/snapshots",
            {"name": "x", "kind": "sft", "filters": {"queue_ids": [987654]}},
            422,
            None,
        ),
        (
            "/projects/{project_id}/snapshots",
            {"name": "x", "kind": "sft", "filters": {"test_fraction": 2}},
            422,
            invalid_request(
                "Input should be less than or equal to 1",
                "filters.test_fraction",
                "less_than_equal",
            ),
        ),
        (
            "/snapshots/987654/supersede",
            {"name": "x", "kind": "prompts"},
            404,
            error("not_found", "no snapshot with id 987654"),
        ),
        (
            "/snapshots/{snapshot_id}/supersede",
            {"name": "x", "kind": "sft"},
            422,
            error("invalid_input", "a prompts snapshot can only be superseded by another", "kind"),
        ),
    ],
)
def test_bad_snapshot_requests_are_refused_with_nothing_queued(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    snapshot: Snapshot,
    headers: dict[str, str],
    path: str,
    body: Json,
    status: int,
    expected: Json | None,
) -> None:
    before = db_state(db, TABLES)
    url = API + path.format(project_id=project.id, snapshot_id=snapshot.id)

    response = client.post(url, headers=headers, json=body)

    assert response.status_code == status, response.text
    if expected is None:
        expected = error(
            "invalid_input",
            f"no queue in project {project.id} with id 987654",
            "filters.queue_ids",
        )
    assert response.json() == expected
    assert db_state(db, TABLES) == before
    assert queued(settings) == []


def test_an_already_superseded_snapshot_is_a_conflict(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    snapshot: Snapshot,
    headers: dict[str, str],
) -> None:
    newer = create_snapshot(
        db, settings, project.id, SnapshotCreate(name="Newer", kind="prompts"), staff
    )
    snapshot.superseded_by_id = newer.id
    db.commit()

    response = client.post(
        f"{API}/snapshots/{snapshot.id}/supersede",
        headers=headers,
        json={"name": "x", "kind": "prompts"},
    )

    assert (response.status_code, response.json()) == (
        409,
        error("conflict", f"snapshot {snapshot.id} is already superseded by {newer.id}"),
    )
    assert queued(settings) == []


def test_snapshots_are_listed_read_previewed_and_downloaded(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    snapshot: Snapshot,
    headers: dict[str, str],
) -> None:
    out = SnapshotOut.model_validate(snapshot).model_dump(mode="json")
    folder = settings.data_dir / snapshot.path

    listed = client.get(f"{API}/projects/{project.id}/snapshots", headers=headers)
    one = client.get(f"{API}/snapshots/{snapshot.id}", headers=headers)
    preview = client.get(
        f"{API}/snapshots/{snapshot.id}/preview", headers=headers, params={"limit": 1}
    )
    empty = client.get(
        f"{API}/snapshots/{snapshot.id}/preview", headers=headers, params={"split": "test"}
    )
    files = {
        name: client.get(f"{API}/snapshots/{snapshot.id}/files/{name}", headers=headers)
        for name in ("train.jsonl", "test.parquet", "snapshot.json")
    }

    assert (listed.status_code, listed.json()) == (200, [out])
    assert (one.status_code, one.json()) == (200, out)
    first_line = json.loads((folder / "train.jsonl").read_text().splitlines()[0])
    assert preview.json() == {"snapshot_id": snapshot.id, "split": "train", "rows": [first_line]}
    assert empty.json() == {"snapshot_id": snapshot.id, "split": "test", "rows": []}
    for name, response in files.items():
        assert response.status_code == 200, name
        assert response.content == (folder / name).read_bytes()
        assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert files["train.jsonl"].headers["content-type"] == "application/jsonl"
    assert json.loads(files["snapshot.json"].content)["id"] == snapshot.id


@pytest.mark.parametrize(
    ("path", "status", "expected"),
    [
        ("/snapshots/987654", 404, error("not_found", "no snapshot with id 987654")),
        ("/projects/987654/snapshots", 404, error("not_found", "no project with id 987654")),
        ("/snapshots/987654/preview", 404, error("not_found", "no snapshot with id 987654")),
        (
            "/snapshots/{id}/preview?split=dev",
            422,
            error("invalid_input", "split must be one of train, test", "split"),
        ),
        (
            "/snapshots/{id}/preview?limit=0",
            422,
            error("invalid_input", "limit must be between 1 and 1000", "limit"),
        ),
        (
            "/snapshots/987654/files/train.jsonl",
            404,
            error("not_found", "no snapshot with id 987654"),
        ),
        (
            "/snapshots/{id}/files/datasets",
            404,
            error(
                "not_found",
                "snapshot {id} has no file 'datasets'; its files are train.jsonl, test.jsonl, "
                "train.parquet, test.parquet, snapshot.json",
            ),
        ),
        (
            "/snapshots/{id}/files/%2E%2E",
            404,
            error(
                "not_found",
                "snapshot {id} has no file '..'; its files are train.jsonl, test.jsonl, "
                "train.parquet, test.parquet, snapshot.json",
            ),
        ),
        ("/snapshots/{id}/files/..%2F..%2Fsecret_key", 404, error("not_found", "Not Found")),
        ("/dataset-jobs/987654", 404, error("not_found", "no dataset job with id 987654")),
        ("/projects/987654/dataset-jobs", 404, error("not_found", "no project with id 987654")),
    ],
)
def test_unknown_snapshots_files_and_jobs_are_refused(
    client: TestClient,
    snapshot: Snapshot,
    headers: dict[str, str],
    path: str,
    status: int,
    expected: Json,
) -> None:
    response = client.get(API + path.replace("{id}", str(snapshot.id)), headers=headers)

    message = expected["error"]["message"].replace("{id}", str(snapshot.id))
    expected = {"error": {**expected["error"], "message": message}}
    assert (response.status_code, response.json()) == (status, expected)


def test_a_missing_snapshot_file_is_not_found(
    client: TestClient, settings: Settings, snapshot: Snapshot, headers: dict[str, str]
) -> None:
    (settings.data_dir / snapshot.path / "test.jsonl").unlink()

    response = client.get(f"{API}/snapshots/{snapshot.id}/files/test.jsonl", headers=headers)

    assert (response.status_code, response.json()) == (
        404,
        error("not_found", f"snapshot {snapshot.id}'s test.jsonl is missing from the data folder"),
    )


# --- jobs and exports -----------------------------------------------------------------------


def test_jobs_are_listed_newest_first(
    client: TestClient, db: Session, settings: Settings, project: Project, headers: dict[str, str]
) -> None:
    for _ in range(3):
        client.post(
            f"{API}/projects/{project.id}/imports",
            headers=headers,
            json={"name": "prompts.jsonl"},
        )
    jobs = list(db.scalars(select(DatasetJob).order_by(DatasetJob.id.desc())))

    every = client.get(f"{API}/projects/{project.id}/dataset-jobs", headers=headers)
    two = client.get(f"{API}/projects/{project.id}/dataset-jobs?limit=2", headers=headers)
    bad = client.get(f"{API}/projects/{project.id}/dataset-jobs?limit=0", headers=headers)

    assert every.json() == [job_json(job) for job in jobs]
    assert two.json() == [job_json(job) for job in jobs[:2]]
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "limit"


@pytest.mark.parametrize("kind", ["raw", "kto"])
def test_judgements_are_exported_at_once(
    client: TestClient,
    settings: Settings,
    project: Project,
    headers: dict[str, str],
    kind: str,
) -> None:
    response = client.post(f"{API}/projects/{project.id}/exports/{kind}", headers=headers, json={})
    refused = client.post(
        f"{API}/projects/{project.id}/exports/{kind}",
        headers=headers,
        json={"queue_ids": [987654]},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["kind"], body["project_id"], body["row_counts"]) == (
        kind,
        project.id,
        {"train": 0, "test": 0},
    )
    assert body["path"] == f"exports/project-{project.id}-{kind}-{body['content_hash'][:16]}"
    assert (settings.data_dir / body["path"] / "train.jsonl").read_bytes() == b""
    assert (refused.status_code, refused.json()) == (
        422,
        error(
            "invalid_input",
            f"no queue in project {project.id} with id 987654",
            "filters.queue_ids",
        ),
    )


def test_labelers_cannot_start_jobs(
    client: TestClient, db: Session, settings: Settings, project: Project
) -> None:
    labeler = make_user(db, "lena", Role.labeler)

    response = client.post(
        f"{API}/projects/{project.id}/imports",
        headers=bearer(make_token(db, labeler)),
        files={"file": ("fruit.jsonl", GOOD)},
    )

    assert (response.status_code, response.json()) == (
        403,
        error("permission_denied", "this needs the admin or researcher role"),
    )
    assert (queued(settings), uploads(settings)) == ([], [])


def test_the_import_route_documents_both_bodies(
    client: TestClient, db: Session, admin: User
) -> None:
    schema = client.get(f"{API}/openapi.json", headers=bearer(make_token(db, admin))).json()
    body = schema["paths"][f"{API}/projects/{{project_id}}/imports"]["post"]["requestBody"]

    assert sorted(body["content"]) == ["application/json", "multipart/form-data"]
    assert body["content"]["multipart/form-data"]["schema"]["required"] == ["file"]
    fields = body["content"]["application/json"]["schema"]["properties"]
    assert sorted(fields) == sorted(ImportJobCreate.model_fields)
    assert "$ref" not in json.dumps(body)

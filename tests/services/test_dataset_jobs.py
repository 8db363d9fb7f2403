"""app.services.dataset_jobs: starting a job refuses bad input before anything is queued;
run_dataset_job (called here directly, as the Celery task does) claims the row once, runs the
import or snapshot with live progress, and records how it ended."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict, InvalidInput, NotFound
from app.models import (
    DatasetJob,
    DatasetJobKind,
    DatasetJobStatus,
    Project,
    Prompt,
    Role,
    Snapshot,
    SnapshotKind,
    User,
)
from app.models.base import utcnow
from app.schemas.dataset_jobs import DatasetJobOut, ImportJobCreate
from app.schemas.imports import ImportResult, ImportRowError
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters, SnapshotOut
from app.services import dataset_jobs
from app.services.dataset_jobs import (
    LiveProgress,
    UploadTooLarge,
    get_dataset_job,
    list_dataset_jobs,
    read_live_progress,
    run_dataset_job,
    start_import_job,
    start_snapshot_job,
)
from app.settings import Settings
from tests.api.helpers import db_state
from tests.conftest import make_user
from tests.factories import make_project
from tests.services.snapshots.conftest import World, world  # noqa: F401 (a fixture)

CONTENT = ("prompts", "responses", "demonstrations", "comparisons", "comparison_items", "pairs")


def hh(index: int, rejected: str | None = None) -> str:
    base = f"\n\nHuman: Question {index}?"
    return json.dumps(
        {
            "chosen": f"{base}\n\nAssistant: Answer {index}.",
            "rejected": f"{base}\n\nAssistant: {'No.' if rejected is None else rejected}",
        }
    )


def hh_file(rows: int, bad_line: int | None = None) -> bytes:
    lines = [hh(index, "" if index == bad_line else None) for index in range(1, rows + 1)]
    return ("\n".join(lines) + "\n").encode()


class Sent:
    """Stands in for the broker: the ids the start functions would have queued."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self, settings: Settings, job_id: int) -> None:
        self.ids.append(job_id)


class WatchedProgress(LiveProgress):
    """Writes every report (no time limit) and records what a reader of the file then sees."""

    interval = 0.0
    seen: list[tuple[int, int] | None] = []

    def update(self, rows_done: int, bytes_done: int, *, force: bool = False) -> None:
        super().update(rows_done, bytes_done, force=force)
        WatchedProgress.seen.append(read_live_progress(self.settings, self.job_id))


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    folder = tmp_path / "imports"
    folder.mkdir()
    return settings.model_copy(update={"import_dir": folder})


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def run(db: Session, settings: Settings) -> Callable[[int], None]:
    """run_dataset_job in sessions of the test's own connection (so its commits are savepoints
    of the test's transaction and are rolled back with it)."""
    WatchedProgress.seen = []
    sessions = sessionmaker(
        bind=db.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )

    def run(job_id: int) -> None:
        try:
            run_dataset_job(
                job_id, settings=settings, sessions=sessions, live_progress=WatchedProgress
            )
        finally:
            db.expire_all()

    return run


@pytest.fixture
def staff(db: Session) -> User:
    return make_user(db, "rhea", Role.researcher)


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db, "Imports")


def upload(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    data: bytes,
    name: str = "hh.jsonl",
    **fields: Any,
) -> DatasetJob:
    return start_import_job(
        db,
        settings,
        project.id,
        acting=staff,
        data=ImportJobCreate(**fields),
        upload=io.BytesIO(data),
        upload_name=name,
        enqueue=sent,
    )


def uploads(settings: Settings) -> list[str]:
    folder = settings.data_dir / "uploads"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


# --- imports --------------------------------------------------------------------------------


def test_an_uploaded_import_runs_with_its_counts_and_progress(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    data = hh_file(2500)
    job = upload(db, settings, project, staff, sent, data, "c:\\data\\hh.jsonl", on_error="skip")

    assert sent.ids == [job.id]
    queued = get_dataset_job(db, settings, job.id)
    assert (queued.status, queued.kind, queued.source_name) == ("queued", "import", "hh.jsonl")
    assert (queued.rows_done, queued.bytes_done, queued.bytes_total) == (0, 0, len(data))
    assert (queued.fraction, queued.started_at, queued.result) == (0.0, None, None)
    assert len(uploads(settings)) == 1

    run(job.id)

    done = get_dataset_job(db, settings, job.id)
    assert done.status == DatasetJobStatus.succeeded
    assert (done.rows_done, done.bytes_done, done.bytes_total) == (2500, len(data), len(data))
    assert (done.fraction, done.error, done.snapshot_id) == (1.0, None, None)
    assert done.result == ImportResult(
        source="hh.jsonl",
        format="hh-rlhf",
        rows_read=2500,
        records_imported=2500,
        prompts_created=2500,
        responses=5000,
        comparisons=2500,
        pairs=2500,
        rows_imported=2500,
    )
    assert done.started_at is not None and done.finished_at is not None
    assert done.created_at <= done.started_at <= done.finished_at
    assert db.scalar(select(Prompt.source).where(Prompt.project_id == project.id).limit(1)) == (
        "import:hh.jsonl"
    )
    # Read back from the progress file as the job ran: a report after each batch of 1000
    # records, and one at the end.
    rows = [seen[0] for seen in WatchedProgress.seen if seen is not None]
    assert rows == [1000, 2000, 2500]
    read = [seen[1] for seen in WatchedProgress.seen if seen is not None]
    assert read == sorted(read) and 0 < read[0] < len(data) and read[-1] == len(data)
    # Once done: no upload kept, no progress file left.
    assert uploads(settings) == []
    assert read_live_progress(settings, job.id) is None


def test_a_running_job_reports_the_progress_file_and_a_fraction_of_bytes(
    db: Session, settings: Settings, project: Project, staff: User, sent: Sent
) -> None:
    job = upload(db, settings, project, staff, sent, hh_file(10))
    job.status, job.started_at = DatasetJobStatus.running, utcnow()
    db.commit()
    before = get_dataset_job(db, settings, job.id)
    live = LiveProgress(settings, job.id)
    live.update(4, job.bytes_total // 4, force=True)

    during = get_dataset_job(db, settings, job.id)

    assert (before.rows_done, before.bytes_done, before.fraction) == (0, 0, 0.0)
    assert (during.rows_done, during.bytes_done) == (4, job.bytes_total // 4)
    assert during.fraction == pytest.approx((job.bytes_total // 4) / job.bytes_total)
    # The row itself is not written while the import holds the database.
    db.refresh(job)
    assert (job.rows_done, job.bytes_done) == (0, 0)
    live.remove()
    assert read_live_progress(settings, job.id) is None


def test_a_bad_row_in_stop_mode_fails_the_job_naming_the_line_and_stores_nothing(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    job = upload(db, settings, project, staff, sent, hh_file(5, bad_line=3), on_error="stop")
    before = db_state(db, CONTENT)

    run(job.id)

    done = get_dataset_job(db, settings, job.id)
    assert done.status == DatasetJobStatus.failed
    assert done.error == (
        "line 3: the rejected response is empty "
        "(the import stopped there and nothing of it was kept)"
    )
    assert done.result == ImportResult(
        source="hh.jsonl",
        format="hh-rlhf",
        rows_read=3,
        stopped=True,
        stop_error=ImportRowError(line=3, reason="the rejected response is empty"),
    )
    assert (done.rows_done, done.snapshot_id) == (3, None)
    assert done.finished_at is not None
    assert db_state(db, CONTENT) == before
    assert uploads(settings) == []


def test_skip_mode_counts_the_bad_rows_and_keeps_the_rest(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    job = upload(db, settings, project, staff, sent, hh_file(5, bad_line=3), on_error="skip")

    run(job.id)

    done = get_dataset_job(db, settings, job.id)
    assert (done.status, done.error, done.rows_done) == ("succeeded", None, 5)
    assert isinstance(done.result, ImportResult)
    assert (done.result.records_imported, done.result.skipped) == (4, 1)
    assert done.result.errors == [ImportRowError(line=3, reason="the rejected response is empty")]


def test_an_import_by_name_reads_the_import_folder_and_leaves_the_file(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    assert settings.import_dir is not None
    (settings.import_dir / "hh").mkdir()
    source = settings.import_dir / "hh" / "train.jsonl"
    source.write_bytes(hh_file(3))

    job = start_import_job(
        db,
        settings,
        project.id,
        acting=staff,
        data=ImportJobCreate(name="hh/train.jsonl", source="HH train"),
        enqueue=sent,
    )
    run(job.id)

    done = get_dataset_job(db, settings, job.id)
    assert (done.status, done.source_name, done.bytes_total) == (
        "succeeded",
        "hh/train.jsonl",
        source.stat().st_size,
    )
    assert isinstance(done.result, ImportResult)
    assert (done.result.source, done.result.records_imported) == ("HH train", 3)
    assert job.upload_path is None
    assert source.read_bytes() == hh_file(3)


def test_a_file_that_cannot_be_read_fails_the_job_with_the_reason(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    job = upload(db, settings, project, staff, sent, b'{"colour": "red"}\n')

    run(job.id)

    done = get_dataset_job(db, settings, job.id)
    assert (done.status, done.result, done.fraction) == ("failed", None, 0.0)
    assert done.error == (
        "could not recognise the format from the columns colour; name one of "
        "oasst, hh-rlhf, preference, ultrafeedback, sft, prompts, dialogue"
    )
    assert uploads(settings) == []


def test_an_unexpected_error_fails_the_job_and_reaches_the_worker(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    job = upload(db, settings, project, staff, sent, hh_file(2))
    assert job.upload_path is not None
    (settings.data_dir / job.upload_path).unlink()

    with pytest.raises(FileNotFoundError):
        run(job.id)

    done = get_dataset_job(db, settings, job.id)
    assert done.status == DatasetJobStatus.failed
    assert done.error is not None and done.error.startswith("FileNotFoundError: ")


def test_a_job_is_claimed_once(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    job = upload(db, settings, project, staff, sent, hh_file(3))
    run(job.id)
    first = get_dataset_job(db, settings, job.id)
    contents = db_state(db, CONTENT)

    run(job.id)  # the same message delivered again

    assert get_dataset_job(db, settings, job.id) == first
    assert db_state(db, CONTENT) == contents


def test_a_job_another_worker_holds_is_left_alone(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    job = upload(db, settings, project, staff, sent, hh_file(3))
    job.status, job.started_at = DatasetJobStatus.running, utcnow()
    db.commit()
    before = db_state(db, ("dataset_jobs", *CONTENT))

    run(job.id)
    run(987654)  # no such job: nothing to claim

    assert db_state(db, ("dataset_jobs", *CONTENT)) == before
    assert len(uploads(settings)) == 1


# --- refused before anything is queued ------------------------------------------------------


def test_bad_import_requests_are_refused_with_nothing_stored_or_queued(
    db: Session, settings: Settings, project: Project, staff: User, sent: Sent, tmp_path: Path
) -> None:
    assert settings.import_dir is not None
    (settings.import_dir / "good.jsonl").write_bytes(hh_file(1))
    (tmp_path / "secret.jsonl").write_bytes(hh_file(1))
    (settings.import_dir / "escape.jsonl").symlink_to(tmp_path / "secret.jsonl")
    (settings.import_dir / "notes.pdf").write_bytes(b"%PDF")
    no_folder = settings.model_copy(update={"import_dir": None})
    small = settings.model_copy(update={"max_upload_bytes": 100})
    file = io.BytesIO(hh_file(1))
    cases: list[tuple[Settings, int, dict[str, Any], Exception]] = [
        (
            settings,
            project.id,
            {"data": ImportJobCreate(name="good.jsonl"), "upload": file, "upload_name": "a.jsonl"},
            InvalidInput(
                "give either an uploaded file or the name of a file in the import folder, not both"
            ),
        ),
        (
            settings,
            project.id,
            {"data": ImportJobCreate()},
            InvalidInput("upload a file, or name a file in the import folder"),
        ),
        (
            settings,
            987654,
            {"data": ImportJobCreate(name="good.jsonl")},
            NotFound("no project with id 987654"),
        ),
        (
            no_folder,
            project.id,
            {"data": ImportJobCreate(name="good.jsonl")},
            InvalidInput(
                "no import folder is set up (SMILEY_IMPORT_DIR), so files cannot be imported by "
                "name; upload the file instead"
            ),
        ),
        (
            settings,
            project.id,
            {"data": ImportJobCreate(name="../secret.jsonl")},
            InvalidInput(
                "'../secret.jsonl' goes up a folder ('..'); name a file inside the import folder"
            ),
        ),
        (
            settings,
            project.id,
            {"data": ImportJobCreate(name=str(tmp_path / "secret.jsonl"))},
            InvalidInput(
                f"{str(tmp_path / 'secret.jsonl')!r} is an absolute path; name a file inside the "
                "import folder"
            ),
        ),
        (
            settings,
            project.id,
            {"data": ImportJobCreate(name="escape.jsonl")},
            InvalidInput("'escape.jsonl' leads outside the import folder (a symlink?)"),
        ),
        (
            settings,
            project.id,
            {"data": ImportJobCreate(name="missing.jsonl")},
            InvalidInput("there is no 'missing.jsonl' in the import folder"),
        ),
        (
            settings,
            project.id,
            {"data": ImportJobCreate(name="notes.pdf")},
            InvalidInput(
                "cannot read 'notes.pdf': use a file ending in .jsonl, .ndjson, .csv, .parquet, "
                ".txt"
            ),
        ),
        (
            settings,
            project.id,
            {"data": ImportJobCreate(name="good.jsonl", format="xml")},
            InvalidInput(
                "unknown format 'xml'; use one of oasst, hh-rlhf, preference, ultrafeedback, sft, "
                "prompts, dialogue"
            ),
        ),
        (
            settings,
            project.id,
            {"data": ImportJobCreate(), "upload": io.BytesIO(b"x"), "upload_name": "  "},
            InvalidInput("the uploaded file has no name"),
        ),
        (
            small,
            project.id,
            {
                "data": ImportJobCreate(),
                "upload": io.BytesIO(b"x" * 101),
                "upload_name": "big.jsonl",
            },
            UploadTooLarge(
                "the file is larger than the upload limit of 100 bytes; put it in the import "
                "folder and import it by name"
            ),
        ),
    ]
    before = db_state(db, ("dataset_jobs", *CONTENT))

    for case_settings, project_id, kwargs, expected in cases:
        with pytest.raises(type(expected)) as raised:
            start_import_job(db, case_settings, project_id, acting=staff, enqueue=sent, **kwargs)
        assert raised.value.message == expected.message  # type: ignore[attr-defined]

    assert db_state(db, ("dataset_jobs", *CONTENT)) == before
    assert (sent.ids, uploads(settings)) == ([], [])


def test_an_upload_at_the_limit_is_taken(
    db: Session, settings: Settings, project: Project, staff: User, sent: Sent
) -> None:
    data = hh_file(1)
    exact = settings.model_copy(update={"max_upload_bytes": len(data)})

    job = upload(db, exact, project, staff, sent, data)

    assert (job.bytes_total, sent.ids) == (len(data), [job.id])


def test_a_job_that_cannot_be_queued_says_so(
    db: Session, settings: Settings, project: Project, staff: User
) -> None:
    def broker_down(_: Settings, __: int) -> None:
        raise ConnectionError("broker unreachable")

    job = upload(db, settings, project, staff, broker_down, hh_file(1))  # type: ignore[arg-type]

    found = get_dataset_job(db, settings, job.id)
    assert (found.status, found.error) == (
        "failed",
        "could not queue the job: ConnectionError: broker unreachable",
    )
    assert found.finished_at is not None and found.started_at is None
    assert uploads(settings) == []


# --- snapshots ------------------------------------------------------------------------------


def sft(name: str = "SFT set", **filters: Any) -> SnapshotCreate:
    filters.setdefault("test_fraction", 0.0)
    return SnapshotCreate(name=name, kind=SnapshotKind.sft, filters=SnapshotFilters(**filters))


def test_a_snapshot_job_writes_the_snapshot(
    db: Session,
    settings: Settings,
    world: World,  # noqa: F811
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    job = start_snapshot_job(
        db, settings, world.project.id, acting=world.researcher, data=sft(), enqueue=sent
    )
    queued = get_dataset_job(db, settings, job.id)
    assert (queued.kind, queued.status, queued.source_name, queued.fraction) == (
        "snapshot",
        "queued",
        "SFT set",
        0.0,
    )

    run(job.id)

    done = get_dataset_job(db, settings, job.id)
    snapshot = db.scalars(select(Snapshot).where(Snapshot.project_id == world.project.id)).one()
    assert (done.status, done.snapshot_id, done.rows_done, done.fraction) == (
        "succeeded",
        snapshot.id,
        2,
        1.0,
    )
    assert done.result == SnapshotOut.model_validate(snapshot)
    assert snapshot.row_counts == {"train": 2, "test": 0}
    assert (settings.data_dir / snapshot.path / "train.jsonl").is_file()
    assert [seen for seen in WatchedProgress.seen if seen is not None] == [(2, 0)]


def test_a_consensus_job_of_imported_judgements_fails_saying_why(
    db: Session,
    settings: Settings,
    project: Project,
    staff: User,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    """Issue 16: it wrote an empty snapshot (0 rows) without a word."""
    run(upload(db, settings, project, staff, sent, hh_file(3), on_error="stop").id)
    data = SnapshotCreate(name="Consensus", kind=SnapshotKind.preference, source="consensus")
    job = start_snapshot_job(db, settings, project.id, acting=staff, data=data, enqueue=sent)

    run(job.id)

    done = get_dataset_job(db, settings, job.id)
    assert (done.status, done.snapshot_id) == ("failed", None)
    assert done.error == (
        f"the snapshot would have no rows: project {project.id} has no labeler comparisons on "
        "tasks. Consensus is taken over the labelers of each task; the project's 3 imported "
        "comparisons belong to no task and are one judge each, so they are in source "
        '"pairs" snapshots (and raw and KTO exports), not here; nothing was written'
    )
    assert db.scalar(select(func.count()).select_from(Snapshot)) == 0


def test_a_supersede_job_replaces_the_old_snapshot(
    db: Session,
    settings: Settings,
    world: World,  # noqa: F811
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    first = start_snapshot_job(
        db, settings, world.project.id, acting=world.researcher, data=sft(), enqueue=sent
    )
    run(first.id)
    old_id = get_dataset_job(db, settings, first.id).snapshot_id
    assert old_id is not None

    second = start_snapshot_job(
        db,
        settings,
        987654,  # ignored: the project is the old snapshot's
        acting=world.researcher,
        data=sft("SFT, v1 only", guideline_version_ids=[world.v1.id]),
        supersedes_id=old_id,
        enqueue=sent,
    )
    run(second.id)

    done = get_dataset_job(db, settings, second.id)
    assert (done.status, done.project_id, done.rows_done) == ("succeeded", world.project.id, 1)
    old = db.get(Snapshot, old_id)
    assert old is not None and old.superseded_by_id == done.snapshot_id
    assert second.params == {
        "snapshot": sft("SFT, v1 only", guideline_version_ids=[world.v1.id]).model_dump(
            mode="json"
        ),
        "supersedes_id": old_id,
    }
    with pytest.raises(Conflict, match=f"snapshot {old_id} is already superseded by"):
        start_snapshot_job(
            db, settings, 0, acting=world.researcher, data=sft(), supersedes_id=old_id
        )
    assert sent.ids == [first.id, second.id]


def test_bad_snapshot_requests_are_refused_before_anything_is_queued(
    db: Session,
    settings: Settings,
    world: World,  # noqa: F811
    sent: Sent,
) -> None:
    cases: list[tuple[int, SnapshotCreate, int | None, Exception]] = [
        (987654, sft(), None, NotFound("no project with id 987654")),
        (
            world.project.id,
            sft(min_agreement=0.5),
            None,
            InvalidInput(
                "min_agreement does not apply here: demonstrations carry no flags and no agreement"
            ),
        ),
        (
            world.project.id,
            sft(queue_ids=[987654]),
            None,
            InvalidInput(f"no queue in project {world.project.id} with id 987654"),
        ),
        (world.project.id, sft(), 987654, NotFound("no snapshot with id 987654")),
        (world.project.id, sft(), 2**40, NotFound(f"no snapshot with id {2**40}")),
    ]
    before = db_state(db, ("dataset_jobs", "snapshots"))

    for project_id, data, supersedes_id, expected in cases:
        with pytest.raises(type(expected)) as raised:
            start_snapshot_job(
                db,
                settings,
                project_id,
                acting=world.researcher,
                data=data,
                supersedes_id=supersedes_id,
                enqueue=sent,
            )
        assert raised.value.message == expected.message  # type: ignore[attr-defined]

    assert db_state(db, ("dataset_jobs", "snapshots")) == before
    assert sent.ids == []


# --- reading --------------------------------------------------------------------------------


def test_jobs_are_listed_newest_first_and_unknown_ones_are_not_found(
    db: Session, settings: Settings, project: Project, staff: User, sent: Sent
) -> None:
    jobs = [upload(db, settings, project, staff, sent, hh_file(1)) for _ in range(3)]
    other = make_project(db, "Other")

    listed = list_dataset_jobs(db, settings, project.id)
    two = list_dataset_jobs(db, settings, project.id, limit=2)

    assert [job.id for job in listed] == [job.id for job in reversed(jobs)]
    assert all(isinstance(job, DatasetJobOut) for job in listed)
    assert [job.id for job in two] == [jobs[2].id, jobs[1].id]
    assert list_dataset_jobs(db, settings, other.id) == []
    with pytest.raises(NotFound, match=r"^no project with id 987654$"):
        list_dataset_jobs(db, settings, 987654)
    with pytest.raises(InvalidInput, match=r"^limit must be between 1 and 100$"):
        list_dataset_jobs(db, settings, project.id, limit=0)
    for missing in (987654, 2**40):
        with pytest.raises(NotFound, match=f"^no dataset job with id {missing}$"):
            get_dataset_job(db, settings, missing)


# --- the table's invariants -----------------------------------------------------------------


def job_row(project: Project, **values: Any) -> DatasetJob:
    defaults: dict[str, Any] = {
        "project_id": project.id,
        "kind": DatasetJobKind.import_rows,
        "status": DatasetJobStatus.queued,
        "params": {},
        "source_name": "a.jsonl",
        "rows_done": 0,
        "bytes_done": 0,
    }
    return DatasetJob(**{**defaults, **values})


INVALID_ROWS: dict[str, Callable[[], dict[str, Any]]] = {
    "negative rows": lambda: {"rows_done": -1},
    "negative bytes": lambda: {"bytes_done": -1},
    "negative total": lambda: {"bytes_total": -1},
    "empty name": lambda: {"source_name": ""},
    "finished while queued": lambda: {"finished_at": utcnow()},
    "succeeded, not finished": lambda: {"status": DatasetJobStatus.succeeded},
    "running, never started": lambda: {"status": DatasetJobStatus.running},
    "failed without error": lambda: {"status": DatasetJobStatus.failed, "finished_at": utcnow()},
    "succeeded with error": lambda: {
        "status": DatasetJobStatus.succeeded,
        "finished_at": utcnow(),
        "error": "x",
    },
    "snapshot job done without snapshot": lambda: {
        "kind": DatasetJobKind.snapshot,
        "status": DatasetJobStatus.succeeded,
        "finished_at": utcnow(),
    },
    "upload on a snapshot job": lambda: {
        "kind": DatasetJobKind.snapshot,
        "upload_path": "uploads/x.jsonl",
    },
}


@pytest.mark.parametrize("case", list(INVALID_ROWS))
def test_the_database_refuses_an_inconsistent_job(db: Session, project: Project, case: str) -> None:
    db.add(job_row(project, **INVALID_ROWS[case]()))

    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_the_database_takes_consistent_jobs(db: Session, project: Project) -> None:
    db.add_all(
        [
            job_row(project),
            job_row(project, status=DatasetJobStatus.running, started_at=utcnow()),
            job_row(
                project,
                status=DatasetJobStatus.failed,
                error="x",
                finished_at=utcnow(),
                bytes_total=0,
            ),
        ]
    )
    db.flush()
    assert dataset_jobs.TASK_NAME == "smiley.datasets.run"


# --- the settings they read -----------------------------------------------------------------


def test_the_import_folder_and_upload_limit_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SMILEY_IMPORT_DIR", raising=False)
    monkeypatch.delenv("SMILEY_MAX_UPLOAD_BYTES", raising=False)
    defaults = Settings(data_dir=tmp_path)
    assert (defaults.import_dir, defaults.max_upload_bytes) == (None, 2 * 1024**3)

    monkeypatch.setenv("SMILEY_IMPORT_DIR", "  ")
    assert Settings(data_dir=tmp_path).import_dir is None

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMILEY_IMPORT_DIR", "incoming")
    monkeypatch.setenv("SMILEY_MAX_UPLOAD_BYTES", "1048576")
    configured = Settings(data_dir=tmp_path)
    assert configured.import_dir == tmp_path.resolve() / "incoming"
    assert configured.max_upload_bytes == 1048576

    monkeypatch.setenv("SMILEY_MAX_UPLOAD_BYTES", "0")
    with pytest.raises(ValueError, match="max_upload_bytes"):
        Settings(data_dir=tmp_path)

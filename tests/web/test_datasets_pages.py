"""The datasets pages: a project's snapshots, jobs and forms; one snapshot's manifest, files,
preview and supersede form. Staff only.

The data is the hand-built world of tests/services/snapshots/conftest.py: demonstrations by
ann (guideline v1) and bob (v2); six pairs, three of them from ann's v1 comparisons. Jobs are
not sent to a broker here: the page's enqueue dependency records their ids, and the test runs
them as the worker would (run_dataset_job), in the test's own transaction.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import DatasetJob, DatasetJobStatus, Snapshot, SnapshotKind, User
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.services.dataset_jobs import run_dataset_job
from app.services.resending import resend_lost_messages
from app.services.snapshots import create_snapshot, supersede_snapshot
from app.settings import Settings
from app.web.datasets import get_enqueue
from tests.conftest import web_login
from tests.services.snapshots import conftest as snapshot_world
from tests.services.snapshots.conftest import World
from tests.web.helpers import snapshot as db_state

PREFS = (
    '{"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."}\n'
    "{not json\n"
    '{"prompt": "Name a fruit.", "chosen": "A pear.", "rejected": "A chair."}\n'
)
BAD_JSON = (
    "invalid JSON: Expecting property name enclosed in double quotes at column 2 "
    "(a truncated line?)"
)


# The hand-built world of the snapshot tests, as a fixture of this module too.
world = snapshot_world.world


class Sent:
    """Stands in for the broker: the job ids the pages would have queued."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self, settings: Settings, job_id: int) -> None:
        self.ids.append(job_id)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    folder = tmp_path / "imports"
    (folder / "sub").mkdir(parents=True)
    (folder / "prefs.jsonl").write_text(PREFS)
    (folder / "sub" / "more.csv").write_text("prompt\nHello?\n")
    (folder / ".hidden.jsonl").write_text(PREFS)
    (folder / "notes.md").write_text("# not a dataset\n")
    return settings.model_copy(update={"import_dir": folder})


@pytest.fixture
def sent(app: FastAPI) -> Sent:
    sent = Sent()
    app.dependency_overrides[get_enqueue] = lambda: sent
    return sent


@pytest.fixture
def run(db: Session, settings: Settings) -> Callable[[int], None]:
    """The worker: run_dataset_job in sessions of the test's own connection."""
    sessions = sessionmaker(
        bind=db.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )

    def run(job_id: int) -> None:
        run_dataset_job(job_id, settings=settings, sessions=sessions)
        db.expire_all()

    return run


@pytest.fixture
def made(db: Session, settings: Settings, world: World) -> list[Snapshot]:
    """SFT all (2 rows), Pairs (6 rows) superseded by Pairs v1 (3 rows); newest first."""
    project = world.project.id
    sft = create_snapshot(
        db,
        settings,
        project,
        SnapshotCreate(name="SFT all", kind=SnapshotKind.sft, filters=no_test()),
        world.researcher,
    )
    pairs = create_snapshot(
        db,
        settings,
        project,
        SnapshotCreate(name="Pairs", kind=SnapshotKind.preference, filters=no_test()),
        world.researcher,
    )
    v1_only = SnapshotFilters(guideline_version_ids=[world.v1.id], test_fraction=0)
    newer = supersede_snapshot(
        db,
        settings,
        pairs.id,
        SnapshotCreate(name="Pairs v1", kind=SnapshotKind.preference, filters=v1_only),
        world.researcher,
    )
    return [newer, pairs, sft]


def no_test() -> SnapshotFilters:
    return SnapshotFilters(test_fraction=0)


# --- reading pages ------------------------------------------------------------------------


def clean(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def by_testid(name: str, page: str) -> list[str]:
    return [clean(found) for found in re.findall(rf'data-testid="{name}"[^>]*>(.*?)</', page, re.S)]


def rows(name: str, page: str) -> list[list[str]]:
    """The cells of every <tr data-testid=name>, tags stripped."""
    return [
        [clean(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(rf'<tr[^>]*data-testid="{name}"[^>]*>(.*?)</tr>', page, re.S)
    ]


def options(select_testid: str, page: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) of every option of the select with that test id."""
    found = re.search(rf'<select[^>]*data-testid="{select_testid}"[^>]*>(.*?)</select>', page, re.S)
    assert found, select_testid
    return [
        (value, clean(label), " selected" in attributes)
        for value, attributes, label in re.findall(
            r'<option value="([^"]*)"([^>]*)>(.*?)</option>', found.group(1), re.S
        )
    ]


def stamp(user: User, moment: Any) -> str:
    return f"{user.username} · {moment:%Y-%m-%d %H:%M} UTC"


def form(csrf: str, **values: Any) -> dict[str, Any]:
    return {"csrf_token": csrf, **values}


# --- the datasets page --------------------------------------------------------------------


def test_the_page_lists_snapshots_and_offers_the_projects_choices(
    client: TestClient, world: World, made: list[Snapshot]
) -> None:
    web_login(client, world.researcher.username)
    page = client.get(f"/projects/{world.project.id}/datasets")
    assert page.status_code == 200
    newer, pairs, sft = made
    who = stamp(world.researcher, sft.created_at)
    assert rows("snapshot-row", page.text) == [
        [str(newer.id), "Pairs v1", "preference (pairs)", "3", "0", newer.content_hash[:12],
         stamp(world.researcher, newer.created_at), "—"],
        [str(pairs.id), "Pairs", "preference (pairs)", "6", "0", pairs.content_hash[:12],
         stamp(world.researcher, pairs.created_at), str(newer.id)],
        [str(sft.id), "SFT all", "sft", "2", "0", sft.content_hash[:12], who, "—"],
    ]  # fmt: skip
    assert by_testid("no-jobs", page.text) == ["No imports or snapshots started yet."]
    q1, q2, demos = world.q1.id, world.q2.id, world.demo_queue.id
    assert options("queue-choices", page.text) == [
        (str(demos), "demos (demonstration)", False),
        (str(q2), "gold (comparison)", False),
        (str(q1), "main (comparison)", False),
    ]
    assert options("version-choices", page.text) == [
        (str(world.v1.id), "version 1", False),
        (str(world.v2.id), "version 2", False),
    ]
    # Only people who labelled in this project; rita (a researcher) made no labels.
    assert options("labeler-choices", page.text) == [
        (str(world.ann.id), "ann", False),
        (str(world.bob.id), "bob", False),
    ]
    # The import folder's dataset files, not hidden ones nor other kinds.
    assert re.findall(r'<option value="([^"]+)"', page.text.split('id="import-name"')[1])[:2] == [
        "prefs.jsonl",
        "sub/more.csv",
    ]
    assert 'id="import-name"' in page.text
    assert "notes.md" not in page.text and ".hidden" not in page.text


def test_the_project_page_links_to_its_datasets(client: TestClient, world: World) -> None:
    web_login(client, world.researcher.username)
    page = client.get(f"/projects/{world.project.id}").text
    assert (
        f'href="/projects/{world.project.id}/datasets" data-testid="project-datasets-link"' in page
    )


def test_a_snapshot_job_polls_until_it_is_done(
    client: TestClient,
    db: Session,
    world: World,
    sent: Sent,
    run: Callable[[int], None],
) -> None:
    csrf = web_login(client, world.researcher.username)
    response = client.post(
        f"/projects/{world.project.id}/datasets/snapshots",
        data=form(
            csrf,
            name="Ann's demos",
            kind="sft",
            guideline_version_ids=[str(world.v1.id)],
            test_fraction="0",
        ),
    )
    assert response.status_code == 303
    job = db.scalars(select(DatasetJob)).one()
    assert sent.ids == [job.id]
    assert response.headers["location"] == f"/projects/{world.project.id}/datasets#job-{job.id}"

    page = client.get(f"/projects/{world.project.id}/datasets").text
    assert by_testid("notice", page) == [f"Started snapshot job {job.id}: Ann's demos."]
    poll = f'hx-get="/dataset-jobs/{job.id}/row" hx-trigger="every 1s" hx-swap="outerHTML"'
    assert poll in page
    assert rows("job-row", page) == [
        [str(job.id), "Snapshot · Ann's demos", "queued", "0 rows", "waiting for a worker",
         stamp(world.researcher, job.created_at)],
    ]  # fmt: skip

    fragment = client.get(f"/dataset-jobs/{job.id}/row")
    assert fragment.status_code == 200
    assert fragment.headers["cache-control"] == "no-store"
    assert fragment.text.lstrip().startswith(f'<tr id="job-{job.id}"')
    assert "<html" not in fragment.text and poll in fragment.text

    run(job.id)
    done = client.get(f"/dataset-jobs/{job.id}/row").text
    assert "hx-trigger" not in done
    made = db.scalars(select(Snapshot)).one()
    assert made.row_counts == {"train": 1, "test": 0}
    assert rows("job-row", done) == [
        [str(job.id), "Snapshot · Ann's demos", "succeeded", "1 row",
         f"Snapshot {made.id} : 1 train, 0 test rows", stamp(world.researcher, job.created_at)],
    ]  # fmt: skip
    assert f'<a href="/snapshots/{made.id}" data-testid="job-snapshot-link">' in done
    assert 'width="100.0%"' in done


def test_a_job_sent_again_says_so(
    client: TestClient, db: Session, settings: Settings, world: World, sent: Sent
) -> None:
    csrf = web_login(client, world.researcher.username)
    client.post(
        f"/projects/{world.project.id}/datasets/snapshots",
        data=form(csrf, name="Lost", kind="sft", test_fraction="0"),
    )
    job = db.scalars(select(DatasetJob)).one()
    assert by_testid("job-resent", client.get(f"/dataset-jobs/{job.id}/row").text) == []

    # The fake enqueue sent nothing: to the broker, its message is lost.
    now = job.created_at + timedelta(minutes=10)
    resent = resend_lost_messages(db, settings, older_than=timedelta(minutes=5), now=now)
    assert resent.dataset_jobs == [job.id]
    assert by_testid("job-resent", client.get(f"/dataset-jobs/{job.id}/row").text) == [
        f"sent to the workers again {now:%Y-%m-%d %H:%M} UTC: the job queue had lost its message"
    ]


BAD_SNAPSHOTS = [
    (
        {"kind": "sft", "min_agreement": "0.5"},
        "min_agreement",
        "min_agreement does not apply here: demonstrations carry no flags and no agreement",
    ),
    (
        {"kind": "sft", "test_fraction": "2"},
        "test_fraction",
        "Input should be less than or equal to 1",
    ),
    (
        {"kind": "sft", "created_from": "yesterday"},
        "created_from",
        "'yesterday' is not a date like 2024-05-01 or 2024-05-01T12:00",
    ),
    ({"kind": "sft", "queue_ids": ["x1"]}, "queue_ids", "'x1' is not a queue id"),
    (
        {"kind": "sft", "queue_ids": ["99999"]},
        "queue_ids",
        "no queue in project {project} with id 99999",
    ),
    (
        {"kind": "preference", "source": "consensus", "labeler_ids": ["{ann}"]},
        "labeler_ids",
        "labeler_ids does not apply here: a consensus is made from all of a task's judgements; "
        "use source 'pairs' to select judgements by labeler, guideline version or date",
    ),
    ({"kind": "poem"}, "kind", "Input should be 'sft', 'preference' or 'prompts'"),
    ({"kind": "sft", "name": "  "}, "name", "a snapshot needs a name"),
    (
        {"kind": "preference", "created_from": "2024-02-01", "created_to": "2024-01-01"},
        "snapshot-form-error",
        "created_from must be before created_to",
    ),
    (
        {"kind": "sft", "source": "pairs"},
        "snapshot-form-error",
        "source applies to preference snapshots only",
    ),
    (
        {"kind": "sft", "margin": "score_gap"},
        "snapshot-form-error",
        "margin applies to preference snapshots only",
    ),
    (
        {"kind": "preference", "margin": "gap"},
        "margin",
        "Input should be 'none' or 'score_gap'",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("values", "field", "message"), BAD_SNAPSHOTS)
def test_bad_snapshot_filters_are_an_inline_error_and_change_nothing(
    client: TestClient,
    db: Session,
    world: World,
    sent: Sent,
    values: dict[str, Any],
    field: str,
    message: str,
) -> None:
    csrf = web_login(client, world.researcher.username)
    before = db_state(db)
    filled = {
        key: [item.format(ann=world.ann.id) for item in value] if isinstance(value, list) else value
        for key, value in values.items()
    }
    response = client.post(
        f"/projects/{world.project.id}/datasets/snapshots",
        data=form(csrf, **{"name": "Try", **filled}),
    )
    assert response.status_code == 422
    testid = field if field.endswith("form-error") else f"error-{field}"
    assert by_testid(testid, response.text) == [message.format(project=world.project.id)]
    assert db_state(db) == before
    assert sent.ids == []
    # The form keeps what was typed.
    if "created_from" in values:
        assert f'name="created_from" type="text" value="{values["created_from"]}"' in response.text


# --- imports ------------------------------------------------------------------------------


def test_an_uploaded_import_runs_and_lists_its_skipped_rows(
    client: TestClient, db: Session, world: World, sent: Sent, run: Callable[[int], None]
) -> None:
    csrf = web_login(client, world.researcher.username)
    response = client.post(
        f"/projects/{world.project.id}/datasets/imports",
        data=form(csrf, format="", on_error="skip", source=""),
        files={"file": ("prefs.jsonl", PREFS.encode(), "application/jsonl")},
    )
    assert response.status_code == 303, response.text
    job = db.scalars(select(DatasetJob)).one()
    assert sent.ids == [job.id]
    assert (job.source_name, job.bytes_total) == ("prefs.jsonl", len(PREFS.encode()))

    run(job.id)
    done = client.get(f"/dataset-jobs/{job.id}/row").text
    assert "hx-trigger" not in done
    assert by_testid("job-status", done) == ["succeeded"]
    assert by_testid("import-counts", done) == [
        "2 records from 3 rows (preference): 2 new prompts, 0 already there, 4 responses, "
        "0 demonstrations, 2 comparisons, 2 pairs; 1 skipped"
    ]
    assert by_testid("import-rows", done) == [
        "3 rows read: 2 imported, 0 imported with a warning, 0 merged as repeats, 1 skipped; "
        "0 responses merged as duplicates"
    ]
    assert clean(re.findall(r'data-testid="skipped-rows">(.*?)</ul>', done, re.S)[0]) == (
        f"line 2: {BAD_JSON}"
    )


def test_an_import_lists_its_warned_rows_and_counts_that_add_up(
    client: TestClient, db: Session, world: World, sent: Sent, run: Callable[[int], None]
) -> None:
    csrf = web_login(client, world.researcher.username)
    pair = {"instruction": "Q", "completions": [{"response": "A"}, {"response": "B"}]}
    lonely = {"instruction": "Lonely", "completions": [{"response": "Only"}]}
    data = "\n".join(json.dumps(row) for row in (pair, lonely, pair)) + "\n"
    response = client.post(
        f"/projects/{world.project.id}/datasets/imports",
        data=form(csrf, format="", on_error="skip", source=""),
        files={"file": ("uf.jsonl", data.encode(), "application/jsonl")},
    )
    assert response.status_code == 303, response.text
    job = db.scalars(select(DatasetJob)).one()

    run(job.id)
    done = client.get(f"/dataset-jobs/{job.id}/row").text
    # Unrated, so no row compares; the third repeats the first.
    assert by_testid("import-rows", done) == [
        "3 rows read: 0 imported, 2 imported with a warning, 1 merged as repeats, 0 skipped; "
        "2 responses merged as duplicates"
    ]
    assert clean(re.findall(r'data-testid="warned-rows">(.*?)</ul>', done, re.S)[0]) == (
        "line 1: fewer than two completions are rated, no comparison "
        "line 2: one completion, no comparison"
    )


def test_an_open_assistant_import_counts_deleted_messages_apart_even_in_stop_mode(
    client: TestClient, db: Session, world: World, sent: Sent, run: Callable[[int], None]
) -> None:
    csrf = web_login(client, world.researcher.username)

    def message(mid: str, parent: str | None, role: str, rank: int | None, **extra: Any) -> str:
        row = {"message_id": mid, "parent_id": parent, "role": role, "text": f"Text {mid}"}
        return json.dumps({**row, "rank": rank, "message_tree_id": "t1", **extra})

    rows = [
        message("p1", None, "prompter", None),
        message("a1", "p1", "assistant", 0),
        message("a2", "p1", "assistant", 1),
        message("a3", "p1", "assistant", 2, deleted=True),
        message("p4", "a3", "prompter", None),
    ]
    response = client.post(
        f"/projects/{world.project.id}/datasets/imports",
        data=form(csrf, format="", on_error="stop", source=""),
        files={"file": ("oasst.jsonl", ("\n".join(rows) + "\n").encode(), "application/jsonl")},
    )
    assert response.status_code == 303, response.text
    job = db.scalars(select(DatasetJob)).one()

    run(job.id)
    done = client.get(f"/dataset-jobs/{job.id}/row").text
    assert by_testid("import-rows", done) == [
        "5 rows read: 3 imported, 0 imported with a warning, 0 merged as repeats, 2 skipped "
        "(2 deleted by Open-Assistant moderators); 0 responses merged as duplicates"
    ]
    assert 'data-testid="skipped-rows"' not in done


def test_an_import_stopped_by_a_bad_row_shows_the_error(
    client: TestClient, db: Session, world: World, sent: Sent, run: Callable[[int], None]
) -> None:
    csrf = web_login(client, world.researcher.username)
    response = client.post(
        f"/projects/{world.project.id}/datasets/imports",
        data=form(csrf, name="prefs.jsonl", on_error="stop"),
    )
    assert response.status_code == 303, response.text
    job = db.scalars(select(DatasetJob)).one()
    assert job.source_name == "prefs.jsonl"
    run(job.id)
    assert db.get(DatasetJob, job.id).status == DatasetJobStatus.failed  # type: ignore[union-attr]
    page = client.get(f"/projects/{world.project.id}/datasets").text
    assert "hx-trigger" not in page
    assert by_testid("job-error", page) == [
        f"line 2: {BAD_JSON} (the import stopped there and nothing of it was kept)"
    ]
    # Its bar is the failed colour and says failed, not a green "100% done" (issue 16).
    assert re.findall(r'<svg class="([^"]+)" role="img" aria-label="([^"]+)"', page) == [
        ("progress-bar failed", "failed at 100.0%")
    ]


@pytest.mark.parametrize(
    ("values", "upload", "field", "message"),
    [
        ({}, None, "file", "upload a file, or name a file in the import folder"),
        (
            {"name": "prefs.jsonl"},
            ("prefs.jsonl", PREFS),
            "name",
            "give either an uploaded file or the name of a file in the import folder, not both",
        ),
        ({"name": "../secret.jsonl"}, None, "name",
         "'../secret.jsonl' goes up a folder ('..'); name a file inside the import folder"),
        ({"name": "gone.jsonl"}, None, "name", "there is no 'gone.jsonl' in the import folder"),
        ({}, ("notes.md", "# hi\n"), "name",
         "cannot read 'notes.md': use a file ending in .jsonl, .ndjson, .csv, .parquet, .txt"),
        (
            {"name": "prefs.jsonl", "format": "csv"},
            None,
            "format",
            "unknown format 'csv'; use one of oasst, hh-rlhf, preference, ultrafeedback, sft, "
            "prompts, dialogue",
        ),
        ({"name": "prefs.jsonl", "on_error": "ignore"}, None, "on_error",
         "Input should be 'skip' or 'stop'"),
        ({"name": "prefs.jsonl", "min_turns": "0"}, None, "min_turns",
         "Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_imports_are_an_inline_error_and_change_nothing(
    client: TestClient,
    db: Session,
    world: World,
    sent: Sent,
    settings: Settings,
    values: dict[str, str],
    upload: tuple[str, str] | None,
    field: str,
    message: str,
) -> None:
    csrf = web_login(client, world.researcher.username)
    before = db_state(db)
    files = {"file": (upload[0], upload[1].encode())} if upload else {"file": ("", b"")}
    response = client.post(
        f"/projects/{world.project.id}/datasets/imports", data=form(csrf, **values), files=files
    )
    assert response.status_code == 422
    assert by_testid(f"import-error-{field}", response.text) == [message]
    assert db_state(db) == before
    assert sent.ids == []
    assert not (settings.data_dir / "uploads").exists() or not any(
        (settings.data_dir / "uploads").iterdir()
    )


# --- one snapshot -------------------------------------------------------------------------


def test_the_snapshot_page_shows_its_manifest_files_and_preview(
    client: TestClient, world: World, made: list[Snapshot]
) -> None:
    newer, pairs, _ = made
    web_login(client, world.researcher.username)
    page = client.get(f"/snapshots/{newer.id}").text
    assert by_testid("snapshot-name", page) == ["Pairs v1 preference"]
    assert by_testid("row-counts", page) == ["3 train · 0 test"]
    assert by_testid("content-hash", page) == [newer.content_hash]
    assert by_testid("created", page) == [stamp(world.researcher, newer.created_at)]
    assert by_testid("supersedes", page) == [f"{pairs.id} · Pairs"]
    assert by_testid("superseded-by", page) == ["—"]
    # In words and in the form's order, not as the manifest's keys (issue 16).
    assert re.findall(r'data-testid="filter-row" data-key="\w+"><th>([^<]+)</th>', page) == [
        "Preference rows from", "Labels from", "Queues", "Guideline versions", "Labelers",
        "Made from", "Made before", "Minimum agreement",
        "Leave out judgements that flag a response", "Leave out gold tasks",
        "Include labels an admin rejected", "Include AI revisions (critique runs)",
        "Margin column", "Test fraction", "Seed", "Label sources", "Judge model",
        "Judge template", "Human rows written", "AI rows written",
        "Agreement the judge needs on a category", "Categories taken from the judge",
    ]  # fmt: skip
    assert rows("filter-row", page) == [
        ["pairs"], ["People's labels only (labelers' and imported); no AI labels"], ["any"],
        ["version 1"], ["any"], ["any"], ["any"], ["any"], ["no"], ["no"], ["no"], ["no"],
        ["none"], ["0.0"], ["0"], ["human"], ["any"], ["any"], ["1"], ["1"], ["any"], ["any"],
    ]  # fmt: skip
    assert re.findall(r'href="(/snapshots/\d+/files/[^"]+)"', page) == [
        f"/snapshots/{newer.id}/files/{name}"
        for name in ("train.jsonl", "test.jsonl", "train.parquet", "test.parquet", "snapshot.json")
    ]
    # The preview: ann's three v1 pairs, each turn through the untrusted-content macros.
    assert len(re.findall(r'data-testid="preview-row"', page)) == 3
    assert by_testid("split-current", page) == ["train"]
    prompts = re.findall(r'data-testid="row-prompt">(.*?)</div>\s*</section>', page, re.S)
    assert [clean(found) for found in prompts] == [
        "User Prompt one",
        "User Prompt one",
        "User Prompt two",
    ]
    assert page.count('class="conversation untrusted" hx-disable') == 9
    chosen = re.findall(r'data-testid="row-chosen">(.*?)</div>\s*</section>', page, re.S)
    assert [clean(found) for found in chosen] == [
        "Assistant answer 0",
        "Assistant answer 0",
        "Assistant answer 0",
    ]
    # The supersede form starts from this snapshot's filters.
    assert options("version-choices", page) == [
        (str(world.v1.id), "version 1", True),
        (str(world.v2.id), "version 2", False),
    ]
    assert 'name="test_fraction" type="text" inputmode="decimal" value="0.0"' in page

    old = client.get(f"/snapshots/{pairs.id}").text
    assert by_testid("superseded-by", old) == [str(newer.id)]
    assert 'data-testid="supersede-form"' not in old


def test_the_split_toggle_swaps_in_the_test_preview(
    client: TestClient, world: World, made: list[Snapshot]
) -> None:
    sft = made[2]
    web_login(client, world.researcher.username)
    fragment = client.get(f"/snapshots/{sft.id}/preview?split=test").text
    assert fragment.lstrip().startswith('<section id="preview"')
    assert "<html" not in fragment
    assert by_testid("split-current", fragment) == ["test"]
    assert by_testid("preview-empty", fragment) == ["The test split has no rows."]
    toggle = (
        f'href="/snapshots/{sft.id}?split=train" hx-get="/snapshots/{sft.id}/preview?split=train" '
        f'hx-target="#preview" hx-swap="outerHTML" hx-push-url="/snapshots/{sft.id}?split=train"'
    )
    assert toggle in fragment
    train = client.get(f"/snapshots/{sft.id}/preview?split=train").text
    messages = re.findall(
        r'data-testid="row-messages">(.*?)</div>\s*</section>\s*</div>', train, re.S
    )
    assert [clean(found) for found in messages] == [
        "User Prompt one Assistant Demo one",
        "User Prompt three Assistant Demo three User More? Assistant Yes.",
    ]
    bad = client.get(f"/snapshots/{sft.id}/preview?split=dev").text
    assert by_testid("preview-error", bad) == ["split must be one of train, test"]


def test_snapshot_files_download_and_nothing_else(
    client: TestClient, world: World, settings: Settings, made: list[Snapshot]
) -> None:
    sft = made[2]
    web_login(client, world.researcher.username)
    response = client.get(f"/snapshots/{sft.id}/files/train.jsonl")
    assert response.status_code == 200
    assert response.content == (settings.data_dir / sft.path / "train.jsonl").read_bytes()
    assert response.headers["content-type"] == "application/jsonl"
    assert 'filename="train.jsonl"' in response.headers["content-disposition"]
    manifest = client.get(f"/snapshots/{sft.id}/files/snapshot.json").json()
    assert (manifest["id"], manifest["content_hash"]) == (sft.id, sft.content_hash)
    for name in ("datasets", "..%2F..%2Fsmiley.sqlite3", "secret_key"):
        assert client.get(f"/snapshots/{sft.id}/files/{name}").status_code == 404, name
    assert client.get("/snapshots/99999/files/train.jsonl").status_code == 404


def test_superseding_starts_a_job_and_bad_filters_are_refused(
    client: TestClient,
    db: Session,
    world: World,
    sent: Sent,
    made: list[Snapshot],
    run: Callable[[int], None],
) -> None:
    sft = made[2]
    csrf = web_login(client, world.researcher.username)
    before = db_state(db)
    bad = client.post(
        f"/snapshots/{sft.id}/supersede",
        data=form(csrf, name="SFT v2", exclude_flagged="on", test_fraction="0"),
    )
    assert bad.status_code == 422
    assert by_testid("error-exclude_flagged", bad.text) == [
        "exclude_flagged does not apply here: demonstrations carry no flags and no agreement"
    ]
    assert 'name="exclude_flagged" checked' in bad.text
    assert db_state(db) == before and sent.ids == []

    response = client.post(
        f"/snapshots/{sft.id}/supersede",
        data=form(csrf, name="SFT bob", labeler_ids=[str(world.bob.id)], test_fraction="0"),
    )
    assert response.status_code == 303
    job = db.scalars(select(DatasetJob)).one()
    assert sent.ids == [job.id]
    run(job.id)
    db.refresh(sft)
    assert sft.superseded_by_id == job.snapshot_id
    newer = db.get(Snapshot, job.snapshot_id)
    assert newer is not None and newer.row_counts == {"train": 1, "test": 0}
    again = client.post(f"/snapshots/{sft.id}/supersede", data=form(csrf, name="Third"))
    assert again.status_code == 409
    assert by_testid("snapshot-form-error", again.text) == [
        f"snapshot {sft.id} is already superseded by {newer.id}"
    ]


# --- who may ------------------------------------------------------------------------------


def test_labelers_get_403_everywhere(
    client: TestClient,
    db: Session,
    world: World,
    labeler: User,
    sent: Sent,
    made: list[Snapshot],
) -> None:
    project, snapshot_id = world.project.id, made[0].id
    csrf = web_login(client, labeler.username)
    before = db_state(db)
    for path in (
        f"/projects/{project}/datasets",
        f"/snapshots/{snapshot_id}",
        f"/snapshots/{snapshot_id}/preview",
        f"/snapshots/{snapshot_id}/files/train.jsonl",
        "/dataset-jobs/1/row",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert by_testid("error-message", response.text) == [
            "this needs the admin or researcher role"
        ]
    for path, data in (
        (f"/projects/{project}/datasets/snapshots", {"name": "x", "kind": "sft"}),
        (f"/projects/{project}/datasets/imports", {"name": "prefs.jsonl"}),
        (f"/snapshots/{snapshot_id}/supersede", {"name": "x"}),
    ):
        assert client.post(path, data=form(csrf, **data)).status_code == 403, path
    assert db_state(db) == before and sent.ids == []


def test_missing_things_are_404(client: TestClient, world: World) -> None:
    web_login(client, world.researcher.username)
    assert client.get("/projects/99999/datasets").status_code == 404
    assert client.get("/snapshots/99999").status_code == 404
    response = client.get("/dataset-jobs/99999/row")
    assert response.status_code == 404
    assert by_testid("error-message", response.text) == ["no dataset job with id 99999"]


def test_the_manifest_file_matches_the_page(
    client: TestClient, world: World, settings: Settings, made: list[Snapshot]
) -> None:
    newer = made[0]
    manifest = json.loads((settings.data_dir / newer.path / "snapshot.json").read_text())
    web_login(client, world.researcher.username)
    page = client.get(f"/snapshots/{newer.id}").text
    assert by_testid("content-hash", page) == [manifest["content_hash"]]
    assert manifest["supersedes_id"] == made[1].id

"""`smiley import` and `smiley export` against a fresh SQLite database in a temporary folder.

The hand-built data: project 1 "Helpful" (guideline version 1 published), admin ada (the oldest
admin), researcher rex, labeler lena. prefs.jsonl holds three preference rows, the second of
them not JSON; each good row gives one prompt, two responses, one imported comparison and one
pair.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from app import db as app_db
from app.cli import cli
from app.db import get_engine, session_factory
from app.models import Comparison, Pair, Prompt, Response, Role, Snapshot
from app.schemas.guidelines import GuidelineSave
from app.schemas.projects import ProjectCreate
from app.schemas.users import UserCreate
from app.services import guidelines, projects, users
from app.settings import get_settings
from tests.conftest import MigratedDatabases

runner = CliRunner()

PREFS = [
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."},
    "{not json",
    {"prompt": "Name a fruit.", "chosen": "A pear.", "rejected": "A chair."},
]
BAD_JSON = (
    "invalid JSON: Expecting property name enclosed in double quotes at column 2 "
    "(a truncated line?)"
)
DIALOGUES = (
    "[A]: Hello there.\n[B]: Hi! How can I help?\n\n"
    "[A]: What is two and two?\n[B]: Four.\n[A]: Thanks.\n[B]: You are welcome.\n\n"
    "[A]: Only one turn here.\n"
)


@pytest.fixture(autouse=True)
def data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_databases: MigratedDatabases
) -> Iterator[Path]:
    for name in ("SMILEY_DATABASE_URL", "SMILEY_BROKER_URL", "SMILEY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMILEY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()
    get_settings().ensure_data_dir()
    migrated_databases.sqlite(get_settings().data_dir / "smiley.sqlite3")
    with session_factory(get_engine())() as db:
        ada, _ = users.create_user(
            db, UserCreate(username="ada", role=Role.admin, password="a long password")
        )
        for name, role in (("rex", Role.researcher), ("lena", Role.labeler)):
            users.create_user(db, UserCreate(username=name, role=role, password="a long password"))
        project = projects.create_project(db, ProjectCreate(name="Helpful"), acting=ada)
        guidelines.save_version(db, project.id, GuidelineSave(body="Be kind."), acting=ada)
        guidelines.publish_version(db, project.id, 1)
    yield tmp_path / "data"
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()


def run(*args: str) -> Result:
    return runner.invoke(cli, list(args))


def counts() -> dict[str, int]:
    with session_factory(get_engine())() as db:
        return {
            model.__tablename__: db.scalar(select(func.count()).select_from(model)) or 0
            for model in (Prompt, Response, Comparison, Pair, Snapshot)
        }


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    )
    return path


SFT = ["--project", "1", "--kind", "sft", "--name", "x"]
NOTHING = {"prompts": 0, "responses": 0, "comparisons": 0, "pairs": 0, "snapshots": 0}


# --- import -----------------------------------------------------------------------------------


def test_import_skips_bad_rows_and_reports_them(tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "prefs.jsonl", PREFS)
    result = run("import", str(file), "--project", "1", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "imported prefs.jsonl as preference\n"
        "rows read: 3\n"
        "rows: 2 imported, 0 imported with a warning, 0 merged as repeats, 1 skipped\n"
        "records imported: 2\n"
        "prompts: 2 new, 0 already there\n"
        "responses: 4 (0 merged as duplicates)\n"
        "demonstrations: 0\n"
        "comparisons: 2\n"
        "pairs: 2\n"
        "skipped: 1\n"
        f"  line 2: {BAD_JSON}\n"
    )
    # The bar goes to stderr; without a terminal click writes only its label.
    assert result.stderr == "importing prefs.jsonl\n"
    assert counts() == {**NOTHING, "prompts": 2, "responses": 4, "comparisons": 2, "pairs": 2}
    with session_factory(get_engine())() as db:
        assert set(db.scalars(select(Prompt.source))) == {"import:prefs.jsonl"}
        assert set(db.scalars(select(Prompt.created_by_id))) == {1}


def test_import_stops_at_a_bad_row_and_keeps_nothing(tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "prefs.jsonl", PREFS)
    # Stopping is the default, as in the web app and the API.
    options = ["--source", "hand", "--as", "rex"]
    result = run("import", str(file), "--project", "1", *options)
    assert (result.exit_code, result.stdout) == (1, "")
    # Stopped before the first batch was stored: no progress was reported, so no bar.
    assert result.stderr == f"error: stopped at line 2: {BAD_JSON}; nothing was imported\n"
    assert counts() == NOTHING


def test_import_of_dialogue_text_reports_its_filters(tmp_path: Path) -> None:
    file = tmp_path / "chats.txt"
    file.write_text(DIALOGUES)
    options = ["--min-turns", "3", "--source", "gopher", "--as", "rex"]
    result = run("import", str(file), "--project", "1", *options)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "imported gopher as dialogue\n"
        "rows read: 3\n"
        "rows: 1 imported, 0 imported with a warning, 0 merged as repeats, 0 skipped\n"
        "records imported: 1\n"
        "prompts: 1 new, 0 already there\n"
        "responses: 1 (0 merged as duplicates)\n"
        "demonstrations: 1\n"
        "comparisons: 0\n"
        "pairs: 0\n"
        "skipped: 0\n"
        "dialogues: 3 read, 1 kept; dropped: text_outside_turns 0, unknown_speaker 0, "
        "empty_turn 0, too_few_turns 2, turn_too_long 0, not_alternating 0, one_speaker 0\n"
    )
    with session_factory(get_engine())() as db:
        assert list(db.scalars(select(Prompt.messages))) == [
            [
                {"role": "user", "content": "What is two and two?"},
                {"role": "assistant", "content": "Four."},
                {"role": "user", "content": "Thanks."},
            ]
        ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl", "--project", "1"], "missing.jsonl is not a file"),
        (["{prefs}", "--project", "9"], "no project with id 9"),
        (
            ["{prefs}", "--project", "1", "--as", "lena"],
            "lena is a labeler; this needs a researcher or admin",
        ),
        (["{prefs}", "--project", "1", "--as", "ghost"], "no user named 'ghost'"),
        (
            ["{prefs}", "--project", "1", "--format", "csv"],
            "unknown format 'csv'; use one of oasst, hh-rlhf, preference, ultrafeedback, sft, "
            "prompts, dialogue",
        ),
        (
            ["{notes}", "--project", "1"],
            "cannot read 'notes.md': use a file ending in .jsonl, .ndjson, .csv, .parquet, .txt",
        ),
    ],
)
def test_bad_import_input_is_one_error_line_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    prefs = write_jsonl(tmp_path / "prefs.jsonl", PREFS)
    notes = tmp_path / "notes.md"
    notes.write_text("# notes\n")
    filled = [arg.format(prefs=prefs, notes=notes) for arg in args]
    result = run("import", *filled)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == f"error: {message}"
    assert counts() == NOTHING


def test_a_deactivated_default_admin_is_not_used(tmp_path: Path) -> None:
    with session_factory(get_engine())() as db:
        ada = users.get_user_by_username(db, "ada")
        ada.is_active = False
        db.commit()
    file = write_jsonl(tmp_path / "prefs.jsonl", PREFS)
    result = run("import", str(file), "--project", "1")
    assert (result.exit_code, result.stderr) == (
        1,
        "error: there is no active admin; name a researcher or admin with --as\n",
    )
    assert counts() == NOTHING


# --- export -----------------------------------------------------------------------------------


def imported(tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "prefs.jsonl", PREFS)
    assert run("import", str(file), "--project", "1", "--on-error", "skip").exit_code == 0


def test_export_snapshot_list_and_show(tmp_path: Path, data_dir: Path) -> None:
    imported(tmp_path)
    result = run(
        "export", "snapshot", "--project", "1", "--kind", "preference", "--name", "Prefs v1",
        "--test-fraction", "0", "--as", "rex",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = data_dir / "snapshots" / "1-prefs-v1"
    train = (folder / "train.jsonl").read_bytes()
    digest = hashlib.sha256(train).hexdigest()
    assert result.stdout == (
        "snapshot 1 (preference): Prefs v1\n"
        f"folder: {folder}\n"
        "rows: 2 train, 0 test\n"
        f"content hash: {digest}\n"
    )
    assert result.stderr == "rows written\n"
    rows = [json.loads(line) for line in train.decode().splitlines()]
    assert [(row["prompt"], row["chosen"], row["rejected"]) for row in rows] == [
        (
            [{"role": "user", "content": "Name a colour."}],
            [{"role": "assistant", "content": "Blue."}],
            [{"role": "assistant", "content": "Seven."}],
        ),
        (
            [{"role": "user", "content": "Name a fruit."}],
            [{"role": "assistant", "content": "A pear."}],
            [{"role": "assistant", "content": "A chair."}],
        ),
    ]

    listed = run("export", "list", "--project", "1")
    with session_factory(get_engine())() as db:
        created = db.scalars(select(Snapshot.created_at)).one()
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == [
        "   id  kind          train     test  hash          created (UTC)     name",
        f"    1  preference        2        0  {digest[:12]}  {created:%Y-%m-%d %H:%M}  Prefs v1",
    ]

    shown = run("export", "show", "1", "--rows", "1")
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    assert lines[:8] == [
        "snapshot 1 (preference): Prefs v1",
        "project: 1",
        f"folder: {folder}",
        "rows: 2 train, 0 test",
        f"content hash: {digest}",
        f"created: {created:%Y-%m-%d %H:%M} UTC by rex",
        'filters: {"ai_weight": 1, "human_weight": 1, "label_sources": "human", "margin": "none", '
        '"seed": 0, "source": "pairs", "sources_in_words": "People\'s labels only (labelers\' '
        'and imported); no AI labels", "test_fraction": 0.0}',
        "first 1 train rows:",
    ]
    assert [json.loads(line) for line in lines[8:]] == rows[:1]


def test_export_snapshot_with_filters(tmp_path: Path) -> None:
    imported(tmp_path)
    # Imported comparisons have no labeler: a labeler filter selects none of them.
    result = run(
        "export", "snapshot", "--project", "1", "--kind", "preference", "--name", "Lena only",
        "--labeler", "lena", "--since", "2020-01-01", "--until", "2100-01-01T00:00:00+02:00",
        "--queue", "1",
    )  # fmt: skip
    assert (result.exit_code, result.stderr) == (1, "error: no queue in project 1 with id 1\n")
    result = run(
        "export", "snapshot", "--project", "1", "--kind", "preference", "--name", "Lena only",
        "--labeler", "lena", "--since", "2020-01-01", "--until", "2100-01-01T00:00:00+02:00",
        "--guideline-version", "1", "--exclude-flagged", "--exclude-gold", "--seed", "7",
    )  # fmt: skip
    # An empty training set is refused with the reason, never written.
    assert (result.exit_code, result.stderr) == (
        1,
        "error: the snapshot would have no rows: project 1 has no compared pairs (labelers' or "
        "imported) that pass its filters (created_from, created_to, exclude_flagged, "
        "exclude_gold, guideline_version_ids, labeler_ids); nothing was written\n",
    )
    result = run(
        "export", "snapshot", "--project", "1", "--kind", "preference", "--name", "Dated",
        "--since", "2020-01-01", "--until", "2100-01-01T00:00:00+02:00", "--exclude-flagged",
        "--exclude-gold", "--seed", "7", "--margin", "score_gap",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = run("export", "show", "1", "--rows", "0")
    assert shown.stdout.splitlines()[6] == (
        'filters: {"ai_weight": 1, "created_from": "2020-01-01T00:00:00Z", '
        '"created_to": "2100-01-01T00:00:00+02:00", "exclude_flagged": true, '
        '"exclude_gold": true, "human_weight": 1, "label_sources": "human", '
        '"margin": "score_gap", "seed": 7, "source": "pairs", "sources_in_words": '
        '"People\'s labels only (labelers\' and imported); no AI labels", "test_fraction": 0.1}'
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "9", "--kind", "sft", "--name", "x"], "no project with id 9"),
        (
            ["--project", "1", "--kind", "sft", "--name", "x", "--min-agreement", "0.5"],
            "min_agreement does not apply here: demonstrations carry no flags and no agreement",
        ),
        (
            ["--project", "1", "--kind", "sft", "--name", "x", "--source", "pairs"],
            "source applies to preference snapshots only",
        ),
        (
            ["--project", "1", "--kind", "sft", "--name", "x", "--guideline-version", "2"],
            "project 1 has no guideline version 2",
        ),
        (
            ["--project", "1", "--kind", "sft", "--name", "x", "--labeler", "ghost"],
            "no user named 'ghost'",
        ),
        (
            ["--project", "1", "--kind", "sft", "--name", "x", "--since", "last week"],
            "--since 'last week' is not an ISO 8601 date or time (e.g. 2024-05-01)",
        ),
        (
            [*SFT, "--since", "2024-02-01", "--until", "2024-01-01"],
            "created_from must be before created_to",
        ),
        (
            ["--project", "1", "--kind", "sft", "--name", "x", "--test-fraction", "1.5"],
            "test_fraction: Input should be less than or equal to 1",
        ),
        (["--project", "1", "--kind", "sft", "--name", " "], "name: a snapshot needs a name"),
        (
            ["--project", "1", "--kind", "sft", "--name", "x", "--as", "lena"],
            "lena is a labeler; this needs a researcher or admin",
        ),
    ],
)
def test_bad_snapshot_input_is_one_error_line_and_changes_nothing(
    data_dir: Path, args: list[str], message: str
) -> None:
    result = run("export", "snapshot", *args)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"error: {message}\n")
    assert counts() == NOTHING
    assert not (data_dir / "snapshots").exists() or not any((data_dir / "snapshots").iterdir())


def test_export_judgements_writes_one_file(tmp_path: Path, data_dir: Path) -> None:
    imported(tmp_path)
    out = tmp_path / "raw.jsonl"
    result = run("export", "judgements", "--project", "1", "--format", "raw", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["prompt"][0]["content"], row["source"]) for row in rows] == [
        ("Name a colour.", "import"),
        ("Name a fruit.", "import"),
    ]
    assert [[item["rank"] for item in row["items"]] for row in rows] == [[1, 2], [1, 2]]
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    export = data_dir / "exports" / f"project-1-raw-{digest[:16]}"
    assert result.stdout == (
        f"wrote 2 raw rows to {out}\nexport: {export}\ncontent hash: {digest}\n"
    )
    # Written once: the same --out again is refused, and the file is left as it was.
    again = run("export", "judgements", "--project", "1", "--format", "raw", "--out", str(out))
    assert (again.exit_code, again.stderr) == (
        1,
        f"error: {out} already exists; choose another --out\n",
    )
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest

    parquet = tmp_path / "kto.parquet"
    result = run("export", "judgements", "--project", "1", "--format", "kto", "--out", str(parquet))
    assert result.exit_code == 0, result.output
    # Imported preference rows carry ranks but no scores or flags: no KTO label either way.
    assert result.stdout.startswith(f"wrote 0 kto rows to {parquet}\n")
    assert parquet.read_bytes()[:4] == b"PAR1"


def test_bad_judgement_exports_are_refused(tmp_path: Path) -> None:
    result = run("export", "judgements", "--project", "1", "--format", "raw", "--out", "x.csv")
    assert (result.exit_code, result.stderr) == (
        1,
        "error: --out must end in .jsonl or .parquet, not 'x.csv'\n",
    )
    missing = tmp_path / "nowhere" / "x.jsonl"
    result = run("export", "judgements", "--project", "1", "--format", "raw", "--out", str(missing))
    assert (result.exit_code, result.stderr) == (1, f"error: there is no folder {missing.parent}\n")
    result = run(
        "export", "judgements", "--project", "1", "--format", "raw", "--out",
        str(tmp_path / "y.jsonl"), "--min-agreement", "2",
    )  # fmt: skip
    assert (result.exit_code, result.stderr) == (
        1,
        "error: min_agreement: Input should be less than or equal to 1\n",
    )
    assert not (tmp_path / "y.jsonl").exists()


def test_list_and_show_refuse_what_is_not_there() -> None:
    assert run("export", "list", "--project", "1").stdout == "project 1 has no snapshots\n"
    result = run("export", "list", "--project", "5")
    assert (result.exit_code, result.stderr) == (1, "error: no project with id 5\n")
    result = run("export", "show", "4")
    assert (result.exit_code, result.stderr) == (1, "error: no snapshot with id 4\n")

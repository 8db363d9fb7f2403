"""Hub models download into the data folder's model cache, once, with progress, against a local
hub endpoint (tests/worker/fake_hub.py) serving the tiny model; and the runner downloads a run's
hub-named models before its job starts, recording how far each got on the run."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, session_factory
from app.models import Model, ModelRole, Run, RunStatus
from app.settings import Settings
from tests.factories import make_project
from tests.training_factories import make_run, make_snapshot
from tests.worker.fake_hub import COMMIT, FakeHub, serve_hub
from worker.hub import DownloadProgress, DownloadStopped, HubDownloadError, download_model
from worker.jobs.context import JobContext, JobResult
from worker.runner import execute_run

# A port nothing listens on (discard): the hub cannot be reached there.
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def hub(tiny: Path, tmp_path: Path) -> Iterator[FakeHub]:
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with serve_hub({"smiley/tiny": tiny, "smiley/pickled": pickled}) as served:
        yield served


def file_sizes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in folder.iterdir()}


def test_a_hub_model_downloads_once_with_its_progress(
    hub: FakeHub, tiny: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    seen: list[DownloadProgress] = []
    folder = download_model("smiley/tiny", cache, on_progress=seen.append, endpoint=hub.url)

    assert folder == cache / "models--smiley--tiny" / "snapshots" / COMMIT
    assert file_sizes(folder) == file_sizes(tiny)
    assert (folder / "model.safetensors").read_bytes() == (tiny / "model.safetensors").read_bytes()
    files, size = len(file_sizes(tiny)), sum(file_sizes(tiny).values())
    assert seen[-1] == DownloadProgress("smiley/tiny", files, files, size, size, "done", COMMIT)
    assert set(hub.downloads.values()) == {1}

    # A second run finds every file in the cache: nothing is fetched again.
    again: list[DownloadProgress] = []
    assert (
        download_model("smiley/tiny", cache, on_progress=again.append, endpoint=hub.url) == folder
    )
    assert again[-1] == DownloadProgress("smiley/tiny", files, files, 0, 0, "cached", COMMIT)
    assert set(hub.downloads.values()) == {1}
    # And with the hub out of reach, the cached snapshot still serves.
    assert download_model("smiley/tiny", cache, endpoint=UNREACHABLE) == folder


def test_concurrent_downloads_of_one_model_fetch_each_file_once(
    hub: FakeHub, tiny: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    # Every file GET waits, so both downloads are under way at once.
    hub.delay = 0.3
    folders: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: folders.append(download_model("smiley/tiny", cache, endpoint=hub.url))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(folders) == 2 and folders[0] == folders[1]
    assert file_sizes(folders[0]) == file_sizes(tiny)
    assert sorted(hub.downloads) == sorted(f"smiley/tiny/{name}" for name in file_sizes(tiny))
    assert set(hub.downloads.values()) == {1}
    assert not list(cache.rglob("*.incomplete"))


def test_what_cannot_be_downloaded_says_why(hub: FakeHub, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(HubDownloadError) as missing:
        download_model("smiley/nothing", cache, endpoint=hub.url)
    assert str(missing.value) == (
        f"the hub at {hub.url} has no model 'smiley/nothing' this worker may read (a private "
        "or gated model needs HF_TOKEN set on the workers)"
    )
    with pytest.raises(HubDownloadError) as unreachable:
        download_model("smiley/tiny", cache, endpoint=UNREACHABLE)
    assert str(unreachable.value).startswith(
        f"could not reach the hub at {UNREACHABLE} to download 'smiley/tiny', and the model "
        f"cache ({cache}) does not hold it: ConnectError: "
    )
    with pytest.raises(HubDownloadError) as pickled:
        download_model("smiley/pickled", cache, endpoint=hub.url)
    assert str(pickled.value) == (
        f"'smiley/pickled' on the hub at {hub.url} has no safetensors weights (pickled .bin "
        "checkpoints are not loaded)"
    )
    # Only what a model folder needs was fetched: never the pickle.
    assert "smiley/pickled/pytorch_model.bin" not in hub.downloads


def test_a_cancel_stops_a_download(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(DownloadStopped):
        download_model(
            "smiley/tiny", tmp_path / "cache", endpoint=hub.url, should_stop=lambda: True
        )


@pytest.fixture
def engine(own_database: str) -> Iterator[Engine]:
    engine = make_engine(own_database)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def settings(tmp_path: Path, own_database: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=own_database,
        secret_key="test-secret-key-" + "x" * 32,
        run_heartbeat_seconds=0.05,
        allow_hub_models=True,
    )


def hub_run(sessions: sessionmaker[Session], settings: Settings, hub_name: str) -> int:
    with sessions() as db:
        project = make_project(db)
        base = Model(name="hub-base", role=ModelRole.policy, hub_name=hub_name)
        db.add(base)
        db.flush()
        return make_run(db, project, base, make_snapshot(db, settings, project)).id


def test_the_runner_downloads_a_hub_base_model_before_the_job(
    hub: FakeHub, tiny: Path, sessions: sessionmaker[Session], settings: Settings
) -> None:
    run_id = hub_run(sessions, settings, "smiley/tiny")
    seen: list[Path] = []

    def job(ctx: JobContext) -> JobResult:
        seen.append(ctx.base_model_path)
        shutil.copytree(ctx.base_model_path, ctx.output_dir)
        return JobResult({}, ctx.output_dir, "policy")

    outcome = execute_run(
        run_id, "w@host", settings=settings, sessions=sessions, jobs={"sft": job},
        device="cpu", hub_endpoint=hub.url,
    )  # fmt: skip

    assert outcome == "succeeded"
    assert seen == [
        settings.data_dir / "models" / "hub" / "models--smiley--tiny" / "snapshots" / COMMIT
    ]
    files, size = len(file_sizes(tiny)), sum(file_sizes(tiny).values())
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        assert run.artifacts["downloads"] == {
            "smiley/tiny": {
                "model": "smiley/tiny",
                "files_done": files,
                "files_total": files,
                "bytes_done": size,
                "bytes_total": size,
                "state": "done",
                "commit": COMMIT,
            }
        }


def test_a_run_whose_hub_model_is_missing_fails_saying_so(
    hub: FakeHub, sessions: sessionmaker[Session], settings: Settings
) -> None:
    run_id = hub_run(sessions, settings, "smiley/nothing")

    def job(ctx: JobContext) -> JobResult:
        raise AssertionError("the job must not start without its model")

    outcome = execute_run(
        run_id, "w@host", settings=settings, sessions=sessions, jobs={"sft": job},
        device="cpu", hub_endpoint=hub.url,
    )  # fmt: skip

    assert outcome == "failed"
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None and run.status == RunStatus.failed
        assert run.error == (
            f"HubDownloadError: the hub at {hub.url} has no model 'smiley/nothing' this worker "
            "may read (a private or gated model needs HF_TOKEN set on the workers)"
        )


def test_a_run_cancelled_while_its_model_downloads_ends_cancelled(
    hub: FakeHub, sessions: sessionmaker[Session], settings: Settings
) -> None:
    run_id = hub_run(sessions, settings, "smiley/tiny")
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        run.cancel_requested = True
        db.commit()
    # Each file takes far longer than a heartbeat (0.05 s), which brings the cancel to the
    # download before its first byte.
    hub.delay = 1.0

    def job(ctx: JobContext) -> JobResult:
        raise AssertionError("a cancelled run's job must not start")

    outcome = execute_run(
        run_id, "w@host", settings=settings, sessions=sessions, jobs={"sft": job},
        device="cpu", hub_endpoint=hub.url,
    )  # fmt: skip

    assert outcome == "cancelled"
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        assert (run.status, run.output_model_id, run.error) == (RunStatus.cancelled, None, None)

"""Running one training run on this worker: claim, heartbeat, the job module, the outcome.

The Celery task hands over only the run id. Everything else comes from the row, claimed first;
a second delivery of the same message (Redis redelivers unacknowledged messages after its
visibility timeout) finds the row claimed or finished and does nothing.
"""

from __future__ import annotations

import importlib
import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.db import get_engine, session_factory
from app.models import Model, ModelRole, Run, RunKind
from app.services import registry, runs
from app.settings import Settings, get_settings
from worker.hub import DownloadProgress, DownloadStopped, hub_cache
from worker.jobs.context import JobContext, JobResult

log = logging.getLogger(__name__)

JobRunner = Callable[[JobContext], JobResult]
TRAINING_LIBRARIES = {"torch", "transformers", "trl", "datasets", "accelerate", "peft"}


@dataclass(frozen=True)
class RunPaths:
    base_model: Path
    reward_model: Path | None
    snapshot: Path | None
    output: Path
    checkpoints: Path
    inputs: Path
    compare_model: Path | None
    # The models named by hub name, to download before the job starts: field -> owner/name.
    downloads: dict[str, str] = field(default_factory=dict)


def _registered(settings: Settings, model: Model) -> tuple[Path, str | None]:
    """A registered model's folder, or for one registered by hub name where it will be once
    downloaded (its hub name beside it)."""
    if model.path is None and model.hub_name:
        return hub_cache(settings.data_dir) / model.hub_name, model.hub_name
    return registry.model_folder(settings, model.path or ""), None


def run_paths(db: Session, settings: Settings, run: Run) -> RunPaths:
    downloads: dict[str, str] = {}
    if run.base_model_id is not None:
        base_path, hub_name = _registered(settings, registry.get_model(db, run.base_model_id))
    elif registry.names_hub_model(settings, run.base_model_ref or ""):
        hub_name = run.base_model_ref
        base_path = hub_cache(settings.data_dir) / (hub_name or "")
    else:
        base_path, hub_name = registry.model_folder(settings, run.base_model_ref or ""), None
    if hub_name is not None:
        downloads["base_model"] = hub_name
    reward = None
    if run.reward_model_id is not None:
        reward, hub_name = _registered(settings, registry.get_model(db, run.reward_model_id))
        if hub_name is not None:
            downloads["reward_model"] = hub_name
    snapshot = None
    if run.snapshot_id is not None:
        from app.services.snapshots import get_snapshot

        snapshot = settings.data_dir / get_snapshot(db, run.snapshot_id).path
        if not snapshot.is_dir():
            # At scale the data folder must be shared with the workers; say so plainly.
            raise FileNotFoundError(
                f"snapshot {run.snapshot_id}'s folder {snapshot} is not on this worker: "
                "web app and workers must share the data folder"
            )
    compare = None
    compare_id = run.hyperparameters.get("compare_model_id")
    if run.kind == RunKind.generate and compare_id is not None:
        compare, hub_name = _registered(settings, registry.get_model(db, int(compare_id)))
        if hub_name is not None:
            downloads["compare_model"] = hub_name
    folder = settings.data_dir / "runs" / str(run.id)
    return RunPaths(
        base_path,
        reward,
        snapshot,
        folder / "model",
        folder / "checkpoints",
        folder / "input",
        compare,
        downloads,
    )


def fetch_hub_models(
    paths: RunPaths,
    settings: Settings,
    report: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
    endpoint: str | None = None,
) -> RunPaths:
    """The run's paths with every hub-named model downloaded into the model cache (or found
    there) and its snapshot folder in place of the name. Before the job and before a process
    group is launched: the ranks find the folders there. `report` gets every model's progress
    so far, keyed by hub name (the run page's "Model download" line)."""
    from worker.hub import download_model

    progress: dict[str, dict[str, Any]] = {}

    def downloading(update: DownloadProgress) -> None:
        progress[update.model] = update.as_dict()
        report(dict(progress))

    folders: dict[str, Path] = {}
    for repo_id in paths.downloads.values():
        if repo_id not in folders:
            folders[repo_id] = download_model(
                repo_id,
                hub_cache(settings.data_dir),
                on_progress=downloading,
                should_stop=should_stop,
                endpoint=endpoint,
            )
    return replace(paths, **{name: folders[repo_id] for name, repo_id in paths.downloads.items()})


def job_module(kind: str) -> ModuleType:
    # Imported here, not at the top: torch and TRL load only in a process that runs a job.
    return importlib.import_module(f"worker.jobs.{kind}")


def pick_job(
    kind: str, hyperparameters: Mapping[str, Any], jobs: Mapping[str, JobRunner] | None
) -> JobRunner:
    """The job module's `run` in this process, or with `processes` above 1 a process group
    that runs it in every rank (worker/launch.py)."""
    if int(hyperparameters.get("processes") or 1) > 1:
        from worker.launch import run_group

        return run_group
    return jobs[kind] if jobs is not None else job_module(kind).run


def describe_failure(error: BaseException) -> str:
    """The run's error line; a web-only install's worker says how to get the training stack."""
    missing = getattr(error, "name", None)
    if (
        isinstance(error, ModuleNotFoundError)
        and missing
        and missing.split(".")[0] in TRAINING_LIBRARIES
    ):
        return (
            f"this worker cannot train: {missing} is not installed. Install Smiley with the "
            "`train` extra on GPU workers (pip install -e '.[train]'), then resume the run"
        )
    return f"{type(error).__name__}: {error}"


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class RunHeartbeat:
    """Beats for the run from a thread of its own, so a long step never looks like a dead
    worker; turns a cancel request, or the loss of the run, into `stop`."""

    def __init__(self, sessions: sessionmaker[Session], run_id: int, worker: str, every: float):
        self.stop = threading.Event()
        self.lost = threading.Event()
        self._done = threading.Event()
        self._sessions, self._run_id, self._worker, self._every = sessions, run_id, worker, every
        self._thread = threading.Thread(target=self._loop, name=f"run-{run_id}-beat", daemon=True)

    def __enter__(self) -> RunHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._done.wait(self._every):
            try:
                with self._sessions() as db:
                    beat = runs.beat_run(db, self._run_id, self._worker)
            except Exception:
                # A database blip must not end the run; the next beat tries again.
                log.exception("run %s: heartbeat failed", self._run_id)
                continue
            if beat.cancel_requested:
                self.stop.set()
            if not beat.owned:
                self.lost.set()
                self.stop.set()


def execute_run(
    run_id: int,
    worker_name: str,
    *,
    settings: Settings | None = None,
    sessions: sessionmaker[Session] | None = None,
    jobs: Mapping[str, JobRunner] | None = None,
    device: str | None = None,
    hub_endpoint: str | None = None,
) -> str:
    """Claims and runs `run_id`; returns what happened ("skipped", "succeeded", "cancelled",
    "failed", "lost"). Tests pass their own `sessions` and `jobs` (by default the process's
    engine and the modules worker.jobs.<kind>), and `hub_endpoint` (by default
    huggingface_hub's, HF_ENDPOINT)."""
    settings = settings or get_settings()
    sessions = sessions or session_factory(get_engine())
    with sessions() as db:
        run = runs.claim_run(db, run_id, worker_name)
        if run is None:
            log.info(
                "run %s: not claimable (claimed elsewhere, finished or out of attempts)", run_id
            )
            return "skipped"
        kind = run.kind.value
        hyperparameters = dict(run.hyperparameters)
        reported_through = runs.last_metric_step(db, run_id)
        try:
            paths = run_paths(db, settings, run)
        except Exception as error:
            runs.fail_run(
                db, run_id, worker_name, error=str(error), traceback=traceback.format_exc()
            )
            return "failed"

    def report(step: int, values: dict[str, float], progress: float) -> None:
        with sessions() as db:
            if not runs.record_metrics(db, run_id, worker_name, step, values, progress):
                beat.lost.set()
                beat.stop.set()

    def report_downloads(progress: dict[str, Any]) -> None:
        with sessions() as db:
            if not runs.record_downloads(db, run_id, worker_name, progress):
                beat.lost.set()
                beat.stop.set()

    with RunHeartbeat(sessions, run_id, worker_name, settings.run_heartbeat_seconds) as beat:
        try:
            if paths.downloads:
                paths = fetch_hub_models(
                    paths, settings, report_downloads, beat.stop.is_set, hub_endpoint
                )
            job = pick_job(kind, hyperparameters, jobs)
            paths.checkpoints.mkdir(parents=True, exist_ok=True)
            ctx = JobContext(
                run_id=run_id,
                kind=kind,
                hyperparameters=hyperparameters,
                base_model_path=paths.base_model,
                reward_model_path=paths.reward_model,
                snapshot_path=paths.snapshot,
                output_dir=paths.output,
                checkpoint_dir=paths.checkpoints,
                resume_from=resume_point(paths.checkpoints),
                device=device or pick_device(),
                report=report,
                should_stop=beat.stop.is_set,
                log=lambda line: log.info("run %s: %s", run_id, line),
                input_dir=paths.inputs if paths.inputs.is_dir() else None,
                compare_model_path=paths.compare_model,
                reported_through=reported_through,
            )
            result = job(ctx)
        except DownloadStopped:
            # Cancelled while its model downloaded: nothing trained, nothing to keep but the
            # files already in the model cache.
            result = JobResult(metrics={}, model_dir=paths.output, role=None, stopped=True)
        except Exception as error:
            with sessions() as db:
                runs.fail_run(
                    db,
                    run_id,
                    worker_name,
                    error=describe_failure(error),
                    # A process group's failure carries the failing rank's own traceback.
                    traceback=getattr(error, "rank_traceback", None) or traceback.format_exc(),
                )
            log.exception("run %s failed", run_id)
            return "lost" if beat.lost.is_set() else "failed"
    if beat.lost.is_set():
        log.warning("run %s: no longer this worker's; its result is dropped", run_id)
        return "lost"
    with sessions() as db:
        done = runs.complete_run(
            db,
            settings,
            run_id,
            worker_name,
            metrics=result.metrics,
            model_dir=result.model_dir,
            role=ModelRole(result.role) if result.role is not None else None,
            settings_used=result.settings,
            stopped=result.stopped,
        )
    if done is None:
        return "lost"
    return done.status.value


def resume_point(checkpoints: Path) -> Path | None:
    # Imported here: the callbacks module loads transformers.
    from worker.training.callbacks import latest_complete_checkpoint

    return latest_complete_checkpoint(checkpoints)

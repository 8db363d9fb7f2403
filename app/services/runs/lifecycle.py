"""A run's life on a worker, with the database as the source of truth.

Celery delivers at most once by default, a killed worker's message is acknowledged anyway, and
Redis redelivers anything unacknowledged after its visibility timeout, restarting long jobs. So
the broker's word is never taken: a worker claims the row in one conditional UPDATE (only one
wins, and a run already claimed or finished is left alone), proves it is alive with a heartbeat,
and every later write names the worker, so a worker that lost its run cannot overwrite the state
that replaced it. A reaper marks runs whose heartbeat went stale; they resume from their last
complete checkpoint, within a bounded number of attempts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.models import ModelRole, Run, RunKind, RunMetric, RunStatus, User
from app.models.base import utcnow
from app.services import critique, generation, registry
from app.services.agreement.service import agreement_report
from app.services.judging.recording import record_judgements
from app.services.runs.queries import get_run
from app.services.runs.queueing import TRAIN_TASK, BrokerUnreachable, connected_sender
from app.settings import Settings

FINISHED = (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)
# A traceback longer than this keeps its end, where the error is.
MAX_TRACEBACK = 20_000


@dataclass(frozen=True)
class Beat:
    # False once the run is no longer this worker's (reaped, or claimed again elsewhere).
    owned: bool
    cancel_requested: bool


def claim_run(db: Session, run_id: int, worker_name: str) -> Run | None:
    """queued -> running for this worker, or None when another worker has it, it finished, or
    it used all its attempts. One UPDATE, so two deliveries of one message cannot both win."""
    now = utcnow()
    claimed = db.execute(
        update(Run)
        .where(
            Run.id == run_id,
            Run.status == RunStatus.queued,
            Run.attempts < Run.max_attempts,
        )
        .values(
            status=RunStatus.running,
            worker_name=worker_name,
            attempts=Run.attempts + 1,
            claimed_at=now,
            heartbeat_at=now,
            started_at=func.coalesce(Run.started_at, now),
            finished_at=None,
        )
    ).rowcount
    db.commit()
    if claimed != 1:
        return None
    run = db.get(Run, run_id)
    assert run is not None
    db.refresh(run)
    return run


def _owned(run_id: int, worker_name: str) -> Any:
    return (Run.id == run_id) & (Run.status == RunStatus.running) & (Run.worker_name == worker_name)


def beat_run(db: Session, run_id: int, worker_name: str) -> Beat:
    touched = db.execute(
        update(Run).where(_owned(run_id, worker_name)).values(heartbeat_at=utcnow())
    ).rowcount
    db.commit()
    cancel = bool(db.scalar(select(Run.cancel_requested).where(Run.id == run_id)))
    db.rollback()
    return Beat(owned=touched == 1, cancel_requested=cancel)


def record_metrics(
    db: Session,
    run_id: int,
    worker_name: str,
    step: int,
    values: dict[str, float],
    progress: float,
) -> bool:
    """One logged row, and the run's latest values and progress; False (and nothing written)
    when the run is no longer this worker's."""
    clean = {key: float(value) for key, value in values.items()}
    run = db.scalar(select(Run).where(_owned(run_id, worker_name)))
    if run is None:
        db.rollback()
        return False
    db.add(RunMetric(run_id=run_id, step=max(step, 0), values=clean))
    run.progress = min(max(progress, 0.0), 1.0)
    # A new dict, so the JSON column sees the change.
    run.metrics = {**run.metrics, "train": {**run.metrics.get("train", {}), **clean, "step": step}}
    run.heartbeat_at = utcnow()
    db.commit()
    return True


def record_downloads(db: Session, run_id: int, worker_name: str, progress: dict[str, Any]) -> bool:
    """How far the run's hub models have downloaded (worker/hub.py), for the run page; False
    (and nothing written) when the run is no longer this worker's."""
    run = db.scalar(select(Run).where(_owned(run_id, worker_name)))
    if run is None:
        db.rollback()
        return False
    # A new dict, so the JSON column sees the change.
    run.artifacts = {**run.artifacts, "downloads": progress}
    run.heartbeat_at = utcnow()
    db.commit()
    return True


def complete_run(
    db: Session,
    settings: Settings,
    run_id: int,
    worker_name: str,
    *,
    metrics: dict[str, float],
    model_dir: Path | None,
    role: ModelRole | None,
    settings_used: dict[str, Any],
    stopped: bool,
) -> Run | None:
    """A job returned: registered as a model when it ran to the end, or cancelled (keeping its
    checkpoints) when it stopped because a cancel was asked for. A generation or score run
    registers no model: its samples or scores are stored instead (`model_dir` is its output
    folder), in the same transaction as the run's success."""
    run = db.scalar(select(Run).where(_owned(run_id, worker_name)))
    if run is None:
        db.rollback()
        return None
    now = utcnow()
    run.artifacts = {**run.artifacts, "settings": settings_used}
    evaluation = {key: float(v) for key, v in metrics.items()}
    if run.kind == RunKind.reward:
        # The labelers' own pairwise agreement is the ceiling a reward model's held-out accuracy
        # can be read against (InstructGPT: ~73%); stored beside it.
        ceiling = agreement_report(db, run.project_id).overall.pairwise_agreement
        if ceiling is not None:
            evaluation["labeler_agreement"] = ceiling
    run.metrics = {**run.metrics, "eval": evaluation}
    run.finished_at = now
    if stopped:
        run.status = RunStatus.cancelled
    elif run.kind in generation.SAMPLING_KINDS or run.kind in (RunKind.critique, RunKind.judge):
        assert model_dir is not None
        if run.kind == RunKind.judge:
            recorded = record_judgements(db, run, model_dir)
        elif run.kind == RunKind.critique:
            recorded = critique.record_output(db, run, model_dir)
        else:
            recorded = generation.record_output(db, run, model_dir)
        run.metrics = {**run.metrics, "eval": {**evaluation, **recorded}}
        run.artifacts = {**run.artifacts, "output_dir": _stored_path(settings, model_dir)}
        run.status = RunStatus.succeeded
        run.progress = 1.0
    else:
        assert model_dir is not None and role is not None
        stored = _stored_path(settings, model_dir)
        model = registry.register_run_output(db, run, stored, role)
        run.output_model_id = model.id
        run.artifacts = {**run.artifacts, "model_dir": stored}
        run.status = RunStatus.succeeded
        run.progress = 1.0
    db.commit()
    return run


def fail_run(
    db: Session, run_id: int, worker_name: str, *, error: str, traceback: str | None
) -> bool:
    """The job raised. The row says what and where, and can be resumed if attempts remain."""
    failed = db.execute(
        update(Run)
        .where(_owned(run_id, worker_name))
        .values(
            status=RunStatus.failed,
            error=error[:2000] or "the job failed without a message",
            traceback=traceback[-MAX_TRACEBACK:] if traceback else None,
            finished_at=utcnow(),
        )
    ).rowcount
    db.commit()
    return failed == 1


def reap_stale_runs(
    db: Session, *, stale_after: timedelta, now: datetime | None = None
) -> list[int]:
    """Marks running runs whose worker stopped beating as failed ("worker lost"), resumable from
    their last complete checkpoint. Returns their ids."""
    now = now or utcnow()
    cutoff = now - stale_after
    stale = list(
        db.scalars(
            select(Run)
            .where(Run.status == RunStatus.running, Run.heartbeat_at < cutoff)
            .order_by(Run.id)
            .with_for_update(skip_locked=True)
        )
    )
    for run in stale:
        seen = run.heartbeat_at.isoformat(timespec="seconds") if run.heartbeat_at else "never"
        run.status = RunStatus.failed
        run.error = (
            f"worker lost: {run.worker_name} sent no heartbeat since {seen}; resume the run to "
            "continue from its last complete checkpoint"
        )
        run.traceback = None
        run.finished_at = now
        run.artifacts = {**run.artifacts, "worker_lost": True}
    db.commit()
    return [run.id for run in stale]


def request_cancel(db: Session, run_id: int, *, acting: User) -> Run:
    """A queued run is cancelled at once; a running one stops at its worker's next step."""
    run = get_run(db, run_id)
    if run.status in FINISHED:
        raise Conflict(f"run {run.id} already {run.status.value}")
    if run.status == RunStatus.queued:
        run.status = RunStatus.cancelled
        run.finished_at = utcnow()
    else:
        run.cancel_requested = True
    run.artifacts = {**run.artifacts, "cancelled_by_id": acting.id}
    db.commit()
    return run


def resume_run(db: Session, settings: Settings, run_id: int, *, acting: User) -> Run:
    """A failed or cancelled run queued again; its worker resumes from the newest checkpoint
    that carries a completion marker. Raises BrokerUnreachable (503), the run unchanged, when
    the job queue cannot be reached."""
    run = get_run(db, run_id)
    if run.status not in (RunStatus.failed, RunStatus.cancelled):
        raise Conflict(f"run {run.id} is {run.status.value}; only failed or cancelled runs resume")
    if run.attempts >= run.max_attempts:
        raise Conflict(f"run {run.id} used all its {run.max_attempts} attempts")
    # The broker first, so a resume it cannot take changes nothing.
    with connected_sender(settings) as send:
        before = {
            "status": run.status,
            "cancel_requested": run.cancel_requested,
            "error": run.error,
            "traceback": run.traceback,
            "finished_at": run.finished_at,
            "artifacts": run.artifacts,
        }
        history = [*run.artifacts.get("previous_errors", [])]
        if run.error:
            history.append(run.error)
        run.status = RunStatus.queued
        run.cancel_requested = False
        run.error = None
        run.traceback = None
        run.finished_at = None
        run.artifacts = {
            **run.artifacts,
            "previous_errors": history,
            "resumed_by_id": acting.id,
        }
        db.commit()
        try:
            send(TRAIN_TASK, run.id, None)
        except BrokerUnreachable:
            # It went away between the connect and the send: the run is put back as it was
            # (a queued run no worker hears of would wait for ever). A worker cannot have
            # claimed it meanwhile: no message reached one.
            for name, value in before.items():
                setattr(run, name, value)
            db.commit()
            raise
    return run


def _stored_path(settings: Settings, folder: Path) -> str:
    """Relative to the data folder when inside it, so the data folder can move."""
    try:
        return str(folder.resolve().relative_to(settings.data_dir))
    except ValueError:
        return str(folder.resolve())

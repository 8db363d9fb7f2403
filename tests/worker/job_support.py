"""A fake job context for the job modules' tests: collects reports, cancels on cue."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.jobs.context import JobContext


@dataclass
class Recorder:
    """`report` and `should_stop` for a JobContext; `stop_after` steps ends the run early."""

    stop_after: int | None = None
    reports: list[tuple[int, dict[str, float], float]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    polls: int = 0

    def report(self, step: int, values: dict[str, float], progress: float) -> None:
        self.reports.append((step, values, progress))

    def should_stop(self) -> bool:
        self.polls += 1
        return self.stop_after is not None and self.polls >= self.stop_after

    def log(self, line: str) -> None:
        self.lines.append(line)

    def series(self, name: str) -> list[tuple[int, float]]:
        """(step, value) of every report carrying `name`."""
        return [(step, values[name]) for step, values, _ in self.reports if name in values]


def make_context(
    root: Path,
    kind: str,
    hyperparameters: dict[str, Any],
    model: Path,
    snapshot: Path | None,
    recorder: Recorder,
    *,
    reward_model: Path | None = None,
    resume_from: Path | None = None,
) -> JobContext:
    return JobContext(
        run_id=1,
        kind=kind,
        hyperparameters=hyperparameters,
        base_model_path=model,
        reward_model_path=reward_model,
        snapshot_path=snapshot,
        output_dir=root / "model",
        checkpoint_dir=root / "checkpoints",
        resume_from=resume_from,
        device="cpu",
        report=recorder.report,
        should_stop=recorder.should_stop,
        log=recorder.log,
    )

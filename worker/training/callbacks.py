"""Live progress, cancel and complete checkpoints, as a TrainerCallback.

Each log the trainer writes (loss, learning_rate, TRL's rewards/accuracies, rewards/margins,
KL and mean reward...) goes to the job's `report` with tokens/s and, on CUDA, peak GPU memory
added. A cancel is polled at every step end; it stops training there and saves a checkpoint.
After each save the checkpoint folder gets a completion marker: a folder without one was cut off
mid-write (a killed worker) and is never resumed from.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

MARKER = "smiley-complete.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

Report = Callable[[int, dict[str, float], float], None]


class TrainingStopped(Exception):
    """Raised after the cancel checkpoint is complete, for trainers whose loop does not honour
    `should_training_stop` (the PPOTrainer in worker/training/ppo)."""


def latest_complete_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The highest-numbered checkpoint-N folder that carries the completion marker."""
    if not checkpoint_dir.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for child in checkpoint_dir.iterdir():
        match = CHECKPOINT.match(child.name)
        if match and child.is_dir() and (child / MARKER).is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def mark_complete(checkpoint: Path, step: int) -> None:
    """Written last, after every file of the checkpoint, so its presence means complete."""
    partial = checkpoint / f".{MARKER}.partial"
    partial.write_text(json.dumps({"step": step, "written_at": time.time()}) + "\n")
    partial.replace(checkpoint / MARKER)


class ProgressCallback(TrainerCallback):
    def __init__(
        self,
        report: Report,
        should_stop: Callable[[], bool],
        device: str,
        *,
        raise_when_stopped: bool = False,
        start_step: int = 0,
    ) -> None:
        self.report = report
        self.should_stop = should_stop
        self.device = device
        self.stopped = False
        self.raise_when_stopped = raise_when_stopped
        # A trainer whose loop always counts from 0 (PPO) continues a resumed run's numbering.
        self.start_step = start_step
        self._last_time = 0.0
        self._last_tokens: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.start_step:
            state.global_step += self.start_step
            state.max_steps += self.start_step
        self._last_time = time.perf_counter()
        self._last_tokens = None if state.global_step else 0.0
        if self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        # A cancel that comes with the last step lets the run finish: a checkpoint at max_steps
        # would leave a run to resume with nothing left to train, and the trainer, resuming mid
        # epoch, trains one step past max_steps. Not polled then, on every rank alike (a process
        # group's poll is a collective).
        if state.global_step >= state.max_steps:
            return control
        if self.should_stop():
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                mark_complete(folder, state.global_step)
        if self.stopped and self.raise_when_stopped:
            raise TrainingStopped(f"stopped at step {state.global_step}")

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        values = {
            name: float(value)
            for name, value in logs.items()
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        }
        now = time.perf_counter()
        tokens = values.get("num_tokens")
        if tokens is not None:
            if (
                self._last_tokens is not None
                and now > self._last_time
                and tokens >= self._last_tokens
            ):
                values["tokens_per_second"] = (tokens - self._last_tokens) / (now - self._last_time)
            self._last_tokens = tokens
            self._last_time = now
        if self.device == "cuda":
            import torch

            values["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        progress = min(state.global_step / state.max_steps, 1.0) if state.max_steps else 0.0
        self.report(state.global_step, values, progress)

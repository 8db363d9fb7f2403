"""One rank of a run's process group: `accelerate launch -m worker.launched <launch folder>`.

worker/launch.py starts the group and explains the files it shares with it. Each rank rebuilds
the job's context from launch/context.json and calls the same job module as a one-process run;
rank 0 alone reports metrics (to launch/metrics.jsonl) and writes the result. `should_stop` is
the group's: every rank polls it at the same step, and an all-reduce makes them agree, so all of
them stop at one step and save one checkpoint together.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

# Read first: if the launcher dies before this rank asks to die with it, the parent changes.
PARENT = os.getppid()


class GroupStop:
    """The group's `should_stop`: true on every rank once the runner wrote the stop file."""

    def __init__(self, stop_file: Path, device: str) -> None:
        self.stop_file, self.device, self.stopped = stop_file, device, False

    def __call__(self) -> bool:
        if self.stopped:
            return True
        asked = self.stop_file.exists()
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            import torch

            where = (
                torch.device("cuda", torch.cuda.current_device())
                if self.device == "cuda"
                else torch.device("cpu")
            )
            flag = torch.tensor([1 if asked else 0], device=where)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            asked = bool(flag.item())
        self.stopped = asked
        return asked


def write_atomically(path: Path, value: Any, *, exclusive: bool = False) -> bool:
    """`value` as JSON at `path`, whole or not at all; `exclusive`: only if nobody wrote it yet
    (the first failing rank speaks for the group)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(value) + "\n")
    if exclusive:
        try:
            os.link(partial, path)
        except FileExistsError:
            return False
        finally:
            partial.unlink()
        return True
    partial.replace(path)
    return True


def distributed_type() -> str | None:
    """What accelerate ran the job as (MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED), as the trainer's
    Accelerator saw it; None if the job made none."""
    from accelerate.state import AcceleratorState

    if not AcceleratorState._shared_state:
        return None
    return str(AcceleratorState().distributed_type.value)


def main(folder: Path) -> int:
    from worker.jobs.context import JobContext
    from worker.launch import (
        ERROR_FILE,
        METRICS_FILE,
        RESULT_FILE,
        SPEC_FILE,
        STOP_FILE,
        die_with_parent,
    )

    die_with_parent()
    if os.getppid() != PARENT:
        # The launcher is already gone: this rank would be an orphan.
        return 1
    rank = int(os.environ.get("RANK", "0"))
    spec = json.loads((folder / SPEC_FILE).read_text())
    paths = {
        name: None if spec[name] is None else Path(spec[name])
        for name in (
            "base_model_path",
            "reward_model_path",
            "snapshot_path",
            "output_dir",
            "checkpoint_dir",
            "resume_from",
            "input_dir",
            "compare_model_path",
        )
    }

    def report(step: int, values: dict[str, float], progress: float) -> None:
        if rank != 0:
            return
        with (folder / METRICS_FILE).open("a") as metrics:
            metrics.write(json.dumps([step, values, progress]) + "\n")

    def log(line: str) -> None:
        print(f"[rank {rank}] {line}", flush=True)

    ctx = JobContext(
        run_id=spec["run_id"],
        kind=spec["kind"],
        hyperparameters=spec["hyperparameters"],
        device=spec["device"],
        report=report,
        should_stop=GroupStop(folder / STOP_FILE, spec["device"]),
        log=log,
        **paths,  # type: ignore[arg-type]
    )
    try:
        job = importlib.import_module(f"worker.jobs.{ctx.kind}")
        result = job.run(ctx)
    except BaseException as error:
        from worker.runner import describe_failure

        failure = {
            "rank": rank,
            "error": describe_failure(error),
            "traceback": traceback.format_exc(),
        }
        write_atomically(folder / ERROR_FILE, failure, exclusive=True)
        raise
    if rank == 0:
        write_atomically(
            folder / RESULT_FILE,
            {
                "metrics": result.metrics,
                "model_dir": str(result.model_dir),
                "role": result.role,
                "settings": result.settings,
                "stopped": result.stopped,
                "distributed_type": distributed_type(),
            },
        )
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    code = main(Path(sys.argv[1]))
    # Done, and everything written (the result atomically): the interpreter's own teardown of
    # torch, gloo and datasets took 2-3 s a rank on a 2-core machine, and the run waited for it.
    # A failure raises instead, and exits the usual way with its traceback.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""A run's job as an `accelerate launch` process group, supervised by the runner.

With `processes` above 1 the runner (still the process that claimed the run, beats its heartbeat
and owns the database session) does not call the job module itself: it writes the group's
accelerate config and the job's context to the run's launch/ folder, starts `accelerate launch
-m worker.launched` in a session of its own, and waits. Every rank runs the same job module
(worker/launched.py); rank 0 speaks for the group:

- metrics: rank 0 appends each report to launch/metrics.jsonl; the runner forwards new lines to
  the run's metrics as they come (so the database stays the runner's alone), and a resumed
  attempt first forwards what a killed runner had not yet, up to its checkpoint;
- cancel or a lost run: the runner writes launch/stop; the ranks agree on it at the same step
  (an all-reduce), save a checkpoint and end;
- the result: rank 0 writes launch/result.json (or launch/error.json on a failure), which the
  runner reads back as the JobResult it completes the run with;
- no orphans: the launcher and every rank die with their parent (PR_SET_PDEATHSIG), so a
  SIGKILLed worker takes its group with it; any other way out of the runner ends the group
  (SIGTERM, then SIGKILL after a grace period).

The strategy (ddp, fsdp, deepspeed-zero3) is the run's `distributed` hyperparameter, or chosen by
the model's size; the run's settings record it with its reason, the processes, the backend, the
accelerate config written, and what accelerate ran the trainer as.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from worker.jobs.context import JobContext, JobResult
from worker.training.loading import adapter_chain

# worker/training/callbacks.py's pattern, not imported: it loads transformers.
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

# From this many parameters a process group shards the model (FSDP) instead of copying it to
# every process (DDP): a full copy with fp32 Adam states takes ~16 bytes a parameter.
SHARD_PARAMETERS = 1_000_000_000
# How long the group has to stop by itself (its cancel checkpoint) once the runner gives up on
# it for another reason (an exception, a SIGTERM to the worker) before it is killed.
STOP_GRACE_SECONDS = 30.0
POLL_SECONDS = 0.5
PR_SET_PDEATHSIG = 1

STOP_FILE = "stop"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
SPEC_FILE = "context.json"
CONFIG_FILE = "accelerate.json"
LOG_FILE = "group.log"
# How far into metrics.jsonl the runner has forwarded (a byte offset).
FORWARDED_FILE = "metrics.forwarded"


class GroupFailed(RuntimeError):
    """A rank of the process group failed; the message is that rank's error."""

    def __init__(self, message: str, traceback: str | None = None) -> None:
        super().__init__(message)
        self.rank_traceback = traceback


def die_with_parent() -> None:
    """Asks the kernel to SIGKILL this process when its parent dies (Linux; elsewhere a no-op).
    Survives exec, so the launcher started with it as preexec_fn keeps it."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def safetensors_parameters(folder: Path) -> int | None:
    """The parameter count of a model folder, from its safetensors headers (no weights read,
    no torch); None when the folder has no safetensors."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for size in tensor["shape"]:
                count *= size
            total += count
    return total


def choose_strategy(asked: str | None, parameters: int | None, device: str) -> tuple[str, str]:
    """(strategy, why): DDP on CPU whatever was asked (accelerate shards only across GPUs: it
    runs an FSDP config on CPU as plain data parallel); on CUDA what the run asked for, else DDP
    for models that fit one device, FSDP from SHARD_PARAMETERS."""
    if device != "cuda":
        why = "on CPU: DDP over gloo (FSDP and DeepSpeed shard across GPUs)"
        return "ddp", why if asked in (None, "ddp") else f"{asked} asked for, but {why}"
    if asked is not None:
        if asked == "deepspeed-zero3" and find_spec("deepspeed") is None:
            raise GroupFailed(
                "distributed=deepspeed-zero3 needs DeepSpeed, which this worker does not have: "
                "pip install deepspeed on the worker, or ask for fsdp"
            )
        return asked, "given in the run's hyperparameters"
    if parameters is not None and parameters >= SHARD_PARAMETERS:
        return "fsdp", f"{parameters / 1e9:.1f}B parameters: sharded so that each GPU holds a part"
    size = "unknown size" if parameters is None else f"{parameters / 1e6:.1f}M parameters"
    return "ddp", f"{size}: a full copy per GPU fits, DDP is the fastest"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accelerate_config(strategy: str, processes: int, device: str, port: int) -> dict[str, Any]:
    """The accelerate config file's contents. On CPU, torchrun still starts the ranks (the
    MULTI_GPU launcher; accelerate's own CPU launcher needs MPI) and each rank, told use_cpu by
    its TrainingArguments, joins a gloo group."""
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "num_machines": 1,
        "machine_rank": 0,
        "num_processes": processes,
        "gpu_ids": "all",
        "main_process_ip": "127.0.0.1",
        "main_process_port": port,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
        # The job's TrainingArguments choose bf16 (worker/training/defaults.py).
        "mixed_precision": "no",
        "main_training_function": "main",
    }
    if strategy == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_reshard_after_forward": True,
            "fsdp_offload_params": False,
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_activation_checkpointing": False,
        }
    elif strategy == "deepspeed-zero3":
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {
            "zero_stage": 3,
            "zero3_init_flag": True,
            "zero3_save_16bit_model": True,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
        }
    return config


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def run_group(ctx: JobContext) -> JobResult:
    """A JobRunner: the job `ctx.kind` as a process group of `processes` ranks."""
    processes = int(ctx.hyperparameters.get("processes", 1))
    if ctx.device == "cuda" and processes > (gpus := visible_gpus()):
        raise GroupFailed(
            f"processes={processes} asks for a GPU each, and this worker sees {gpus}: "
            f"ask for at most {gpus}, or run it on a worker with more GPUs"
        )
    strategy, why = choose_strategy(
        ctx.hyperparameters.get("distributed"),
        # An adapter's size says nothing of the model's: its full base folder's does.
        safetensors_parameters(adapter_chain(ctx.base_model_path)[0]),
        ctx.device,
    )
    folder = ctx.checkpoint_dir.parent / "launch"
    recover_metrics(folder, ctx)
    # Each attempt starts with a clean folder: a resumed run's old stop file or result must not
    # speak for this one.
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = accelerate_config(strategy, processes, ctx.device, free_port())
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    spec = {key: str(value) if isinstance(value, Path) else value for key, value in _fields(ctx)}
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    # Recorded beside the job's own settings, each with its reason (the run page's table).
    launch: dict[str, Any] = {
        "processes": processes,
        "distributed": strategy,
        "process_backend": "nccl" if ctx.device == "cuda" else "gloo",
        "accelerate_config": config,
    }
    reasons = {
        "processes": "given in the run's hyperparameters",
        "distributed": why,
        "process_backend": "NCCL between GPUs, gloo between CPU processes",
        "accelerate_config": f"the config file written for the group ({CONFIG_FILE})",
        "accelerate_distributed_type": "what accelerate ran the trainer as, from rank 0",
    }
    ctx.log(f"launching {processes} processes ({strategy}: {why})")
    with (folder / LOG_FILE).open("ab") as log:
        group = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                str(folder / CONFIG_FILE),
                "-m",
                "worker.launched",
                str(folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    forwarded = _Forwarded()
    try:
        returncode = _supervise(group, folder, ctx, forwarded)
    except BaseException:
        end_group(group)
        # What the group printed between the last poll and its end (a rank's first lines,
        # often the error's context) still reaches the log; the runner's own error wins.
        with contextlib.suppress(Exception):
            _forward_output(folder / LOG_FILE, forwarded.output, ctx)
        raise
    end_group(group)
    error = folder / ERROR_FILE
    if error.is_file():
        failure = json.loads(error.read_text())
        raise GroupFailed(f"rank {failure['rank']}: {failure['error']}", failure["traceback"])
    result = folder / RESULT_FILE
    if returncode != 0 or not result.is_file():
        tail = _tail(folder / LOG_FILE)
        raise GroupFailed(f"the process group exited with {returncode}:\n{tail}")
    values = json.loads(result.read_text())
    return JobResult(
        metrics=values["metrics"],
        model_dir=Path(values["model_dir"]),
        role=values["role"],
        settings={
            **values["settings"],
            **launch,
            "accelerate_distributed_type": values["distributed_type"],
            "reasons": {**values["settings"].get("reasons", {}), **reasons},
        },
        stopped=values["stopped"],
    )


def _fields(ctx: JobContext) -> list[tuple[str, Any]]:
    """The context's plain values (not its callbacks), for the ranks to rebuild it from."""
    values = [(field.name, getattr(ctx, field.name)) for field in fields(ctx)]
    return [(name, value) for name, value in values if not callable(value)]


def recover_metrics(folder: Path, ctx: JobContext) -> None:
    """Reports a killed attempt's rank 0 wrote that its runner never forwarded (killed in
    between: they lag by up to POLL_SECONDS), up to the checkpoint this attempt resumes from; the
    steps after it are trained, and reported, again."""
    metrics = folder / METRICS_FILE
    if ctx.resume_from is None or not metrics.is_file():
        return
    match = CHECKPOINT.match(ctx.resume_from.name)
    if match is None:
        return
    forwarded = folder / FORWARDED_FILE
    offset = int(forwarded.read_text()) if forwarded.is_file() else 0
    # The offset file is written after the reports it covers are stored: a runner killed in
    # between leaves it behind the run's metrics, so the steps they hold are not sent again.
    _forward_metrics(metrics, offset, ctx, after=ctx.reported_through, up_to=int(match.group(1)))


@dataclass
class _Forwarded:
    """How far into the group's metrics and output the runner has forwarded (byte offsets)."""

    metrics: int = 0
    output: int = 0


def _supervise(
    group: subprocess.Popen[bytes], folder: Path, ctx: JobContext, forwarded: _Forwarded
) -> int:
    """Forwards rank 0's metrics, the group's output and the runner's stop until it exits."""
    metrics = folder / METRICS_FILE
    stop_sent = False
    while True:
        returncode = group.poll()
        offset = _forward_metrics(metrics, forwarded.metrics, ctx)
        if offset != forwarded.metrics:
            # Where the next attempt takes up from, should this worker die now.
            partial = folder / f".{FORWARDED_FILE}.partial"
            partial.write_text(f"{offset}\n")
            partial.replace(folder / FORWARDED_FILE)
            forwarded.metrics = offset
        forwarded.output = _forward_output(folder / LOG_FILE, forwarded.output, ctx)
        if returncode is not None:
            return returncode
        if not stop_sent and ctx.should_stop():
            partial = folder / f".{STOP_FILE}.partial"
            partial.write_text(f"{time.time()}\n")
            partial.replace(folder / STOP_FILE)
            stop_sent = True
        time.sleep(POLL_SECONDS)


def _forward_metrics(
    path: Path, offset: int, ctx: JobContext, *, after: int | None = None, up_to: int | None = None
) -> int:
    """Rank 0's reports after byte `offset` (those of steps after `after` and up to `up_to`,
    if given) to the run's metrics; returns the offset after them."""
    if not path.is_file():
        return offset
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    # Only whole lines: rank 0 may be mid-write.
    end = chunk.rfind(b"\n") + 1
    for line in chunk[:end].splitlines():
        step, values, progress = json.loads(line)
        if (after is None or step > after) and (up_to is None or step <= up_to):
            ctx.report(int(step), values, float(progress))
    return offset + end


def _forward_output(path: Path, offset: int, ctx: JobContext) -> int:
    """The group's new whole lines of output (every rank's), to the runner's log."""
    if not path.is_file():
        return offset
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    end = chunk.rfind(b"\n") + 1
    for line in chunk[:end].decode(errors="replace").splitlines():
        if line.strip():
            ctx.log(line)
    return offset + end


def end_group(group: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to the group's session, SIGKILL after `grace` seconds; nothing of it is left."""
    if group.poll() is None:
        _signal_group(group.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            group.wait(grace)
    # The launcher may be gone while a rank lingers: the session is killed either way.
    _signal_group(group.pid, signal.SIGKILL)
    group.wait()


def _signal_group(pid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal_number)


def _tail(path: Path, characters: int = 4000) -> str:
    if not path.is_file():
        return ""
    return path.read_text(errors="replace")[-characters:]

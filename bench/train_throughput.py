"""Benchmark: the SFT, reward-model and DPO jobs against plain TRL scripts with the same
settings, and padding-free packing against padded batches.

For each kind the job module (worker/jobs/<kind>.py, progress going to a no-op report) and a
plain TRL script (the same trainer, the settings the job recorded, no callback of ours) train
the same locally built model on the same synthetic mixed-length snapshot for the same steps.
Throughput is real (non-pad) tokens per second of training, as TRL counts them (its
`num_tokens` over `train_runtime`), so both sides are measured alike; `ratio` is job over plain
and the target is >= 0.97. Peak memory is CUDA's allocator peak on a GPU, the process's peak
RSS (reset before each run through /proc/self/clear_refs) on a CPU. Each side runs
`--repeats` times, alternating, and the best run counts. Then SFT with packing (padding-free,
best-fit decreasing) against padded batches on the same data: real tokens per second and
steps per epoch. On CUDA, MFU: 6 x parameters FLOPs per trained token (8 for DPO, whose
reference model also reads every token) per second over the device's dense bf16 peak; on a
CPU the MFU figures are skipped, saying so.

Then the SFT job as a process group (`--processes`, 2 by default: worker/launch.py, DDP over
gloo on a CPU, NCCL on GPUs when the machine has that many) against one process doing the same
total work: the same steps at the same global batch (one process takes `processes` times the
per-process batch). Throughput is the trainer's own real tokens over its train_runtime (TRL
gathers num_tokens over the ranks), and the wall time, launch and model loading included, is
beside it. The machine's load average at the start and end is recorded: on a shared CPU it
moves the ratio more than anything here.

Depends on worker/, torch, transformers, trl, datasets and pydantic only: no database, no web
app. The snapshot is written as a `datasets` folder, which the jobs read like the service's.

    .venv/bin/python bench/train_throughput.py                    # tiny model, CPU, minutes
    python3 bench/train_throughput.py --size medium --batch-size 16 --rows 4000 \\
        --max-words 60 --steps 100 --repeats 3 --out bench/results/train_throughput_h100.json

On a CPU the tiny model's runs last seconds, so the ratio carries a few percent of noise
(other processes, timer resolution); on a GPU use --size medium or large.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.jobs import dpo, reward, sft
from worker.jobs.context import JobContext
from worker.launch import run_group, visible_gpus
from worker.training.loading import load_policy
from worker.training.synthetic import NEGATIVE, POSITIVE, TEMPLATES, TOPICS
from worker.training.tiny import build_tiny_model

RESULTS = Path(__file__).parent / "results" / "train_throughput.json"
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden": 64, "layers": 2, "heads": 4, "vocab_size": 512},
    "small": {"hidden": 256, "layers": 4, "heads": 4, "vocab_size": 4096},
    "medium": {"hidden": 1024, "layers": 12, "heads": 16, "vocab_size": 8192},
    "large": {"hidden": 2048, "layers": 16, "heads": 16, "vocab_size": 8192},
}
# Dense bf16 peak of the GPUs we expect, in FLOP/s (NVIDIA's datasheets, without sparsity).
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
TARGET_RATIO = 0.97
JOBS: dict[str, Any] = {"sft": sft, "reward": reward, "dpo": dpo}
# Training FLOPs per parameter per token: forward and backward (6); DPO's reference model
# also reads every token forward (2 more).
FLOPS_PER_PARAMETER = {"sft": 6, "reward": 6, "dpo": 8}


def answer(rng: random.Random, words: tuple[str, ...], length: int) -> str:
    topic = rng.choice(TOPICS)
    said = " and ".join(rng.choice(words) for _ in range(length))
    return f"{topic[0].upper()}{topic[1:]} is {said}."


def mixed_rows(count: int, max_words: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """SFT and preference rows whose answers run from 1 to `max_words` descriptive words, so
    lengths vary widely (what padding wastes and packing saves)."""
    rng = random.Random(seed)
    sft_rows, preference_rows = [], []
    for _ in range(count):
        prompt = [
            {"role": "user", "content": rng.choice(TEMPLATES).format(topic=rng.choice(TOPICS))}
        ]
        length = rng.randint(1, max_words)
        chosen = [{"role": "assistant", "content": answer(rng, POSITIVE, length)}]
        rejected = [
            {"role": "assistant", "content": answer(rng, NEGATIVE, rng.randint(1, max_words))}
        ]
        sft_rows.append({"messages": prompt + chosen})
        preference_rows.append(
            {"prompt": prompt, "chosen": chosen, "rejected": rejected, "margin": 1.0}
        )
    return {"sft": sft_rows, "preference": preference_rows}


def write_snapshot(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """A snapshot's `datasets` folder (a DatasetDict of train and test), as the jobs read it."""
    from datasets import Dataset, DatasetDict

    held_out = max(1, len(rows) // 20)
    splits = {"train": rows[held_out:], "test": rows[:held_out]}
    DatasetDict({name: Dataset.from_list(part) for name, part in splits.items()}).save_to_disk(
        str(folder / "datasets")
    )
    return folder


class Peak:
    """Peak memory of what runs inside: CUDA allocator peak, or the process's peak RSS."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.gb = 0.0

    def __enter__(self) -> Peak:
        import torch

        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            Path("/proc/self/clear_refs").write_text("5")
        return self

    def __exit__(self, *_: object) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            self.gb = torch.cuda.max_memory_allocated() / 2**30
        else:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.gb = int(line.split()[1]) / 2**20


def throughput(logs: list[dict[str, Any]], steps: int) -> dict[str, float]:
    """Real tokens per second of training from a trainer's log history (or the job's reports)."""
    tokens = max(entry["num_tokens"] for entry in logs if "num_tokens" in entry)
    runtime = next(entry["train_runtime"] for entry in logs if "train_runtime" in entry)
    return {
        "tokens": tokens,
        "seconds": runtime,
        "tokens_per_second": tokens / runtime,
        "steps": steps,
    }


def run_job(
    kind: str, model: Path, snapshot: Path, root: Path, hp: dict[str, Any], device: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job module in this process, or with hp["processes"] above 1 as the runner launches
    it: a process group (worker/launch.py) whose rank 0 reports."""
    logs: list[dict[str, Any]] = []
    steps: list[int] = []
    context = JobContext(
        run_id=0,
        kind=kind,
        hyperparameters=hp,
        base_model_path=model,
        reward_model_path=None,
        snapshot_path=snapshot,
        output_dir=root / "model",
        checkpoint_dir=root / "checkpoints",
        resume_from=None,
        device=device,
        report=lambda step, values, progress: (logs.append(values), steps.append(step)),
        should_stop=lambda: False,
        log=lambda line: None,
    )
    started = time.perf_counter()
    with Peak(device) as peak:
        result = (run_group if hp.get("processes", 1) > 1 else JOBS[kind].run)(context)
    wall = time.perf_counter() - started
    reported = [entry["gpu_memory_gb"] for entry in logs if "gpu_memory_gb" in entry]
    measured = {**throughput(logs, max(steps)), "peak_memory_gb": peak.gb, "wall_seconds": wall}
    if reported:
        # What the progress callback told the run page, beside the bench's own reading.
        measured["reported_gpu_memory_gb"] = max(reported)
    return measured, result.settings


def run_plain(
    kind: str,
    model: Path,
    snapshot: Path,
    root: Path,
    settings: dict[str, Any],
    hp: dict[str, Any],
    device: str,
) -> dict[str, Any]:
    """The same training as a plain TRL script would write it, with the job's settings."""
    from datasets import load_from_disk
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        set_seed,
    )
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model)
    splits = load_from_disk(str(snapshot / "datasets"))
    common = {
        "output_dir": str(root),
        "max_steps": hp["max_steps"],
        "learning_rate": settings["learning_rate"],
        "per_device_train_batch_size": settings["batch_size"],
        "gradient_accumulation_steps": settings["gradient_accumulation_steps"],
        "bf16": settings["bf16"],
        "activation_checkpointing": settings["gradient_checkpointing"],
        "gradient_checkpointing": settings["gradient_checkpointing"],
        "logging_steps": settings["logging_steps"],
        "max_length": settings["max_length"],
        "save_strategy": "steps",
        "save_steps": settings["save_steps"],
        "save_total_limit": 2,
        "use_cpu": device == "cpu",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": 0,
    }
    with Peak(device) as peak:
        if kind == "sft":
            packing = settings.get("packing", False)
            trainer: Any = SFTTrainer(
                model=AutoModelForCausalLM.from_pretrained(model, use_safetensors=True),
                args=SFTConfig(**common, packing=packing, padding_free=packing),
                train_dataset=splits["train"],
                processing_class=tokenizer,
            )
        elif kind == "reward":
            trainer = RewardTrainer(
                model=AutoModelForSequenceClassification.from_pretrained(
                    model, num_labels=1, use_safetensors=True
                ),
                args=RewardConfig(**common),
                train_dataset=splits["train"].remove_columns(["margin"]),
                processing_class=tokenizer,
            )
        else:
            trainer = DPOTrainer(
                model=AutoModelForCausalLM.from_pretrained(model, use_safetensors=True),
                args=DPOConfig(**common),
                train_dataset=splits["train"].remove_columns(["margin"]),
                processing_class=tokenizer,
            )
        trainer.train()
    measured = throughput(trainer.state.log_history, trainer.state.global_step)
    return {**measured, "peak_memory_gb": peak.gb}


def load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def process_group_comparison(
    model: Path, snapshot: Path, root: Path, options: argparse.Namespace, device: str
) -> dict[str, Any]:
    """SFT as `options.processes` processes against one process, the same total work."""
    import psutil
    import torch

    per_process = options.batch_size or 8
    steps = options.group_steps
    common = {"max_steps": steps, "save_steps": steps, "logging_steps": max(1, steps // 10)}
    single_hp = {**common, "batch_size": per_process * options.processes}
    group_hp = {**common, "batch_size": per_process, "processes": options.processes}
    # accelerate launch's own choice on a CPU: physical cores over processes, at least 1.
    per_rank = max(1, (psutil.cpu_count(logical=False) or 1) // options.processes)
    threads = torch.get_num_threads()
    singles, narrow, groups = [], [], []
    load_before = load()
    for attempt in range(options.repeats):
        singles.append(
            run_job("sft", model, snapshot, root / f"single-{attempt}", single_hp, device)[0]
        )
        if device == "cpu":
            # One process on a rank's thread budget: DDP's own scaling, apart from how one
            # process uses several cores (which a loaded machine hurts most).
            torch.set_num_threads(per_rank)
            try:
                narrow.append(
                    run_job("sft", model, snapshot, root / f"narrow-{attempt}", single_hp, device)[
                        0
                    ]
                )
            finally:
                torch.set_num_threads(threads)
        measured, settings = run_job(
            "sft", model, snapshot, root / f"group-{attempt}", group_hp, device
        )
        groups.append(measured)
    single = max(singles, key=lambda run: run["tokens_per_second"])
    group = max(groups, key=lambda run: run["tokens_per_second"])
    same_threads: dict[str, Any] = {}
    if narrow:
        best = max(narrow, key=lambda run: run["tokens_per_second"])
        same_threads = {
            "single_at_rank_threads": best,
            "ratio_at_rank_threads": group["tokens_per_second"] / best["tokens_per_second"],
            "wall_ratio_at_rank_threads": best["wall_seconds"] / group["wall_seconds"],
        }
    return {
        "processes": options.processes,
        "steps": steps,
        "global_batch": per_process * options.processes,
        "single": single,
        "group": group,
        "ratio": group["tokens_per_second"] / single["tokens_per_second"],
        "wall_ratio": single["wall_seconds"] / group["wall_seconds"],
        "distributed": settings.get("distributed"),
        "process_backend": settings.get("process_backend"),
        "accelerate_distributed_type": settings.get("accelerate_distributed_type"),
        **same_threads,
        "torch_threads_single_process": threads,
        "torch_threads_per_rank": per_rank if device == "cpu" else None,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load(),
    }


def mfu(
    tokens_per_second: float, parameters: int, flops_per_parameter: int, device: str
) -> float | None:
    import torch

    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    peak = next((value for key, value in PEAK_FLOPS.items() if key in name), None)
    return None if peak is None else flops_per_parameter * parameters * tokens_per_second / peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the job's choice")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--max-words", type=int, default=40, help="longest answer, in words")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kinds", default="sft,reward,dpo")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--processes", type=int, default=2, help="the process group's size; 1 skips it"
    )
    parser.add_argument(
        "--group-steps", type=int, default=60, help="steps of each process-group comparison run"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args()

    import torch

    device = (
        options.device
        if options.device != "auto"
        else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    kinds = [kind for kind in options.kinds.split(",") if kind]
    if unknown := set(kinds) - set(JOBS):
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name()
        if device == "cuda"
        else platform.processor() or "cpu",
        "size": options.size,
        "model": SIZES[options.size],
        "steps": options.steps,
        "rows": options.rows,
        "target_ratio": TARGET_RATIO,
        "load_average_at_start": load(),
        "kinds": {},
    }
    if device != "cuda":
        report["mfu_skipped"] = (
            "MFU is measured against a GPU's dense bf16 peak: skipped on this "
            f"{device} (run on a CUDA machine for it)"
        )
        print(report["mfu_skipped"], flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = build_tiny_model(root / "model", max_positions=1024, **SIZES[options.size])
        report["parameters"] = parameters = load_policy(model).num_parameters()
        rows = mixed_rows(options.rows, options.max_words, seed=0)
        snapshots = {
            "sft": write_snapshot(root / "sft-snapshot", rows["sft"]),
            "preference": write_snapshot(root / "preference-snapshot", rows["preference"]),
        }
        batch = {"batch_size": options.batch_size} if options.batch_size else {}
        hp: dict[str, Any] = {"max_steps": options.steps, "save_steps": options.steps, **batch}
        for kind in kinds:
            snapshot = snapshots["sft" if kind == "sft" else "preference"]
            # A one-step warm-up, which also tells the settings the job picks on this device.
            _, settings = run_job(
                kind, model, snapshot, root / f"{kind}-warm-up", {**hp, "max_steps": 1}, device
            )
            jobs, plains = [], []
            for attempt in range(options.repeats):
                plains.append(
                    run_plain(
                        kind,
                        model,
                        snapshot,
                        root / f"{kind}-plain-{attempt}",
                        settings,
                        hp,
                        device,
                    )
                )
                jobs.append(
                    run_job(kind, model, snapshot, root / f"{kind}-job-{attempt}", hp, device)[0]
                )
            job = max(jobs, key=lambda run: run["tokens_per_second"])
            plain = max(plains, key=lambda run: run["tokens_per_second"])
            ratio = job["tokens_per_second"] / plain["tokens_per_second"]
            report["kinds"][kind] = {
                "job": job,
                "plain_trl": plain,
                "ratio": ratio,
                "meets_target": ratio >= TARGET_RATIO,
                "mfu_job": mfu(
                    job["tokens_per_second"], parameters, FLOPS_PER_PARAMETER[kind], device
                ),
                "mfu_plain_trl": mfu(
                    plain["tokens_per_second"], parameters, FLOPS_PER_PARAMETER[kind], device
                ),
                "settings": {key: value for key, value in settings.items() if key != "reasons"},
            }
            print(json.dumps({kind: report["kinds"][kind]}, indent=2), flush=True)
        if "sft" in kinds:
            epoch = {"epochs": 1, "save_steps": 10**6, **batch}
            packed, _ = run_job(
                "sft", model, snapshots["sft"], root / "packed", {**epoch, "packing": True}, device
            )
            padded, _ = run_job("sft", model, snapshots["sft"], root / "padded", epoch, device)
            report["packing"] = {
                "packed": packed,
                "padded": padded,
                "speedup": packed["tokens_per_second"] / padded["tokens_per_second"],
                "mfu_packed": mfu(packed["tokens_per_second"], parameters, 6, device),
                "mfu_padded": mfu(padded["tokens_per_second"], parameters, 6, device),
            }
            print(json.dumps({"packing": report["packing"]}, indent=2), flush=True)
        gpus = visible_gpus() if device == "cuda" else 0
        if options.processes < 2:
            report["process_group_skipped"] = "--processes 1"
        elif device == "cuda" and gpus < options.processes:
            report["process_group_skipped"] = (
                f"{options.processes} processes need a GPU each; this machine has {gpus}"
            )
        else:
            report["process_group"] = process_group_comparison(
                model, snapshots["sft"], root / "group", options, device
            )
            print(json.dumps({"process_group": report["process_group"]}, indent=2), flush=True)
        if "process_group_skipped" in report:
            print(f"process group: skipped: {report['process_group_skipped']}", flush=True)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {options.out}")


if __name__ == "__main__":
    main()

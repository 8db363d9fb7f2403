"""What a job module is given and what it gives back.

A job module (worker/jobs/sft.py, reward.py, dpo.py, ppo.py, rloo.py, grpo.py, generate.py,
score.py) exposes `run(ctx: JobContext) -> JobResult` and knows nothing of the database or
Celery: the runner (worker/jobs/runner.py) claims the run row, builds the context from it,
forwards `report` to the run's metrics and `should_stop` from its cancel flag, and registers the
result as a model. That keeps every job readable top to bottom like a TRL script and testable
without a broker.

No torch here: the web app imports this module's names through the runner's callers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# step, values (loss, learning_rate, rewards/accuracies...), progress in [0, 1]
Report = Callable[[int, dict[str, float], float], None]


@dataclass(frozen=True)
class JobContext:
    run_id: int
    kind: str
    # Validated by the kind's schema in app.schemas.runs, defaults filled in.
    hyperparameters: dict[str, Any]
    # A local folder holding config.json, safetensors weights and the tokenizer, or a LoRA
    # adapter naming its base (worker/training/loading.py loads base plus adapter).
    base_model_path: Path
    # The reward model folder (PPO, RLOO, GRPO and policy evaluation), else None.
    reward_model_path: Path | None
    # A snapshot folder: train/test .jsonl and .parquet, datasets/ (see app.services.snapshots).
    snapshot_path: Path | None
    # Where the finished model is saved (save_pretrained with safetensors, tokenizer beside it).
    output_dir: Path
    # The Trainer's output_dir: periodic checkpoint-N folders live here.
    checkpoint_dir: Path
    # A checkpoint folder that carries the completion marker, to resume from; None starts afresh.
    resume_from: Path | None
    # "cuda" or "cpu": the runner picks CUDA when torch sees one.
    device: str
    report: Report
    # True once the run's cancel was asked for: stop at the next step, keeping a checkpoint.
    should_stop: Callable[[], bool]
    log: Callable[[str], None] = print
    # What the launch wrote for the job to read: prompts.jsonl (generate), responses.jsonl
    # (score). None for training kinds.
    input_dir: Path | None = None
    # A second policy that also answers every prompt (generate with compare_model_id).
    compare_model_path: Path | None = None
    # The highest step the run's metrics already hold: a resumed process group's recovery of
    # its killed predecessor's unforwarded reports starts after it (worker/launch.py).
    reported_through: int | None = None


@dataclass
class JobResult:
    # Evaluation at the end of the run (eval_loss, perplexity, accuracy, win_rate, ...).
    metrics: dict[str, float]
    # The folder the model was saved to (ctx.output_dir); for generate and score runs, the
    # folder holding samples.jsonl or scores.jsonl.
    model_dir: Path
    # None: no model to register (generate, score).
    role: Literal["policy", "reward"] | None
    # The defaults the job chose for its device and model size (bf16, gradient checkpointing,
    # learning rate...), recorded on the run so a researcher sees what was used.
    settings: dict[str, Any] = field(default_factory=dict)
    # True when it stopped early because should_stop() said so.
    stopped: bool = False

"""What every job passes to its TRL config, its LoRA adapters, and how it saves its model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.schemas.runs import LoraSettings, TrainingHyperparameters
from worker.training.callbacks import MARKER
from worker.training.errors import JobInputError
from worker.training.loading import ADAPTER_CONFIG, base_reference

# Two, so that rotating away old checkpoints after a save never removes the last complete one
# before the new one has its marker.
SAVE_TOTAL_LIMIT = 2

Hyperparameters = TypeVar("Hyperparameters", bound=BaseModel)


def parse_hyperparameters(schema: type[Hyperparameters], values: dict[str, Any]) -> Hyperparameters:
    """The run's hyperparameters checked again by the worker (the web app checked them before
    queueing; a run row edited since, or a CLI call, must not start a job with bad ones)."""
    try:
        return schema.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'hyperparameters'}: "
            f"{problem['msg']}"
            for problem in error.errors()
        )
        raise JobInputError(f"bad hyperparameters: {problems}") from None


def trainer_arguments(
    settings: dict[str, Any], hyperparameters: TrainingHyperparameters, checkpoint_dir: Path
) -> dict[str, Any]:
    """Keyword arguments common to SFTConfig, RewardConfig, DPOConfig, RLOOConfig, PPOConfig."""
    length: dict[str, Any] = (
        {"max_steps": hyperparameters.max_steps}
        if hyperparameters.max_steps is not None
        else {"num_train_epochs": hyperparameters.epochs or 1.0}
    )
    return {
        "output_dir": str(checkpoint_dir),
        "learning_rate": settings["learning_rate"],
        "per_device_train_batch_size": settings["batch_size"],
        "per_device_eval_batch_size": settings["batch_size"],
        "gradient_accumulation_steps": settings["gradient_accumulation_steps"],
        # TRL's configs turn both on by default; the job decides (defaults.py).
        "bf16": settings["bf16"],
        # transformers 5 renamed it; the old name is still TRL's (True by default) and must agree.
        "activation_checkpointing": settings["gradient_checkpointing"],
        "gradient_checkpointing": settings["gradient_checkpointing"],
        "logging_steps": settings["logging_steps"],
        "save_strategy": "steps",
        "save_steps": settings["save_steps"],
        "save_total_limit": SAVE_TOTAL_LIMIT,
        "eval_strategy": "no",
        "seed": hyperparameters.seed,
        "use_cpu": settings["device"] == "cpu",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **length,
    }


def lora_config(lora: LoraSettings | None, task_type: str) -> Any:
    """peft's LoraConfig for `lora`, or None to train every weight."""
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules or "all-linear",
        task_type=task_type,
    )


def adapter_saving(
    settings: dict[str, Any], lora: LoraSettings | None, templated: bool = False
) -> bool:
    """Whether the run merges its LoRA adapter into full weights on save, recorded in
    `settings` with the reason; False without LoRA (nothing to merge). A run that gave the
    model a chat template changed more than an adapter holds (new token embeddings, the end
    token in its config), so it saves full weights."""
    if lora is None:
        return False
    if templated:
        merge = True
        reason = (
            "the run gave the base model a chat template (its tokens and end token), which an "
            "adapter does not hold"
        )
    elif lora.merge_adapter:
        merge = True
        reason = "given in the run's hyperparameters"
    else:
        merge = False
        reason = "the adapter alone is saved; later jobs load the base model and apply it"
    settings["merge_adapter"] = merge
    settings["reasons"]["merge_adapter"] = reason
    return merge


def resume_checkpoint(resume_from: Path | None) -> str | None:
    """The checkpoint to resume from, refused unless its completion marker is there."""
    if resume_from is None:
        return None
    if not (resume_from / MARKER).is_file():
        raise JobInputError(
            f"checkpoint {resume_from} has no completion marker: it may be cut off mid-write"
        )
    return str(resume_from)


def save_model(
    model: Any, tokenizer: Any, output_dir: Path, base_model: Path, merge_adapter: bool = False
) -> Path:
    """The trained model with the tokenizer beside it, safetensors only. A LoRA model saves its
    adapter alone (peft's adapter_config.json and adapter_model.safetensors) naming
    `base_model`, the folder the run started from, relative to `output_dir` (loading.py loads
    base plus adapter); with `merge_adapter` the adapter is merged in and full weights saved.
    In a process group (worker/launch.py) every rank calls it, only the main process writes,
    and every rank returns once it has; a sharded model (FSDP, DeepSpeed ZeRO-3) is gathered
    whole first."""
    adapter = hasattr(model, "merge_and_unload")
    if adapter and merge_adapter:
        model = model.merge_and_unload()
        adapter = False
    state_dict = gathered_state_dict(model)
    if is_main_process():
        output_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(output_dir, safe_serialization=True, state_dict=state_dict)
        if adapter:
            name_adapter_base(output_dir, base_model)
        tokenizer.save_pretrained(output_dir)
    in_group_wait_for_every_rank()
    return output_dir


def name_adapter_base(output_dir: Path, base_model: Path) -> None:
    """Points the saved adapter_config.json at `base_model`, relative to the adapter's folder
    (peft writes whatever path the base was loaded from, absolute here)."""
    config_path = output_dir / ADAPTER_CONFIG
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_reference(base_model, output_dir)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def in_group_wait_for_every_rank() -> None:
    """A barrier in a process group (a no-op outside one): what rank 0 wrote before it is
    there for every rank after it (RLOO's evaluation reloads the saved policy)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def is_main_process() -> bool:
    """False on every rank of a process group but rank 0; True outside a group."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def gathered_state_dict(model: Any) -> dict[str, Any] | None:
    """The full weights of a model sharded across a process group (rank 0's copy, on the CPU),
    or None for a model every process holds whole (one process, DDP). Needs CUDA: not run on
    the CPU test machine."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    if any(hasattr(parameter, "ds_id") for parameter in model.parameters()):
        import deepspeed

        # ZeRO-3 partitions each parameter; gathered for the duration, copied out on rank 0.
        with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
            return {
                name: value.detach().cpu().clone() for name, value in model.state_dict().items()
            }
    from torch.distributed.tensor import DTensor

    sharded = any(isinstance(parameter, DTensor) for parameter in model.parameters())
    if not sharded and not any(
        "FullyShardedDataParallel" in type(m).__name__ for m in model.modules()
    ):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )

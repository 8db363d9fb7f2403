"""Settings a job picks for its device and model size when the hyperparameters leave them open.

Measured with TRL 1.12 on a CPU: its configs' defaults of bf16 and gradient checkpointing made
tiny-model stages 5-13x slower, and learning rates near TRL's (1e-6 for DPO) did not move a
from-scratch tiny model at all while 1e-4 to 5e-4 did. So bf16 and checkpointing are for CUDA
devices that support them and models big enough to gain from them, and the learning rate
depends on the model's size. Every choice comes back with its reason, which the job records in
JobResult.settings so a researcher sees what ran and why.
"""

from __future__ import annotations

from typing import Any

# Below this many parameters a model is "tiny": built from scratch here, so it needs large
# steps, and too small for bf16 or checkpointing to pay for their overhead.
TINY_PARAMETERS = 50_000_000
# Recomputing activations costs about a third more compute; worth it only where memory binds.
CHECKPOINTING_PARAMETERS = 1_000_000_000
TINY_LEARNING_RATES = {
    "sft": 5e-4,
    "reward": 5e-4,
    "dpo": 5e-4,
    "ppo": 3e-4,
    "rloo": 3e-4,
    "grpo": 3e-4,
}
# TRL's config defaults (the same in 1.12 and 1.16), for pretrained models.
TRL_LEARNING_RATES = {
    "sft": 2e-5,
    "reward": 1e-4,
    "dpo": 1e-6,
    "ppo": 3e-6,
    "rloo": 1e-6,
    "grpo": 1e-6,
}
LORA_LEARNING_RATE_CAP = 2e-4
DEFAULT_BATCH_SIZE = 8
DEFAULT_SAVE_STEPS = 100
MAX_DEFAULT_LENGTH = 1024


def cuda_supports_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def pick_settings(
    kind: str,
    device: str,
    parameters: int,
    hyperparameters: dict[str, Any],
    *,
    max_positions: int | None = None,
) -> dict[str, Any]:
    """The values a job trains with: each hyperparameter given (not None) is kept, each left
    open is chosen here. `reasons` says, per setting, why it has its value."""
    if kind not in TRL_LEARNING_RATES:
        raise ValueError(f"unknown job kind {kind!r}")
    tiny = parameters < TINY_PARAMETERS
    size = f"{parameters / 1e6:.1f}M parameters"
    chosen: dict[str, tuple[Any, str]] = {}

    if device == "cuda" and cuda_supports_bf16() and not tiny:
        chosen["bf16"] = (True, f"CUDA device with bf16 support and a {size} model")
    elif device == "cuda" and not tiny:
        chosen["bf16"] = (False, "this CUDA device does not support bf16")
    else:
        chosen["bf16"] = (False, f"{device} with a {size} model: bf16 slows small models")

    if device == "cuda" and parameters >= CHECKPOINTING_PARAMETERS:
        chosen["gradient_checkpointing"] = (True, f"{size}: trades compute for activation memory")
    else:
        chosen["gradient_checkpointing"] = (
            False,
            f"{size} on {device}: activations fit, recomputing them would only cost time",
        )

    lora = hyperparameters.get("lora") is not None
    if tiny:
        rate = TINY_LEARNING_RATES[kind]
        why = f"{size}: a small from-scratch model needs large steps"
    else:
        rate = TRL_LEARNING_RATES[kind]
        why = f"{size}: TRL's default for {kind}"
        if lora:
            rate = min(rate * 10, LORA_LEARNING_RATE_CAP)
            why += ", times 10 for LoRA adapters (capped at 2e-4)"
    chosen["learning_rate"] = (rate, why)
    chosen["batch_size"] = (DEFAULT_BATCH_SIZE, "a batch that fits a small GPU or a CPU")
    chosen["gradient_accumulation_steps"] = (1, "no accumulation unless asked for")
    limit = min(max_positions or MAX_DEFAULT_LENGTH, MAX_DEFAULT_LENGTH)
    chosen["max_length"] = (limit, "the model's context, at most 1024 tokens")
    chosen["logging_steps"] = (
        (1, "every step: steps are cheap on a tiny model")
        if tiny
        else (10, "every 10 steps: reading the metrics back synchronises the device")
    )
    chosen["save_steps"] = (DEFAULT_SAVE_STEPS, "a checkpoint every 100 steps")

    values: dict[str, Any] = {"device": device, "parameters": parameters}
    reasons: dict[str, str] = {}
    for name, (value, reason) in chosen.items():
        given = hyperparameters.get(name)
        values[name] = value if given is None else given
        reasons[name] = reason if given is None else "given in the run's hyperparameters"
    values["reasons"] = reasons
    return values

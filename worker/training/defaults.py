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

from worker.training.errors import JobInputError

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


def cpu_runs_dtype(name: str) -> bool:
    """Whether this machine's torch runs a matmul, softmax and layer norm in `name` on the CPU
    (older builds lack half-precision CPU kernels)."""
    import torch

    dtype = getattr(torch, name)
    try:
        x = torch.ones(2, 4, dtype=dtype)
        torch.nn.functional.layer_norm(torch.softmax(x @ x.T, dim=-1), (2,))
    except RuntimeError:
        return False
    return True


def flash_attn_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("flash_attn") is not None


def bitsandbytes_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("bitsandbytes") is not None


def pick_model_loading(
    device: str,
    torch_dtype: str | None,
    attn_implementation: str | None,
    load_in_4bit: bool = False,
) -> dict[str, Any]:
    """The weights' dtype and the attention implementation every model of a job loads with,
    each chosen for the device when left open, with its reason (`reasons`), and whether the
    models load quantized to 4 bits (QLoRA). A choice this device cannot run is refused here,
    before anything loads or trains."""
    if load_in_4bit and device != "cuda":
        raise JobInputError(
            f"load_in_4bit needs a CUDA device (bitsandbytes' 4-bit kernels); this worker "
            f"trains on {device}: turn it off"
        )
    if load_in_4bit and not bitsandbytes_installed():
        raise JobInputError(
            "load_in_4bit needs the bitsandbytes package, which this worker does not have: "
            "install it or turn load_in_4bit off"
        )
    if torch_dtype is None:
        if device == "cuda" and cuda_supports_bf16():
            dtype, dtype_why = "bfloat16", "CUDA device with bf16 support"
        elif device == "cuda":
            dtype, dtype_why = "float32", "this CUDA device does not support bf16"
        else:
            dtype, dtype_why = "float32", f"{device}: full precision"
    else:
        dtype, dtype_why = torch_dtype, "given in the run's hyperparameters"
        if dtype == "bfloat16" and device == "cuda" and not cuda_supports_bf16():
            raise JobInputError("torch_dtype=bfloat16: this CUDA device does not support bf16")
        if dtype in ("bfloat16", "float16") and device != "cuda" and not cpu_runs_dtype(dtype):
            raise JobInputError(
                f"torch_dtype={dtype}: this worker's torch cannot compute in {dtype} on the "
                "CPU; use float32 (or auto) on CPU workers"
            )

    if attn_implementation is None:
        half = dtype in ("bfloat16", "float16")
        if device == "cuda" and half and flash_attn_installed():
            attention, attention_why = (
                "flash_attention_2",
                "CUDA, half precision, flash_attn installed",
            )
        elif device == "cuda" and half:
            attention, attention_why = "sdpa", "the flash_attn package is not installed"
        else:
            attention, attention_why = "sdpa", f"{device} with {dtype} weights: torch's own"
    else:
        attention, attention_why = attn_implementation, "given in the run's hyperparameters"
        if attention == "flash_attention_2":
            if device != "cuda":
                raise JobInputError(
                    f"attn_implementation=flash_attention_2 needs a CUDA device; this worker "
                    f"trains on {device}: use sdpa"
                )
            if not flash_attn_installed():
                raise JobInputError(
                    "attn_implementation=flash_attention_2 needs the flash_attn package, which "
                    "this worker does not have: install it or use sdpa"
                )
    return {
        "torch_dtype": dtype,
        "attn_implementation": attention,
        "load_in_4bit": load_in_4bit,
        "reasons": {"torch_dtype": dtype_why, "attn_implementation": attention_why},
    }


def loading_arguments(loading: dict[str, Any]) -> dict[str, Any]:
    """from_pretrained's keyword arguments for `pick_model_loading`'s choice ("auto" leaves a
    setting to transformers: the config's dtype, its default attention)."""
    import torch

    arguments: dict[str, Any] = {}
    dtype = loading["torch_dtype"]
    arguments["dtype"] = "auto" if dtype == "auto" else getattr(torch, dtype)
    if loading["attn_implementation"] != "auto":
        arguments["attn_implementation"] = loading["attn_implementation"]
    if loading["load_in_4bit"]:
        # QLoRA: NF4 weights with double quantization, computing in the run's dtype (float32
        # for "auto", whose dtype is only known once loaded). Needs CUDA: not run on the CPU
        # test machine.
        import os

        from transformers import BitsAndBytesConfig

        arguments["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32 if dtype == "auto" else getattr(torch, dtype),
        )
        # Each process of a group on its own GPU.
        arguments["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return arguments


def record_loading(settings: dict[str, Any], loading: dict[str, Any]) -> None:
    """`pick_model_loading`'s choice and its reasons, into a job's recorded settings."""
    settings["torch_dtype"] = loading["torch_dtype"]
    settings["attn_implementation"] = loading["attn_implementation"]
    if loading["load_in_4bit"]:
        settings["load_in_4bit"] = True
    settings.setdefault("reasons", {}).update(loading["reasons"])

"""Hyperparameters of each training run kind, checked before a run is queued.

A field left None means "the job picks it for its device and model size" (worker/training/
defaults.py); the job records what it picked, and why, in the run's settings. Unknown fields are
refused, so a misspelt name is an error rather than a setting silently ignored. The names follow
TRL's configs where they have one (learning_rate, max_length, beta, num_generations...).
No torch here: the web app validates with these before anything reaches a worker.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from app.schemas.common import Text

LEARNING_RATE_MAX = 1.0
MAX_LENGTH_MIN = 8
MAX_LENGTH_MAX = 131_072
MAX_BATCH = 4096
MAX_STEPS = 10_000_000
# Processes of one run's `accelerate launch` group, on one worker machine (a GPU each on CUDA).
MAX_PROCESSES = 16


class LoraSettings(BaseModel):
    """Train low-rank adapters (peft) instead of every weight. The run saves the adapter alone
    (adapter_config.json, adapter_model.safetensors) naming its base model; every later job
    loads the base and applies it. merge_adapter saves full weights instead."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Rank of each adapter's two matrices.
    r: int = Field(title="Adapter rank", default=16, ge=1, le=1024, description="Adapter rank.")
    # Adapters' output is scaled by alpha / r.
    alpha: float = Field(
        title="Adapter scale (alpha)",
        default=32.0,
        gt=0,
        le=4096,
        description="Adapter scaling (alpha / r).",
    )
    dropout: float = Field(
        title="Adapter dropout", default=0.05, ge=0, lt=1, description="Dropout on adapter inputs."
    )
    # None: every linear layer but the output head ("all-linear").
    target_modules: list[Text] | None = Field(
        title="Modules to adapt",
        default=None,
        min_length=1,
        max_length=64,
        description="Module names to adapt; None adapts every linear layer.",
    )
    merge_adapter: bool = Field(
        title="Save merged full weights",
        default=False,
        description="Merge the adapter into the base and save full weights (as large as the "
        "base) instead of the adapter alone.",
    )


class TrainingHyperparameters(BaseModel):
    """What every training kind takes."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    learning_rate: float | None = Field(
        title="Learning rate",
        default=None,
        gt=0,
        le=LEARNING_RATE_MAX,
        description="Peak learning rate; None picks one by model size (5e-4 for tiny models, "
        "TRL's default otherwise).",
    )
    batch_size: int | None = Field(
        title="Batch size per device",
        default=None,
        ge=1,
        le=MAX_BATCH,
        description="Examples per device per step (default 8).",
    )
    gradient_accumulation_steps: int | None = Field(
        title="Gradient accumulation steps",
        default=None,
        ge=1,
        le=1024,
        description="Steps whose gradients add up before an update.",
    )
    max_steps: int | None = Field(
        title="Training steps",
        default=None,
        ge=1,
        le=MAX_STEPS,
        description="Optimizer steps to train for; give this or epochs, not both.",
    )
    epochs: float | None = Field(
        title="Epochs",
        default=None,
        gt=0,
        le=100,
        description="Passes over the training split (default 1); give this or max_steps.",
    )
    max_length: int | None = Field(
        title="Longest sequence, in tokens",
        default=None,
        ge=MAX_LENGTH_MIN,
        le=MAX_LENGTH_MAX,
        description="Longest sequence in tokens; None: the model's context, at most 1024.",
    )
    bf16: bool | None = Field(
        title="bf16 mixed precision",
        default=None,
        description="bf16 mixed precision; None: on for CUDA devices that support it and "
        "models of 50M parameters or more.",
    )
    gradient_checkpointing: bool | None = Field(
        title="Gradient checkpointing",
        default=None,
        description="Recompute activations to save memory; None: on for models of 1B "
        "parameters or more on CUDA.",
    )
    lora: LoraSettings | None = Field(
        title="LoRA adapters",
        default=None,
        description="Train LoRA adapters; None trains every weight.",
    )
    save_steps: int | None = Field(
        title="Checkpoint every so many steps",
        default=None,
        ge=1,
        le=MAX_STEPS,
        description="A checkpoint every this many steps.",
    )
    logging_steps: int | None = Field(
        title="Log metrics every so many steps",
        default=None,
        ge=1,
        le=MAX_STEPS,
        description="Metrics every this many steps.",
    )
    seed: int = Field(
        title="Seed", default=0, ge=0, le=2**32 - 1, description="Seed for weights and data."
    )
    processes: int = Field(
        title="Processes",
        default=1,
        ge=1,
        le=MAX_PROCESSES,
        description="Training processes on the worker (one GPU each on CUDA); above 1 the job "
        "runs as an accelerate launch process group.",
    )
    distributed: Literal["ddp", "fsdp", "deepspeed-zero3"] | None = Field(
        title="Multi-process strategy",
        default=None,
        description="How a process group shares the model: ddp copies it to every process, "
        "fsdp and deepspeed-zero3 shard it; None: ddp below 1B parameters (and on CPU), fsdp "
        "from 1B. Only with processes above 1.",
    )
    torch_dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = Field(
        title="Weights' dtype",
        default=None,
        description="The dtype every model of the run loads in: auto keeps the model folder's "
        "own; None: bfloat16 on CUDA devices that support it, float32 otherwise.",
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] | None = Field(
        title="Attention implementation",
        default=None,
        description="auto leaves it to transformers; flash_attention_2 needs CUDA, the "
        "flash_attn package and half-precision weights; None: flash_attention_2 where it can "
        "run, sdpa otherwise.",
    )
    load_in_4bit: bool = Field(
        title="Load the base in 4 bits (QLoRA)",
        default=False,
        description="Quantize the frozen base model to 4 bits (NF4, bitsandbytes) and train "
        "LoRA adapters on it: needs lora, a CUDA worker and the bitsandbytes package.",
    )

    @model_validator(mode="after")
    def _one_length(self) -> TrainingHyperparameters:
        if self.max_steps is not None and self.epochs is not None:
            raise ValueError("give max_steps or epochs, not both")
        if self.distributed is not None and self.processes == 1:
            raise ValueError("distributed is a strategy for processes above 1")
        if self.attn_implementation == "flash_attention_2" and self.torch_dtype == "float32":
            raise ValueError(
                "flash_attention_2 runs in bfloat16 or float16 only: set torch_dtype to one "
                "of them, or use sdpa"
            )
        if self.load_in_4bit and self.lora is None:
            raise ValueError(
                "load_in_4bit trains LoRA adapters on a frozen 4-bit base: turn lora on"
            )
        if self.load_in_4bit and self.lora is not None and self.lora.merge_adapter:
            raise ValueError(
                "a 4-bit base cannot take its adapter merged in: leave merge_adapter off with "
                "load_in_4bit"
            )
        return self


# Chat templates a base model without one trains with (worker/training/templates.py holds them;
# tests/worker/test_templates.py checks the names agree).
ChatTemplateName = Literal["chatml", "zephyr"]


def chat_template_field() -> Any:
    return Field(
        title="Chat template, for a model without one",
        default="chatml",
        description="The chat template a base model whose tokenizer has none trains with, saved "
        "with the trained model: chatml (<|im_start|>role ... <|im_end|>, which becomes the "
        "end token) or zephyr (<|role|> markers, turns ended by the model's own end token). A "
        "model with a template of its own keeps it.",
    )


class SFTHyperparameters(TrainingHyperparameters):
    """Supervised fine-tuning on an SFT snapshot (TRL's SFTTrainer)."""

    chat_template: ChatTemplateName = chat_template_field()

    packing: bool = Field(
        title="Pack examples together",
        default=False,
        description="Pack several examples into each row without padding (padding-free, "
        "best-fit decreasing) instead of padding every example to the longest in its batch.",
    )


class RewardHyperparameters(TrainingHyperparameters):
    """A reward model on a preference snapshot (TRL's RewardTrainer, Bradley-Terry loss)."""

    chat_template: ChatTemplateName = chat_template_field()

    use_margin: bool = Field(
        title="Use the judged margins",
        default=False,
        description="Subtract each pair's score difference (its margin) inside the loss, so "
        "pairs judged far apart must be separated further.",
    )
    center_rewards_coefficient: float | None = Field(
        title="Reward centring weight",
        default=None,
        ge=0,
        le=1,
        description="Weight of a penalty keeping rewards centred on zero; None: no penalty.",
    )


class DPOHyperparameters(TrainingHyperparameters):
    """Direct preference optimisation of a policy on a preference snapshot (DPOTrainer)."""

    beta: float = Field(
        title="Beta: closeness to the reference policy",
        default=0.1,
        gt=0,
        le=10,
        description="Strength of the pull towards the reference policy; higher stays closer.",
    )
    loss_type: Literal["sigmoid", "hinge", "ipo"] = Field(
        title="Loss", default="sigmoid", description="sigmoid (DPO), hinge (SLiC) or ipo."
    )
    sft_weight: float = Field(
        title="Weight of the chosen answers' likelihood (RPO)",
        default=0.0,
        ge=0,
        le=10,
        description="Adds this times the negative log-likelihood of the chosen answers to the "
        "preference loss (RPO), so pushing the rejected answers down cannot drag the chosen "
        "ones, and the answers' shape, down with them; 0: off.",
    )


class OnlineHyperparameters(TrainingHyperparameters):
    """What PPO, RLOO and GRPO share: sampling completions of a prompts snapshot's prompts."""

    max_completion_length: int = Field(
        title="Longest completion, in tokens",
        default=32,
        ge=1,
        le=MAX_LENGTH_MAX,
        description="Longest completion sampled, in tokens.",
    )
    temperature: float = Field(
        title="Sampling temperature",
        default=1.0,
        gt=0,
        le=10,
        description="Sampling temperature of completions.",
    )

    @model_validator(mode="after")
    def _no_max_length(self) -> OnlineHyperparameters:
        # Completions are bounded by max_completion_length; a max_length would be ignored.
        if self.max_length is not None:
            raise ValueError(
                "max_length does not apply to PPO, RLOO or GRPO: set max_completion_length"
            )
        return self


class PPOHyperparameters(OnlineHyperparameters):
    """PPO against a reward model, with a value model (TRL 1.12's PPOTrainer)."""

    kl_coef: float = Field(
        title="KL penalty weight",
        default=0.05,
        ge=0,
        le=10,
        description="Weight of the KL penalty to the reference policy.",
    )
    num_ppo_epochs: int = Field(
        title="PPO passes per batch",
        default=4,
        ge=1,
        le=100,
        description="Optimisation passes over each batch of samples.",
    )
    cliprange: float = Field(
        title="Clip range", default=0.2, gt=0, lt=1, description="PPO's policy ratio clip range."
    )
    vf_coef: float = Field(
        title="Value loss weight", default=0.1, gt=0, le=10, description="Weight of the value loss."
    )

    @model_validator(mode="after")
    def _full_value_model(self) -> PPOHyperparameters:
        if self.load_in_4bit:
            # Its value model trains every weight, which a 4-bit model cannot.
            raise ValueError("PPO trains a full value model, which cannot load in 4 bits")
        return self


class GroupSamplingHyperparameters(OnlineHyperparameters):
    """What RLOO and GRPO share: several completions per prompt, each judged against its group."""

    num_generations: int = Field(
        title="Completions per prompt",
        default=4,
        ge=2,
        le=256,
        description="Completions per prompt; each one is judged against its group (RLOO: the "
        "mean of the others' rewards; GRPO: the group's mean and spread).",
    )
    use_vllm: bool | None = Field(
        title="Sample with vLLM",
        default=None,
        description="Sample completions through vLLM colocated on the training GPU (CUDA "
        "workers with the vllm extra); None: vLLM where the worker has it, transformers' "
        "generate otherwise. The run records which.",
    )

    @model_validator(mode="after")
    def _whole_groups(self) -> GroupSamplingHyperparameters:
        if self.batch_size is not None:
            batch = self.batch_size * (self.gradient_accumulation_steps or 1)
            if batch % self.num_generations:
                raise ValueError(
                    f"batch_size x gradient_accumulation_steps ({batch}) must be a multiple of "
                    f"num_generations ({self.num_generations}): each prompt's completions "
                    "are scored together"
                )
        return self


class RLOOHyperparameters(GroupSamplingHyperparameters):
    """REINFORCE leave-one-out against a reward model (TRL's RLOOTrainer)."""

    beta: float = Field(
        title="KL penalty weight",
        default=0.05,
        ge=0,
        le=10,
        description="Weight of the KL penalty to the reference policy.",
    )


# The Python reward functions a GRPO run may add to its reward model, by name. They live in
# worker/training/rewards.py (which imports torch's world); the web app knows only these names
# and what they do, and tests/worker/test_rewards.py checks the two lists agree.
REWARD_FUNCTIONS: dict[str, str] = {
    "length_penalty": "minus the share of the longest completion used: favours short answers",
    "think_format": "1 when the completion reasons inside <think>...</think> and then answers, "
    "else 0 (TRL's think_format_reward)",
}


class GRPOHyperparameters(GroupSamplingHyperparameters):
    """Group relative policy optimisation against a reward model (TRL's GRPOTrainer), with
    Python reward functions added by name if asked for."""

    beta: float = Field(
        title="KL penalty weight",
        default=0.0,
        ge=0,
        le=10,
        description="Weight of the KL penalty to the reference policy; 0 (TRL's default) "
        "loads no reference model.",
    )
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = Field(
        title="Loss",
        default="dapo",
        description="How token losses are averaged: dapo (TRL's default: over the active tokens "
        "of the whole accumulated batch), grpo (each completion over its own length, which "
        "biases towards short good and long bad answers), dr_grpo (over a constant, the "
        "longest completion), bnpo (over the active tokens of each device's batch).",
    )
    reward_functions: list[Text] = Field(
        title="Python reward functions",
        default=[],
        max_length=len(REWARD_FUNCTIONS),
        description="Reward functions added to the reward model's score, by name: "
        + "; ".join(f"{name} ({what})" for name, what in REWARD_FUNCTIONS.items())
        + ".",
    )
    reward_weights: list[Annotated[float, Field(ge=-1000, le=1000)]] | None = Field(
        title="Reward weights",
        default=None,
        min_length=1,
        max_length=1 + len(REWARD_FUNCTIONS),
        description="One weight per reward, the reward model's first, then each function's in "
        "the order given; None weighs each 1.",
    )

    @field_validator("reward_functions")
    @classmethod
    def _known_rewards(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in REWARD_FUNCTIONS]
        if unknown:
            raise ValueError(
                f"unknown reward function {unknown[0][:40]!r}; choose from "
                f"{', '.join(REWARD_FUNCTIONS)}"
            )
        if len(set(names)) != len(names):
            raise ValueError("each reward function may be named once")
        return names

    @field_validator("reward_weights")
    @classmethod
    def _one_weight_per_reward(
        cls, weights: list[float] | None, info: ValidationInfo
    ) -> list[float] | None:
        # Absent when the names were refused: that refusal says enough.
        names = info.data.get("reward_functions")
        if weights is not None and names is not None and len(weights) != 1 + len(names):
            raise ValueError(
                f"needs {1 + len(names)} weights (the reward model's, then one per reward "
                f"function), not {len(weights)}"
            )
        return weights


HYPERPARAMETERS: dict[str, type[TrainingHyperparameters]] = {
    "sft": SFTHyperparameters,
    "reward": RewardHyperparameters,
    "dpo": DPOHyperparameters,
    "ppo": PPOHyperparameters,
    "rloo": RLOOHyperparameters,
    "grpo": GRPOHyperparameters,
}

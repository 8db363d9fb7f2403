"""What RLOO and GRPO jobs share: both sample groups of completions from a policy for the
prompts of a snapshot, score them with a registered reward model and end with the same
held-out comparison of the trained policy against its start. Each job builds its own TRL
config and trainer between `prepare` and `finish`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.schemas.runs import GRPOHyperparameters, RLOOHyperparameters
from worker.jobs.context import JobContext, JobResult
from worker.training.arguments import (
    adapter_saving,
    is_main_process,
    lora_config,
    resume_checkpoint,
    save_model,
    trainer_arguments,
)
from worker.training.callbacks import ProgressCallback
from worker.training.data import load_split
from worker.training.defaults import (
    loading_arguments,
    pick_model_loading,
    pick_settings,
    record_loading,
)
from worker.training.errors import JobInputError
from worker.training.evaluation import compare_policies
from worker.training.generation import (
    pick_generation_backend,
    record_backend,
    trl_vllm_arguments,
)
from worker.training.loading import load_policy, load_reward_model, load_tokenizer, parameter_count

OnlineHyperparameters = RLOOHyperparameters | GRPOHyperparameters


@dataclass
class OnlineRun:
    """Everything loaded and decided before the job's trainer is built."""

    hyperparameters: OnlineHyperparameters
    load: dict[str, Any]
    resume: str | None
    tokenizer: Any
    reward_tokenizer: Any
    policy: Any
    reward_model: Any
    train: Any
    test: Any
    settings: dict[str, Any]
    backend: str

    def config_arguments(self, ctx: JobContext) -> dict[str, Any]:
        """The TRL config's arguments both kinds take; each adds its own."""
        hyperparameters = self.hyperparameters
        return {
            **trainer_arguments(self.settings, hyperparameters, ctx.checkpoint_dir),
            **trl_vllm_arguments(self.backend),
            "num_generations": hyperparameters.num_generations,
            "max_completion_length": hyperparameters.max_completion_length,
            "temperature": hyperparameters.temperature,
            "beta": hyperparameters.beta,
        }

    def trainer_arguments(self, progress: ProgressCallback) -> dict[str, Any]:
        """The trainer's arguments both kinds take (their reward functions differ)."""
        return {
            "model": self.policy,
            "train_dataset": self.train,
            "processing_class": self.tokenizer,
            "peft_config": lora_config(self.hyperparameters.lora, "CAUSAL_LM"),
            "callbacks": [progress],
        }


def prepare(
    ctx: JobContext, hyperparameters: OnlineHyperparameters, kind: str, name: str
) -> OnlineRun:
    """Loads the policy, the reward model and the prompts, and picks the settings."""
    from transformers import set_seed

    # Refused here, before anything loads, when this worker cannot run them.
    loading = pick_model_loading(
        ctx.device,
        hyperparameters.torch_dtype,
        hyperparameters.attn_implementation,
        hyperparameters.load_in_4bit,
    )
    # vLLM colocated where the worker has it (worker/training/generation.py).
    backend = pick_generation_backend(ctx.device, hyperparameters.use_vllm)
    load = loading_arguments(loading)
    set_seed(hyperparameters.seed)
    resume = resume_checkpoint(ctx.resume_from)
    if ctx.reward_model_path is None:
        raise JobInputError(f"{name} needs a reward model")
    tokenizer = load_tokenizer(ctx.base_model_path)
    reward_tokenizer = load_tokenizer(ctx.reward_model_path)
    policy = load_policy(ctx.base_model_path, **load)
    reward_model = load_reward_model(
        ctx.reward_model_path, pad_token_id=reward_tokenizer.pad_token_id, **load
    )
    train = load_split(ctx.snapshot_path, "train", "prompts")
    test = load_split(ctx.snapshot_path, "test", "prompts", required=False)

    settings = pick_settings(
        kind, ctx.device, parameter_count(policy), hyperparameters.model_dump()
    )
    record_loading(settings, loading)
    record_backend(settings, backend)
    generations = hyperparameters.num_generations
    if hyperparameters.batch_size is None and settings["batch_size"] % generations:
        # Each prompt's completions must land in one batch: round up to whole groups.
        settings["batch_size"] = generations * math.ceil(settings["batch_size"] / generations)
        settings["reasons"]["batch_size"] = f"whole groups of {generations} completions"
    del settings["max_length"], settings["reasons"]["max_length"]
    settings |= {
        "num_generations": generations,
        "beta": hyperparameters.beta,
        "max_completion_length": hyperparameters.max_completion_length,
        "temperature": hyperparameters.temperature,
    }
    return OnlineRun(
        hyperparameters=hyperparameters,
        load=load,
        resume=resume,
        tokenizer=tokenizer,
        reward_tokenizer=reward_tokenizer,
        policy=policy,
        reward_model=reward_model,
        train=train,
        test=test,
        settings=settings,
        backend=backend[0],
    )


def finish(
    ctx: JobContext, run: OnlineRun, trainer: Any, progress: ProgressCallback, name: str
) -> JobResult:
    """Trains, saves the policy and compares it with its start on the held-out prompts."""
    hyperparameters = run.hyperparameters
    merge = adapter_saving(run.settings, hyperparameters.lora)
    ctx.log(
        f"{name} on {len(run.train)} prompts ({len(run.test)} held out), settings {run.settings}"
    )
    trainer.train(resume_from_checkpoint=run.resume)
    if progress.stopped:
        return JobResult({}, ctx.output_dir, "policy", run.settings, stopped=True)

    save_model(
        trainer.model, run.tokenizer, ctx.output_dir, ctx.base_model_path, merge_adapter=merge
    )
    metrics: dict[str, float] = {}
    if len(run.test) and is_main_process():
        # Rank 0 alone in a process group: its result is the run's (worker/launch.py), and
        # sampling from the saved policies takes no collective.
        device = run.reward_model.device
        metrics = compare_policies(
            load_policy(ctx.output_dir, **run.load).to(device),
            load_policy(ctx.base_model_path, **run.load).to(device),
            run.reward_model,
            run.tokenizer,
            run.reward_tokenizer,
            list(run.test["prompt"]),
            max_new_tokens=hyperparameters.max_completion_length,
            temperature=hyperparameters.temperature,
            seed=hyperparameters.seed,
        )
    elif not len(run.test):
        ctx.log("the snapshot's test split is empty: no held-out reward or win rate")
    return JobResult(metrics, ctx.output_dir, "policy", run.settings)

"""REINFORCE leave-one-out against a reward model on a prompts snapshot, with TRL's RLOOTrainer.

For each prompt the policy samples `num_generations` completions; the reward model scores them,
and each completion's advantage is its score minus the mean of its siblings'. A KL penalty
(beta) holds the policy near its starting point. At the end, on the held-out prompts: the mean
reward-model score of the trained policy, of the starting one, and the win rate between them.
"""

from __future__ import annotations

import math

from app.schemas.runs import RLOOHyperparameters
from worker.jobs.context import JobContext, JobResult
from worker.training.arguments import (
    adapter_saving,
    is_main_process,
    lora_config,
    parse_hyperparameters,
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


def run(ctx: JobContext) -> JobResult:
    from transformers import set_seed
    from trl import RLOOConfig, RLOOTrainer

    hyperparameters = parse_hyperparameters(RLOOHyperparameters, ctx.hyperparameters)
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
        raise JobInputError("RLOO needs a reward model")
    tokenizer = load_tokenizer(ctx.base_model_path)
    reward_tokenizer = load_tokenizer(ctx.reward_model_path)
    policy = load_policy(ctx.base_model_path, **load)
    reward_model = load_reward_model(
        ctx.reward_model_path, pad_token_id=reward_tokenizer.pad_token_id, **load
    )
    train = load_split(ctx.snapshot_path, "train", "prompts")
    test = load_split(ctx.snapshot_path, "test", "prompts", required=False)

    settings = pick_settings(
        "rloo", ctx.device, parameter_count(policy), hyperparameters.model_dump()
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
    args = RLOOConfig(
        **trainer_arguments(settings, hyperparameters, ctx.checkpoint_dir),
        **trl_vllm_arguments(backend[0]),
        num_generations=generations,
        max_completion_length=hyperparameters.max_completion_length,
        temperature=hyperparameters.temperature,
        beta=hyperparameters.beta,
    )
    progress = ProgressCallback(ctx.report, ctx.should_stop, ctx.device)
    trainer = RLOOTrainer(
        model=policy,
        reward_funcs=reward_model,
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        reward_processing_classes=reward_tokenizer,
        peft_config=lora_config(hyperparameters.lora, "CAUSAL_LM"),
        callbacks=[progress],
    )
    merge = adapter_saving(settings, hyperparameters.lora)
    ctx.log(f"RLOO on {len(train)} prompts ({len(test)} held out), settings {settings}")
    trainer.train(resume_from_checkpoint=resume)
    if progress.stopped:
        return JobResult({}, ctx.output_dir, "policy", settings, stopped=True)

    save_model(trainer.model, tokenizer, ctx.output_dir, ctx.base_model_path, merge_adapter=merge)
    metrics: dict[str, float] = {}
    if len(test) and is_main_process():
        # Rank 0 alone in a process group: its result is the run's (worker/launch.py), and
        # sampling from the saved policies takes no collective.
        metrics = compare_policies(
            load_policy(ctx.output_dir, **load).to(reward_model.device),
            load_policy(ctx.base_model_path, **load).to(reward_model.device),
            reward_model,
            tokenizer,
            reward_tokenizer,
            list(test["prompt"]),
            max_new_tokens=hyperparameters.max_completion_length,
            temperature=hyperparameters.temperature,
            seed=hyperparameters.seed,
        )
    elif not len(test):
        ctx.log("the snapshot's test split is empty: no held-out reward or win rate")
    return JobResult(metrics, ctx.output_dir, "policy", settings)

"""PPO against a reward model on a prompts snapshot, with TRL 1.12's PPOTrainer (kept in
worker/training/ppo: TRL 1.13 removed it).

Four models: the policy being trained, a frozen copy of it as the reference for the KL
penalty, the frozen reward model that scores completions, and a value model (started from the
reward model, trained alongside the policy) that estimates returns for the advantages. PPO
feeds the policy's tokens straight to the reward model, so both must share a tokenizer.

PPOTrainer has its own loop, which neither honours a stop request nor resumes from a
checkpoint, so this job does both itself: a cancel saves a complete checkpoint (the policy, the
value model beside it, the optimizer) and ends the loop; a resume loads those back, and runs the
remaining steps with the learning rate continuing its linear decay where it stopped. At the end,
on the held-out prompts: mean reward-model score of the trained and of the starting policy, and
the win rate between them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.schemas.runs import PPOHyperparameters
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
from worker.training.callbacks import ProgressCallback, TrainingStopped
from worker.training.data import load_split
from worker.training.defaults import (
    loading_arguments,
    pick_model_loading,
    pick_settings,
    record_loading,
)
from worker.training.errors import JobInputError
from worker.training.evaluation import compare_policies
from worker.training.loading import load_policy, load_reward_model, load_tokenizer, parameter_count

VALUE_MODEL = "value_model"


def run(ctx: JobContext) -> JobResult:
    import torch
    from transformers import TrainerCallback, set_seed

    from worker.training.ppo import PPOConfig, PPOTrainer

    hyperparameters = parse_hyperparameters(PPOHyperparameters, ctx.hyperparameters)
    # Refused here, before anything loads, when this worker cannot run them.
    loading = pick_model_loading(
        ctx.device,
        hyperparameters.torch_dtype,
        hyperparameters.attn_implementation,
        hyperparameters.load_in_4bit,
    )
    load = loading_arguments(loading)
    set_seed(hyperparameters.seed)
    resume = resume_checkpoint(ctx.resume_from)
    if ctx.reward_model_path is None:
        raise JobInputError("PPO needs a reward model")
    if resume is not None and hyperparameters.lora is not None:
        # Its checkpoints hold the adapters alone, not a policy this job can load back.
        raise JobInputError("a PPO run with LoRA adapters cannot resume; start it afresh")
    tokenizer = load_tokenizer(ctx.base_model_path)
    if load_tokenizer(ctx.reward_model_path).get_vocab() != tokenizer.get_vocab():
        raise JobInputError(
            "PPO scores the policy's tokens directly: the reward model must share the "
            "policy's tokenizer"
        )
    # Prompts are padded on the left, so every completion starts at the same position.
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id
    if resume is None:
        policy = load_policy(ctx.base_model_path, **load)
        value_model = load_reward_model(ctx.reward_model_path, pad_token_id=pad, **load)
        done = 0
    else:
        policy = load_policy(Path(resume), **load)
        value_model = load_reward_model(Path(resume) / VALUE_MODEL, pad_token_id=pad, **load)
        done = int(Path(resume).name.removeprefix("checkpoint-"))
    reference = load_policy(ctx.base_model_path, **load)
    reward_model = load_reward_model(ctx.reward_model_path, pad_token_id=pad, **load)
    train = tokenized(load_split(ctx.snapshot_path, "train", "prompts"), tokenizer)
    test_prompts = load_split(ctx.snapshot_path, "test", "prompts", required=False)

    settings = pick_settings(
        "ppo", ctx.device, parameter_count(policy), hyperparameters.model_dump()
    )
    record_loading(settings, loading)
    del settings["max_length"], settings["reasons"]["max_length"]
    settings |= {
        key: getattr(hyperparameters, key)
        for key in ("kl_coef", "num_ppo_epochs", "cliprange", "vf_coef", "max_completion_length")
    }
    settings["temperature"] = hyperparameters.temperature
    arguments = trainer_arguments(settings, hyperparameters, ctx.checkpoint_dir)
    # Prompts per step: each process of a group (worker/launch.py) samples its own batch. Its
    # size is torchrun's WORLD_SIZE: accelerate's PartialState, asked before the trainer's
    # arguments set it up for the CPU, answers 1.
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    rollout = settings["batch_size"] * settings["gradient_accumulation_steps"] * processes
    total_steps = arguments.pop("max_steps", None) or max(
        1, int(arguments.pop("num_train_epochs") * len(train)) // rollout
    )
    if done >= total_steps:
        raise JobInputError(f"checkpoint {resume} is already at the last step ({total_steps})")
    remaining = total_steps - done
    # Linear decay over the whole run: a resumed run starts where the decay had got to.
    arguments["learning_rate"] = settings["learning_rate"] * remaining / total_steps
    args = PPOConfig(
        **arguments,
        total_episodes=remaining * rollout,
        num_mini_batches=1,
        response_length=hyperparameters.max_completion_length,
        temperature=hyperparameters.temperature,
        stop_token="eos",
        kl_coef=hyperparameters.kl_coef,
        num_ppo_epochs=hyperparameters.num_ppo_epochs,
        cliprange=hyperparameters.cliprange,
        vf_coef=hyperparameters.vf_coef,
        num_sample_generations=0,
    )

    class SaveValueModel(TrainerCallback):
        """The value model beside the policy in every checkpoint, before its marker."""

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            # In a process group every rank holds the same value model: rank 0 writes it.
            if state.is_world_process_zero:
                folder = ctx.checkpoint_dir / f"checkpoint-{state.global_step}"
                value_model.save_pretrained(folder / VALUE_MODEL, safe_serialization=True)

    progress = ProgressCallback(
        ctx.report, ctx.should_stop, ctx.device, raise_when_stopped=True, start_step=done
    )
    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=None if hyperparameters.lora else reference,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=train,
        eval_dataset=train,
        peft_config=lora_config(hyperparameters.lora, "CAUSAL_LM"),
        callbacks=[SaveValueModel(), progress],
    )
    if resume is not None:
        state = torch.load(Path(resume) / "optimizer.pt", map_location="cpu", weights_only=True)
        trainer.optimizer.load_state_dict(state)
    merge = adapter_saving(settings, hyperparameters.lora)
    ctx.log(f"PPO on {len(train)} prompts ({len(test_prompts)} held out), settings {settings}")
    try:
        trainer.train()
    except TrainingStopped:
        return JobResult({}, ctx.output_dir, "policy", settings, stopped=True)

    # Saved for training as well as for generating: the trainers after this one pad right.
    tokenizer.padding_side = "right"
    save_model(
        trainer.policy_model, tokenizer, ctx.output_dir, ctx.base_model_path, merge_adapter=merge
    )
    metrics: dict[str, float] = {}
    if len(test_prompts) and is_main_process():
        # Rank 0 alone in a process group: its result is the run's (worker/launch.py), and
        # sampling from the saved policies takes no collective.
        metrics = compare_policies(
            load_policy(ctx.output_dir, **load).to(reward_model.device),
            reference.to(reward_model.device),
            reward_model,
            tokenizer,
            tokenizer,
            list(test_prompts["prompt"]),
            max_new_tokens=hyperparameters.max_completion_length,
            temperature=hyperparameters.temperature,
            seed=hyperparameters.seed,
        )
    elif not len(test_prompts):
        ctx.log("the snapshot's test split is empty: no held-out reward or win rate")
    return JobResult(metrics, ctx.output_dir, "policy", settings)


def tokenized(prompts: Any, tokenizer: Any) -> Any:
    """PPOTrainer takes prompts as token ids, the chat template's generation prompt included."""

    def encode(row: dict[str, Any]) -> dict[str, list[int]]:
        ids = tokenizer.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        return {"input_ids": ids}

    return prompts.map(encode, remove_columns=prompts.column_names)

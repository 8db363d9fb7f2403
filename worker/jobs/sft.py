"""Supervised fine-tuning on an SFT snapshot, with TRL's SFTTrainer.

Reads like TRL's own sft script: load the policy and tokenizer, the snapshot's splits, pick
settings for the device, train (resuming from a complete checkpoint when given one), evaluate
on the test split (loss and perplexity), save. A cancel stops at the next step with a checkpoint
saved, and nothing is written to the output folder.
"""

from __future__ import annotations

import math

from app.schemas.runs import SFTHyperparameters
from worker.jobs.context import JobContext, JobResult
from worker.training.arguments import (
    adapter_saving,
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
from worker.training.loading import load_policy, load_tokenizer_with_template, parameter_count
from worker.training.templates import fit_model_to_tokenizer


def run(ctx: JobContext) -> JobResult:
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    hyperparameters = parse_hyperparameters(SFTHyperparameters, ctx.hyperparameters)
    # Refused here, before anything loads, when this worker cannot run them.
    loading = pick_model_loading(
        ctx.device,
        hyperparameters.torch_dtype,
        hyperparameters.attn_implementation,
        hyperparameters.load_in_4bit,
    )
    load = loading_arguments(loading)
    # The seed first: LoRA adapters and data order draw from it.
    set_seed(hyperparameters.seed)
    resume = resume_checkpoint(ctx.resume_from)
    tokenizer, templated = load_tokenizer_with_template(
        ctx.base_model_path, hyperparameters.chat_template
    )
    model = load_policy(ctx.base_model_path, **load)
    if templated:
        # A base model without a chat template: the run's, with its tokens (templates.py).
        fit_model_to_tokenizer(model, tokenizer)
    train = load_split(ctx.snapshot_path, "train", "sft")
    test = load_split(ctx.snapshot_path, "test", "sft", required=False)

    settings = pick_settings(
        "sft",
        ctx.device,
        parameter_count(model),
        hyperparameters.model_dump(),
        max_positions=model.config.max_position_embeddings,
    )
    record_loading(settings, loading)
    settings["packing"] = hyperparameters.packing
    if templated:
        settings["chat_template"] = hyperparameters.chat_template
        settings["reasons"]["chat_template"] = "the base model's tokenizer has none"
    args = SFTConfig(
        **trainer_arguments(settings, hyperparameters, ctx.checkpoint_dir),
        max_length=settings["max_length"],
        # Packing is padding-free: examples laid end to end, kept apart by position ids.
        packing=hyperparameters.packing,
        padding_free=hyperparameters.packing,
    )
    progress = ProgressCallback(ctx.report, ctx.should_stop, ctx.device)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test if len(test) else None,
        processing_class=tokenizer,
        peft_config=lora_config(hyperparameters.lora, "CAUSAL_LM"),
        callbacks=[progress],
    )
    merge = adapter_saving(settings, hyperparameters.lora, templated)
    ctx.log(f"SFT on {len(train)} rows ({len(test)} held out), settings {settings}")
    outcome = trainer.train(resume_from_checkpoint=resume)
    if progress.stopped:
        return JobResult({}, ctx.output_dir, "policy", settings, stopped=True)

    metrics = {"train_loss": float(outcome.training_loss)}
    if len(test):
        eval_loss = float(trainer.evaluate()["eval_loss"])
        metrics |= {"eval_loss": eval_loss, "perplexity": math.exp(min(eval_loss, 50.0))}
    else:
        ctx.log("the snapshot's test split is empty: no held-out loss")
    save_model(trainer.model, tokenizer, ctx.output_dir, ctx.base_model_path, merge_adapter=merge)
    return JobResult(metrics, ctx.output_dir, "policy", settings)

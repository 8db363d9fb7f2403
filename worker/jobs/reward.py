"""A reward model on a preference snapshot, with TRL's RewardTrainer.

The policy's folder loads as a one-output sequence classifier (a fresh score head on its
body) and learns, with the Bradley-Terry loss -log sigmoid(r_chosen - r_rejected), to score
chosen responses above rejected ones; with `use_margin` each pair's score difference is
subtracted inside the sigmoid. At the end: accuracy (the share of held-out pairs whose chosen
response scores higher) and mean margin on the snapshot's test split.
"""

from __future__ import annotations

from app.schemas.runs import RewardHyperparameters
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
from worker.training.loading import (
    load_reward_model,
    load_tokenizer_with_template,
    parameter_count,
)
from worker.training.templates import fit_model_to_tokenizer


def run(ctx: JobContext) -> JobResult:
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    hyperparameters = parse_hyperparameters(RewardHyperparameters, ctx.hyperparameters)
    # Refused here, before anything loads, when this worker cannot run them.
    loading = pick_model_loading(
        ctx.device,
        hyperparameters.torch_dtype,
        hyperparameters.attn_implementation,
        hyperparameters.load_in_4bit,
    )
    load = loading_arguments(loading)
    # The seed first: a reward model's new score head is drawn while loading.
    set_seed(hyperparameters.seed)
    resume = resume_checkpoint(ctx.resume_from)
    tokenizer, templated = load_tokenizer_with_template(
        ctx.base_model_path, hyperparameters.chat_template
    )
    model = load_reward_model(ctx.base_model_path, pad_token_id=tokenizer.pad_token_id, **load)
    if templated:
        # A base model without a chat template: the run's, with its tokens (templates.py).
        fit_model_to_tokenizer(model, tokenizer)
    margin = hyperparameters.use_margin
    train = load_split(ctx.snapshot_path, "train", "preference", with_margin=margin)
    test = load_split(ctx.snapshot_path, "test", "preference", with_margin=margin, required=False)

    settings = pick_settings(
        "reward",
        ctx.device,
        parameter_count(model),
        hyperparameters.model_dump(),
        max_positions=model.config.max_position_embeddings,
    )
    record_loading(settings, loading)
    settings["use_margin"] = margin
    if templated:
        settings["chat_template"] = hyperparameters.chat_template
        settings["reasons"]["chat_template"] = "the base model's tokenizer has none"
    args = RewardConfig(
        **trainer_arguments(settings, hyperparameters, ctx.checkpoint_dir),
        max_length=settings["max_length"],
        center_rewards_coefficient=hyperparameters.center_rewards_coefficient,
    )
    progress = ProgressCallback(ctx.report, ctx.should_stop, ctx.device)
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test if len(test) else None,
        processing_class=tokenizer,
        peft_config=lora_config(hyperparameters.lora, "SEQ_CLS"),
        callbacks=[progress],
    )
    merge = adapter_saving(settings, hyperparameters.lora, templated)
    ctx.log(f"reward model on {len(train)} pairs ({len(test)} held out), settings {settings}")
    outcome = trainer.train(resume_from_checkpoint=resume)
    if progress.stopped:
        return JobResult({}, ctx.output_dir, "reward", settings, stopped=True)

    metrics = {"train_loss": float(outcome.training_loss)}
    if len(test):
        evaluation = trainer.evaluate()
        metrics |= {
            "eval_loss": float(evaluation["eval_loss"]),
            "accuracy": float(evaluation["eval_accuracy"]),
            "margin": float(evaluation["eval_margin"]),
        }
    else:
        ctx.log("the snapshot's test split is empty: no held-out accuracy")
    save_model(trainer.model, tokenizer, ctx.output_dir, ctx.base_model_path, merge_adapter=merge)
    return JobResult(metrics, ctx.output_dir, "reward", settings)

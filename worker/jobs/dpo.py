"""Direct preference optimisation of a policy on a preference snapshot, with TRL's DPOTrainer.

The starting policy is also the frozen reference (TRL copies it; with LoRA the adapters are
switched off instead). Each pair's implicit reward is beta times the change in the chosen and
rejected log-likelihoods against the reference; with `sft_weight` the chosen answers' own
negative log-likelihood is added to the loss (RPO). At the end, on the test split: the implicit
reward accuracy (the share of pairs whose chosen response gained more) and margin.
"""

from __future__ import annotations

from app.schemas.runs import DPOHyperparameters
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
from worker.training.loading import load_policy, load_tokenizer, parameter_count


def run(ctx: JobContext) -> JobResult:
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    hyperparameters = parse_hyperparameters(DPOHyperparameters, ctx.hyperparameters)
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
    tokenizer = load_tokenizer(ctx.base_model_path)
    model = load_policy(ctx.base_model_path, **load)
    train = load_split(ctx.snapshot_path, "train", "preference")
    test = load_split(ctx.snapshot_path, "test", "preference", required=False)

    settings = pick_settings(
        "dpo",
        ctx.device,
        parameter_count(model),
        hyperparameters.model_dump(),
        max_positions=model.config.max_position_embeddings,
    )
    record_loading(settings, loading)
    settings |= {
        "beta": hyperparameters.beta,
        "loss_type": hyperparameters.loss_type,
        "sft_weight": hyperparameters.sft_weight,
    }
    # RPO: TRL's "sft" loss (the chosen answers' negative log-likelihood) beside the
    # preference loss, weighted.
    losses, weights = [hyperparameters.loss_type], [1.0]
    if hyperparameters.sft_weight > 0:
        losses.append("sft")
        weights.append(hyperparameters.sft_weight)
    args = DPOConfig(
        **trainer_arguments(settings, hyperparameters, ctx.checkpoint_dir),
        max_length=settings["max_length"],
        beta=hyperparameters.beta,
        loss_type=losses,
        loss_weights=weights,
    )
    progress = ProgressCallback(ctx.report, ctx.should_stop, ctx.device)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test if len(test) else None,
        processing_class=tokenizer,
        peft_config=lora_config(hyperparameters.lora, "CAUSAL_LM"),
        callbacks=[progress],
    )
    merge = adapter_saving(settings, hyperparameters.lora)
    ctx.log(f"DPO on {len(train)} pairs ({len(test)} held out), settings {settings}")
    outcome = trainer.train(resume_from_checkpoint=resume)
    if progress.stopped:
        return JobResult({}, ctx.output_dir, "policy", settings, stopped=True)

    metrics = {"train_loss": float(outcome.training_loss)}
    if len(test):
        evaluation = trainer.evaluate()
        metrics |= {
            "eval_loss": float(evaluation["eval_loss"]),
            "reward_accuracy": float(evaluation["eval_rewards/accuracies"]),
            "reward_margin": float(evaluation["eval_rewards/margins"]),
        }
    else:
        ctx.log("the snapshot's test split is empty: no held-out reward accuracy")
    save_model(trainer.model, tokenizer, ctx.output_dir, ctx.base_model_path, merge_adapter=merge)
    return JobResult(metrics, ctx.output_dir, "policy", settings)

"""REINFORCE leave-one-out against a reward model on a prompts snapshot, with TRL's RLOOTrainer.

For each prompt the policy samples `num_generations` completions; the reward model scores them,
and each completion's advantage is its score minus the mean of its siblings'. A KL penalty
(beta) holds the policy near its starting point. At the end, on the held-out prompts: the mean
reward-model score of the trained policy, of the starting one, and the win rate between them.
"""

from __future__ import annotations

from app.schemas.runs import RLOOHyperparameters
from worker.jobs.context import JobContext, JobResult
from worker.training import online
from worker.training.arguments import parse_hyperparameters
from worker.training.callbacks import ProgressCallback


def run(ctx: JobContext) -> JobResult:
    from trl import RLOOConfig, RLOOTrainer

    hyperparameters = parse_hyperparameters(RLOOHyperparameters, ctx.hyperparameters)
    prepared = online.prepare(ctx, hyperparameters, "rloo", "RLOO")
    progress = ProgressCallback(ctx.report, ctx.should_stop, ctx.device)
    trainer = RLOOTrainer(
        **prepared.trainer_arguments(progress),
        reward_funcs=prepared.reward_model,
        args=RLOOConfig(**prepared.config_arguments(ctx)),
        reward_processing_classes=prepared.reward_tokenizer,
    )
    return online.finish(ctx, prepared, trainer, progress, "RLOO")

"""Group relative policy optimisation on a prompts snapshot, with TRL's GRPOTrainer.

For each prompt the policy samples `num_generations` completions. Each completion's reward is
the registered reward model's score plus, when the run names them, Python reward functions
(worker/training/rewards.py: a length penalty, a format check), weighted by `reward_weights`;
its advantage is its reward against its group's mean, divided by the group's spread. A KL
penalty (beta, 0 by default as in TRL) can hold the policy near its start. At the end, on the
held-out prompts: the reward model's mean score of the trained policy, of the starting one,
and the win rate between them.
"""

from __future__ import annotations

from app.schemas.runs import GRPOHyperparameters
from worker.jobs.context import JobContext, JobResult
from worker.training import online
from worker.training.arguments import parse_hyperparameters
from worker.training.callbacks import ProgressCallback
from worker.training.rewards import build_reward_functions


def run(ctx: JobContext) -> JobResult:
    from trl import GRPOConfig, GRPOTrainer

    hyperparameters = parse_hyperparameters(GRPOHyperparameters, ctx.hyperparameters)
    prepared = online.prepare(ctx, hyperparameters, "grpo", "GRPO")
    reward_functions = build_reward_functions(hyperparameters)
    prepared.settings |= {
        "loss_type": hyperparameters.loss_type,
        "reward_functions": hyperparameters.reward_functions,
        "reward_weights": hyperparameters.reward_weights,
    }
    progress = ProgressCallback(ctx.report, ctx.should_stop, ctx.device)
    trainer = GRPOTrainer(
        **prepared.trainer_arguments(progress),
        reward_funcs=[prepared.reward_model, *reward_functions],
        args=GRPOConfig(
            **prepared.config_arguments(ctx),
            loss_type=hyperparameters.loss_type,
            reward_weights=hyperparameters.reward_weights,
        ),
        # One per reward: the reward model's tokenizer; functions take text and need none.
        reward_processing_classes=[prepared.reward_tokenizer, *(None for _ in reward_functions)],
    )
    return online.finish(ctx, prepared, trainer, progress, "GRPO")

"""Reward functions written in Python that a GRPO run adds to its reward model, by name.

Each entry builds a function in the shape TRL's GRPOTrainer calls (`prompts`, `completions`,
`completion_ids` and the dataset's other columns as keyword arguments, one float per
completion) from the run's hyperparameters. TRL logs each one's mean and spread under
`rewards/<name>/`, which is why every built function carries its registered name.

The web app validates names against app.schemas.runs.REWARD_FUNCTIONS, which says in words what
each does without importing this module; tests/worker/test_rewards.py checks the two agree.
To add one: register a builder here and describe it there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.schemas.runs import GRPOHyperparameters

RewardFunction = Callable[..., list[float]]
Builder = Callable[[GRPOHyperparameters], RewardFunction]

REGISTRY: dict[str, Builder] = {}


def registered(name: str) -> Callable[[Builder], Builder]:
    def register(builder: Builder) -> Builder:
        REGISTRY[name] = builder
        return builder

    return register


def build_reward_functions(hyperparameters: GRPOHyperparameters) -> list[RewardFunction]:
    """The run's reward functions, in the order it named them."""
    functions = []
    for name in hyperparameters.reward_functions:
        function = REGISTRY[name](hyperparameters)
        function.__name__ = name
        functions.append(function)
    return functions


def completion_text(completion: Any) -> str:
    """A completion's text: conversational completions are one assistant message."""
    return completion if isinstance(completion, str) else completion[0]["content"]


@registered("length_penalty")
def length_penalty(hyperparameters: GRPOHyperparameters) -> RewardFunction:
    longest = hyperparameters.max_completion_length

    def reward(completion_ids: list[list[int]], **_: Any) -> list[float]:
        # In [-1, 0]: 0 for an empty completion, -1 for one cut off at the longest allowed.
        return [-len(ids) / longest for ids in completion_ids]

    return reward


@registered("think_format")
def think_format(hyperparameters: GRPOHyperparameters) -> RewardFunction:
    from trl.rewards import think_format_reward

    def reward(completions: list[Any], **_: Any) -> list[float]:
        as_messages = [[{"content": completion_text(completion)}] for completion in completions]
        return think_format_reward(as_messages)

    return reward

"""worker/training/rewards.py: the Python reward functions a GRPO run names, and the names the
web app validates against without importing them (app.schemas.runs.REWARD_FUNCTIONS)."""

from __future__ import annotations

from app.schemas.runs import REWARD_FUNCTIONS, GRPOHyperparameters
from worker.training.rewards import REGISTRY, build_reward_functions


def test_the_web_apps_names_are_the_registered_ones() -> None:
    assert list(REGISTRY) == list(REWARD_FUNCTIONS) == ["length_penalty", "think_format"]


def test_built_functions_carry_their_names_in_the_order_given() -> None:
    chosen = GRPOHyperparameters(reward_functions=["think_format", "length_penalty"])
    built = build_reward_functions(chosen)
    # TRL logs each under rewards/<__name__>/.
    assert [function.__name__ for function in built] == ["think_format", "length_penalty"]
    assert build_reward_functions(GRPOHyperparameters()) == []


def test_length_penalty_is_the_share_of_the_longest_completion_used() -> None:
    (penalty,) = build_reward_functions(
        GRPOHyperparameters(reward_functions=["length_penalty"], max_completion_length=8)
    )
    completions = [[{"role": "assistant", "content": "x"}]] * 3
    assert penalty(
        prompts=[[]] * 3, completions=completions, completion_ids=[[], [5, 6], list(range(8))]
    ) == [0.0, -0.25, -1.0]


def test_think_format_rewards_reasoning_in_tags_then_an_answer() -> None:
    (check,) = build_reward_functions(GRPOHyperparameters(reward_functions=["think_format"]))
    texts = [
        "<think>\nIt is sunny.\n</think>\nGo outside.",
        "<think>\nIt is sunny.\nGo outside.",
        "Go outside.",
        "<think>a</think> b <think>c</think>",
    ]
    conversational = [[{"role": "assistant", "content": text}] for text in texts]
    assert check(prompts=[], completions=conversational, completion_ids=[]) == [
        1.0,
        0.0,
        0.0,
        0.0,
    ]
    # Plain-text prompts give plain-text completions: the same judgement.
    assert check(prompts=[], completions=texts, completion_ids=[]) == [1.0, 0.0, 0.0, 0.0]

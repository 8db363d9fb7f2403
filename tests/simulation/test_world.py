"""app/simulation/world.py: the synthetic world's words, shared with the worker's rows."""

from __future__ import annotations

import random

from app.simulation import world
from app.simulation.judge import demonstration
from worker.training import synthetic


def test_answers_and_prompts_read_as_the_world_writes_them() -> None:
    assert world.answer("the sea", "calm", "warm") == "The sea is calm and warm."
    assert world.answer("winter", "cold", "grim") == "Winter is cold and grim."
    rng = random.Random(0)
    assert [world.make_prompt(rng) for _ in range(3)] == [
        "What is the old bridge like?",
        "Tell me about a train ride.",
        "Describe the desert.",
    ]


def test_topic_of_finds_the_named_topic_or_none() -> None:
    assert world.topic_of("Describe the old bridge.") == "the old bridge"
    assert world.topic_of("What is a quiet street like?") == "a quiet street"
    assert world.topic_of("Write a haiku.") is None


def test_describe_uses_two_different_words_and_answers_strangers_about_it() -> None:
    rng = random.Random(0)
    assert world.describe(rng, "Describe the old bridge.", world.POSITIVE) == (
        "The old bridge is gentle and pleasant."
    )
    assert world.describe(rng, "Write a haiku.", world.NEGATIVE) == "It is dull and dirty."
    for _ in range(200):
        words = world.describe(rng, "Describe winter.", world.POSITIVE)[len("Winter is ") : -1]
        first, second = words.split(" and ")
        assert first != second and {first, second} <= set(world.POSITIVE)


def test_the_worker_rows_are_built_from_the_same_world() -> None:
    # One definition serves both: the worker's names are the world's objects.
    for name in ("TOPICS", "POSITIVE", "NEGATIVE", "TEMPLATES", "ANSWER"):
        assert getattr(synthetic, name) is getattr(world, name)
    assert not set(world.POSITIVE) & set(world.NEGATIVE)
    # The first synthetic rows stay what the worker tests have always trained on.
    row = synthetic.preference_rows(1)[0]
    assert (row["prompt"], row["chosen"], row["rejected"]) == (
        [{"role": "user", "content": "What is the old bridge like?"}],
        [{"role": "assistant", "content": "The old bridge is bright and warm."}],
        [{"role": "assistant", "content": "The old bridge is rude and dreary."}],
    )


def test_simulated_demonstrations_are_the_worker_sft_rows() -> None:
    """A simulated labeler drawing from the same seed writes exactly the SFT rows the worker
    tests train on, so demo data and test data are one distribution."""
    rows = synthetic.sft_rows(50, seed=7, positive_share=0.5)
    rng = random.Random(7)
    written = []
    for _ in range(50):
        prompt = world.make_prompt(rng)
        written.append([prompt, demonstration(prompt, rng, 0.5)])
    assert [[row["messages"][0]["content"], row["messages"][1]["content"]] for row in rows] == (
        written
    )

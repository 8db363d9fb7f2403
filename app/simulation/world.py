"""The synthetic world's vocabulary: prompts about a topic and one-sentence answers.

Every prompt asks about one of TOPICS ("Tell me about the sea."); every answer describes the
topic with two words ("The sea is calm and warm."). The hidden preference (judge.py) likes
POSITIVE words and dislikes NEGATIVE ones, a rule a tiny model learns from a few hundred
pairs. worker/training/synthetic.py builds its training rows from these definitions, and the
simulated labelers judge and write with them, so both sides speak the same language.

The helpers take a `random.Random` and draw from it in a fixed order: the synthetic rows
depend on that order, so changing it changes every row the worker tests train on."""

from __future__ import annotations

import random

TOPICS = (
    "the sea", "a garden", "the city", "winter", "the library", "a river", "the market",
    "the mountains", "a train ride", "the forest", "a small cafe", "the harbor", "spring",
    "the old bridge", "a school", "the desert", "a festival", "the museum", "a quiet street",
    "the island",
)  # fmt: skip
POSITIVE = (
    "bright", "calm", "kind", "lovely", "warm", "cheerful", "gentle", "peaceful", "friendly",
    "wonderful", "clean", "pleasant",
)  # fmt: skip
NEGATIVE = (
    "dull", "grim", "cold", "noisy", "dirty", "gloomy", "harsh", "dreary", "rude", "awful",
    "bleak", "messy",
)  # fmt: skip
TEMPLATES = ("Tell me about {topic}.", "What is {topic} like?", "Describe {topic}.")
ANSWER = "{Topic} is {first} and {second}."
# The subject of an answer to a prompt that names no topic of this world.
UNKNOWN_TOPIC = "it"


def answer(topic: str, first: str, second: str) -> str:
    """The answer sentence: `answer("the sea", "calm", "warm")` is "The sea is calm and warm."."""
    return ANSWER.format(Topic=topic[0].upper() + topic[1:], first=first, second=second)


def make_prompt(rng: random.Random) -> str:
    """A prompt about a random topic (draws a template, then a topic)."""
    return rng.choice(TEMPLATES).format(topic=rng.choice(TOPICS))


def topic_of(prompt: str) -> str | None:
    """The first topic of TOPICS that the prompt names, or None when it names none."""
    return next((topic for topic in TOPICS if topic in prompt), None)


def describe(rng: random.Random, prompt: str, words: tuple[str, ...]) -> str:
    """An answer to `prompt` with two different words drawn from `words`; a prompt from
    outside this world is answered about "it"."""
    topic = topic_of(prompt) or UNKNOWN_TOPIC
    first, second = rng.sample(words, 2)
    return answer(topic, first, second)


def split_prompts(
    rng: random.Random, selection_topics: int, final_topics: int, held_out_templates: int = 1
) -> tuple[list[str], list[str], list[str]]:
    """The loop's prompts, every template about every topic, in three disjoint sets: the
    selection split (`held_out_templates` prompts about each of `selection_topics` topics),
    the final split (as many about `final_topics` other topics) and training (the rest). The
    two held-out splits share no topic, so a policy chosen on one is measured on subjects it
    was not chosen on; with `held_out_templates` below 3 training still has the held-out topics
    in other words (3: topics training never saw). Draws the topics' order, then each held-out
    topic's templates."""
    if selection_topics < 1 or final_topics < 1:
        raise ValueError("each held-out split needs at least one topic")
    if selection_topics + final_topics > len(TOPICS):
        raise ValueError(
            f"{selection_topics} + {final_topics} held-out topics: the world has {len(TOPICS)}"
        )
    if not 1 <= held_out_templates <= len(TEMPLATES):
        raise ValueError(f"held_out_templates is 1 to {len(TEMPLATES)}; got {held_out_templates}")
    topics = list(TOPICS)
    rng.shuffle(topics)
    held_out: list[list[str]] = [[], []]
    for index, topic in enumerate(topics[: selection_topics + final_topics]):
        split = held_out[0 if index < selection_topics else 1]
        split += [t.format(topic=topic) for t in rng.sample(TEMPLATES, held_out_templates)]
    taken = {*held_out[0], *held_out[1]}
    training = [
        template.format(topic=topic)
        for topic in topics
        for template in TEMPLATES
        if template.format(topic=topic) not in taken
    ]
    rng.shuffle(training)
    return training, held_out[0], held_out[1]

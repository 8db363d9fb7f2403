"""Settings of generation runs (a model samples answers that become labeling work) and score
runs (a reward model scores the responses labelers judged), checked before anything is queued.

Like the training kinds' schemas (app/schemas/runs.py): unknown fields are refused, and every
field says what it does. The prompts come from exactly one place: the run's snapshot (one of
its splits), the tasks of a queue, or a list of prompt ids.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.queues import MAX_COMPARISON_RESPONSES

MAX_PROMPT_IDS = 10_000
MAX_SAMPLES = 64


def one_process(kind: str, items: str, data: Any) -> Any:
    """`processes`, the training kinds' process-group size, is refused above 1 here with a
    reason rather than as an unknown field: generation and scoring run in one process on one
    device (through vLLM where a CUDA worker has it, worker/training/generation.py), and a
    second run on another worker is how more GPUs take part. processes=1 is accepted and
    dropped, so a form or script that sends it for every kind still works."""
    if not isinstance(data, dict) or "processes" not in data:
        return data
    if type(data["processes"]) is not int or data["processes"] != 1:
        raise ValueError(
            f"processes: a {kind} run works in one process on one device; process groups "
            "(processes above 1) are for training runs. To use more GPUs, split the "
            f"{items} over several {kind} runs"
        )
    return {key: value for key, value in data.items() if key != "processes"}


class GenerateHyperparameters(BaseModel):
    """A model answers prompts; with a target queue, each prompt becomes a comparison task."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    samples_per_prompt: int = Field(
        default=4,
        ge=1,
        le=MAX_SAMPLES,
        description="Samples drawn per prompt (N). With best_of_n, the reward model keeps the "
        "best of them.",
    )
    repeats: int = Field(
        default=1,
        ge=1,
        le=MAX_SAMPLES,
        description="Answer each prompt this many times, each time in a task of its own (more "
        "judgements from few held-out prompts).",
    )
    max_new_tokens: int = Field(default=32, ge=1, le=4096, description="Longest answer, in tokens.")
    temperature: float = Field(default=1.0, gt=0, le=10, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling threshold.")
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Seed of the first sample.")
    best_of_n: bool = Field(
        default=False,
        description="Keep only the sample the reward model scores highest (needs a reward "
        "model): best-of-N, instead of RL.",
    )
    prompt_queue_id: int | None = Field(
        default=None, description="Answer the prompts of this queue's tasks."
    )
    prompt_ids: list[int] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PROMPT_IDS,
        description="Answer these prompts of the project.",
    )
    split: Literal["train", "test", "all"] = Field(
        default="all",
        description="With a snapshot: which of its splits to take prompts from (test: held out).",
    )
    prompt_limit: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Answer at most this many prompts, chosen by `selection`.",
    )
    selection: Literal["random", "reward_gap", "disagreement"] = Field(
        default="random",
        description="Which prompts a prompt_limit keeps: random; reward_gap, where the reward "
        "model is least sure (smallest score gap between its top two samples); or "
        "disagreement, where labelers disagreed most.",
    )
    target_queue_id: int | None = Field(
        default=None,
        description="A comparison queue that gets one task per prompt (and repeat), its "
        "candidates shuffled; without one the samples are only stored.",
    )
    include_demonstration: bool = Field(
        default=False,
        description="Add the prompt's latest human demonstration to each task, when it has one.",
    )
    compare_model_id: int | None = Field(
        default=None,
        description="Another policy (say, the previous one) that also answers each prompt "
        "once per task; labelers are not told which answer is whose.",
    )

    use_vllm: bool | None = Field(
        default=None,
        description="Sample through vLLM (CUDA workers with the vllm extra); None: vLLM where "
        "the worker has it, transformers' generate otherwise. The run records which.",
    )
    compare_best_of: int = Field(
        default=1,
        ge=1,
        le=MAX_SAMPLES,
        description="The compare model draws this many answers per task and the reward model "
        "keeps the best: best-of-N as the baseline a trained policy must beat (needs a reward "
        "model).",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_process(cls, data: Any) -> Any:
        return one_process("generation", "prompts", data)

    @model_validator(mode="after")
    def _consistent(self) -> GenerateHyperparameters:
        if self.prompt_queue_id is not None and self.prompt_ids is not None:
            raise ValueError("take prompts from a queue or a list of prompt ids, not both")
        if self.prompt_ids is not None and len(set(self.prompt_ids)) != len(self.prompt_ids):
            raise ValueError("prompt_ids lists a prompt twice: use repeats instead")
        if self.selection != "random" and self.prompt_limit is None:
            raise ValueError(f"selection {self.selection} needs a prompt_limit")
        if self.selection == "reward_gap" and self.samples_per_prompt < 2:
            raise ValueError("selection reward_gap compares samples: samples_per_prompt >= 2")
        if self.best_of_n and self.samples_per_prompt < 2:
            raise ValueError("best_of_n keeps the best of several: samples_per_prompt >= 2")
        if self.compare_best_of > 1 and self.compare_model_id is None:
            raise ValueError("compare_best_of picks among a compare model's answers: set one")
        if self.target_queue_id is None and (
            self.include_demonstration or self.compare_model_id is not None
        ):
            raise ValueError(
                "include_demonstration and compare_model_id build tasks: set target_queue_id"
            )
        if self.target_queue_id is not None:
            if self.samples_per_prompt < 2 and self.compare_model_id is None:
                raise ValueError(
                    "a comparison task needs two answers to compare: samples_per_prompt must "
                    "be at least 2 (or set compare_model_id)"
                )
            if self.candidates_per_task > MAX_COMPARISON_RESPONSES:
                raise ValueError(
                    f"each task would show {self.candidates_per_task} responses; a comparison "
                    f"task shows at most {MAX_COMPARISON_RESPONSES}"
                )
        return self

    @property
    def candidates_per_task(self) -> int:
        own = 1 if self.best_of_n else self.samples_per_prompt
        return own + int(self.include_demonstration) + int(self.compare_model_id is not None)


class ScoreHyperparameters(BaseModel):
    """A reward model scores responses of the project, for the audit against labelers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    responses: Literal["judged", "all"] = Field(
        default="judged",
        description="judged: the responses labelers compared; all: every response.",
    )
    limit: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Score at most this many (newest first)."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_process(cls, data: Any) -> Any:
        return one_process("score", "responses", data)

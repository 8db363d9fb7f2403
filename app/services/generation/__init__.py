"""Generation and score runs: the platform's own models produce the next round's labeling work.

launching.py checks a generation (or score) run's inputs and writes the prompts (or responses)
the worker reads; selection.py chooses prompts where labelers disagreed; recording.py turns a
finished run's samples into responses, reward scores and comparison tasks.
"""

from app.services.generation.launching import (
    SAMPLING_KINDS,
    RunInputs,
    plan_inputs,
    write_inputs,
)
from app.services.generation.recording import record_output

__all__ = ["SAMPLING_KINDS", "RunInputs", "plan_inputs", "record_output", "write_inputs"]

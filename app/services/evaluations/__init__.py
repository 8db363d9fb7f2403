"""Side-by-side human evaluations: model A (the candidate) against model B (the baseline) on
held-out prompts, judged by labelers who are not told which answer is whose.

starting.py checks an evaluation and stores, in one transaction, a comparison queue of its own,
the evaluation, and a queued generation run in which A answers every prompt and B answers it
too (once per task), so each task shows exactly A's and B's answers in a shuffled order
(app/services/generation). results.py counts the labelers' judgements into A's win rate and
its confidence interval (how, and why that interval, is written there).
"""

from app.services.evaluations.results import (
    CONFIDENCE,
    Interval,
    evaluation_out,
    evaluation_result,
    get_evaluation,
    list_evaluations,
    win_rate_interval,
)
from app.services.evaluations.starting import create_evaluation

__all__ = [
    "CONFIDENCE",
    "Interval",
    "create_evaluation",
    "evaluation_out",
    "evaluation_result",
    "get_evaluation",
    "list_evaluations",
    "win_rate_interval",
]

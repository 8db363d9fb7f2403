"""A tiny reward model for the judge tests: the tiny policy's folder loaded as a one-output
classifier with a seeded score head, saved beside its tokenizer (a second, cheap; the trained
reward model of tests/worker/conftest.py costs a minute)."""

from __future__ import annotations

from pathlib import Path


def tiny_reward_model(tiny: Path, folder: Path) -> Path:
    import torch

    from worker.training.loading import load_reward_model, load_tokenizer

    tokenizer = load_tokenizer(tiny)
    torch.manual_seed(0)
    model = load_reward_model(tiny, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder

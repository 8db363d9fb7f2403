"""Evaluating a policy against the policy it started from, with a reward model as the judge.

On held-out prompts each policy samples one completion per prompt (same seed, same settings);
the reward model scores both. The result: the new policy's mean score, the starting policy's,
and the win rate (the share of prompts where the new policy's completion scores higher, ties
counting half) — the automatic stand-in for a side-by-side human evaluation.
"""

from __future__ import annotations

from typing import Any

BATCH = 32


def sample(
    policy: Any,
    tokenizer: Any,
    prompts: list[list[dict[str, str]]],
    *,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    top_p: float = 1.0,
) -> list[str]:
    """One sampled completion (decoded, special tokens dropped) per conversational prompt.

    Batch k draws with torch seed `seed + k`, so the same prompts, settings and seed give the
    same completions."""
    import torch

    device = next(policy.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    completions: list[str] = []
    generator_seed = seed
    try:
        for start in range(0, len(prompts), BATCH):
            texts = [
                tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
                for prompt in prompts[start : start + BATCH]
            ]
            batch = tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            torch.manual_seed(generator_seed)
            generator_seed += 1
            with torch.no_grad():
                output = policy.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=True,
                    temperature=temperature,
                    top_k=0,
                    top_p=top_p,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            new = output[:, batch["input_ids"].shape[1] :]
            completions.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return completions


def score(
    reward_model: Any,
    tokenizer: Any,
    prompts: list[list[dict[str, str]]],
    completions: list[str],
) -> list[float]:
    """The reward model's score of each prompt with its completion as the assistant turn."""
    import torch

    device = next(reward_model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(prompts), BATCH):
        texts = [
            tokenizer.apply_chat_template(
                [*prompt, {"role": "assistant", "content": completion}], tokenize=False
            )
            for prompt, completion in zip(
                prompts[start : start + BATCH], completions[start : start + BATCH], strict=True
            )
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            device
        )
        with torch.no_grad():
            logits = reward_model(**batch).logits[:, 0]
        scores.extend(float(value) for value in logits)
    return scores


def compare_policies(
    policy: Any,
    start_policy: Any,
    reward_model: Any,
    tokenizer: Any,
    reward_tokenizer: Any,
    prompts: list[list[dict[str, str]]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    """mean_reward, start_mean_reward and win_rate of `policy` over `start_policy`."""
    if not prompts:
        raise ValueError("no prompts to evaluate on")
    options = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    policy.eval()
    start_policy.eval()
    reward_model.eval()
    new = score(
        reward_model, reward_tokenizer, prompts, sample(policy, tokenizer, prompts, **options)
    )
    old = score(
        reward_model, reward_tokenizer, prompts, sample(start_policy, tokenizer, prompts, **options)
    )
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(new, old, strict=True))
    return {
        "mean_reward": sum(new) / len(new),
        "start_mean_reward": sum(old) / len(old),
        "win_rate": wins / len(new),
    }

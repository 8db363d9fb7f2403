"""Packing without flash-attention: TRL warns that packed examples may see each other, but
transformers builds a block-diagonal mask from the position ids when there is neither an
attention mask (TRL's padding-free collator sends none) nor a KV cache (SFTTrainer.compute_loss
sets use_cache=False). Checked here on the model our jobs train, so the SFT job's `packing`
option is safe on SDPA too. With a cache the detection is off: the test calls it as TRL does."""

from __future__ import annotations

from pathlib import Path

import torch

from worker.training.loading import load_policy


def test_packed_sequences_do_not_attend_to_each_other(tiny: Path) -> None:
    model = load_policy(tiny)
    model.eval()
    first = torch.tensor([[5, 17, 42, 8, 99]])
    second = torch.tensor([[7, 3, 61]])
    with torch.no_grad():
        alone = [model(input_ids=ids).logits for ids in (first, second)]
        packed = model(
            input_ids=torch.cat([first, second], dim=1),
            position_ids=torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]]),
            use_cache=False,
        ).logits
    assert model.config._attn_implementation in ("sdpa", "eager")
    assert torch.allclose(packed[:, :5], alone[0], atol=1e-5)
    assert torch.allclose(packed[:, 5:], alone[1], atol=1e-5)

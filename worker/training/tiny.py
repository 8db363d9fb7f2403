"""A tiny decoder with a locally trained tokenizer, so every job runs offline on a CPU.

The tokenizer is a byte-level BPE trained with the `tokenizers` library on a built-in corpus
(byte-level: any text encodes, nothing maps to an unknown token). The role markers and the end
token are special tokens, so the chat template's pieces never merge with the text around them
and a prompt rendered with the generation prompt is always a token prefix of the prompt with its
answer, which TRL's DPO tokenization checks. The model is a Llama with random weights from a
fixed seed, saved with safetensors; `AutoModelForSequenceClassification` loads the same folder
as a reward or value model (num_labels=1, a fresh score head).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from worker.training.synthetic import corpus

END = "<|end|>"
PAD = "<|pad|>"
ROLES = ("system", "user", "assistant")
SPECIAL_TOKENS = [PAD, END, *(f"<|{role}|>" for role in ROLES)]
# Each turn is "<|role|>content<|end|>"; the generation prompt opens an assistant turn, and the
# model ends its answer with <|end|>, the eos token.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def build_tokenizer(vocab_corpus: Iterable[str] | None = None, vocab_size: int = 512) -> Any:
    """A PreTrainedTokenizerFast trained on `vocab_corpus` (the built-in corpus by default)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < len(SPECIAL_TOKENS) + 256:
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 256} (bytes)")
    texts = list(vocab_corpus) if vocab_corpus is not None else corpus()
    if not texts:
        raise ValueError("the vocabulary corpus is empty")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=[f"<|{role}|>" for role in ROLES],
    )
    fast.chat_template = CHAT_TEMPLATE
    # Right padding for training; TRL's generating trainers pad prompts on the left themselves.
    fast.padding_side = "right"
    return fast


def build_tiny_model(
    folder: Path,
    *,
    vocab_corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    intermediate: int | None = None,
    max_positions: int = 512,
    seed: int = 0,
) -> Path:
    """Writes config.json, model.safetensors and the tokenizer into `folder`; returns it.

    The same arguments give the same bytes: the tokenizer's training is deterministic and the
    weights come from `seed`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden < 1 or layers < 1 or heads < 1 or hidden % heads:
        raise ValueError("hidden must be a positive multiple of heads, layers at least 1")
    tokenizer = build_tokenizer(vocab_corpus, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder

"""Loading policies, reward models and tokenizers from local folders, safetensors only.

A model folder may come from a user (a registered base model), so nothing in it is unpickled:
weights load with `use_safetensors=True`, remote code is never trusted, and a folder holding
only pickle weights (pytorch_model.bin, *.pt) is refused with a message saying so.

A LoRA run saves its adapter alone (adapter_config.json, adapter_model.safetensors, the
tokenizer), with peft's `base_model_name_or_path` naming its base folder relative to the
adapter's own folder (so the data folder can move whole). Loading such a folder loads the base
(itself possibly an adapter), applies the adapter and merges it in memory: every caller gets a
plain model, as from a full folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from worker.training.errors import JobInputError
from worker.training.templates import add_chat_template

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# An adapter's base may be an adapter in turn (SFT with LoRA, then DPO with LoRA); a chain
# longer than this is a loop or a mistake.
MAX_ADAPTER_CHAIN = 16


def is_adapter_folder(folder: Path) -> bool:
    return (folder / ADAPTER_CONFIG).is_file()


def adapter_base(folder: Path) -> Path:
    """The base model folder an adapter folder names, resolved against the adapter's folder."""
    try:
        stored = json.loads((folder / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        raise JobInputError(f"adapter folder {folder} has an unreadable {ADAPTER_CONFIG}") from None
    if not isinstance(stored, str) or not stored:
        raise JobInputError(f"adapter folder {folder} names no base model in {ADAPTER_CONFIG}")
    path = Path(stored)
    return (path if path.is_absolute() else folder / path).resolve()


def base_reference(base: Path, adapter_folder: Path) -> str:
    """How an adapter saved in `adapter_folder` names `base`: relative to the adapter's folder."""
    return os.path.relpath(base.resolve(), adapter_folder.resolve())


def adapter_chain(folder: Path) -> list[Path]:
    """[full model folder, adapter, adapter...] ending with `folder`, each checked."""
    chain = [folder]
    seen = {folder.resolve()}
    while is_adapter_folder(chain[0]):
        if not (chain[0] / ADAPTER_WEIGHTS).is_file():
            raise JobInputError(f"adapter folder {chain[0]} has no {ADAPTER_WEIGHTS}")
        base = adapter_base(chain[0])
        if base in seen or len(chain) > MAX_ADAPTER_CHAIN:
            raise JobInputError(f"adapter folder {folder} names its bases in a loop")
        if not base.is_dir():
            raise JobInputError(
                f"the base model folder {base} of adapter {chain[0]} does not exist"
            )
        chain.insert(0, base)
        seen.add(base)
    check_full_model_folder(chain[0])
    return chain


def check_model_folder(folder: Path) -> Path:
    """`folder` if it holds config.json and safetensors weights, or is an adapter whose bases
    do; a JobInputError otherwise."""
    if not folder.is_dir():
        raise JobInputError(f"model folder {folder} does not exist")
    adapter_chain(folder)
    return folder


def check_full_model_folder(folder: Path) -> Path:
    if not folder.is_dir():
        raise JobInputError(f"model folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise JobInputError(f"model folder {folder} has no config.json")
    if not any(folder.glob("*.safetensors")):
        pickles = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
        if pickles:
            raise JobInputError(
                f"model folder {folder} holds only pickle weights ({', '.join(pickles)}), which "
                "are never loaded because unpickling can run code; convert them to safetensors"
            )
        raise JobInputError(f"model folder {folder} has no safetensors weights")
    return folder


def load_tokenizer(folder: Path, chat_template: str | None = None) -> Any:
    """The folder's tokenizer, with a pad token (the eos token when it names none). One without
    a chat template gets `chat_template` (worker/training/templates.py), or is refused."""
    tokenizer, _ = load_tokenizer_with_template(folder, chat_template)
    return tokenizer


def load_tokenizer_with_template(folder: Path, chat_template: str | None) -> tuple[Any, bool]:
    """`load_tokenizer`'s tokenizer, and whether it was given `chat_template` here (then the
    model it goes with must be fitted to it: templates.fit_model_to_tokenizer)."""
    from transformers import AutoTokenizer

    check_model_folder(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    added = False
    if tokenizer.chat_template is None:
        if chat_template is None:
            raise JobInputError(
                f"the tokenizer in {folder} has no chat template, which the conversational "
                "snapshots need: choose one for an SFT or reward run (chat_template), or start "
                "from a model that has one"
            )
        add_chat_template(tokenizer, chat_template)
        added = True
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, added


def load_policy(folder: Path, **kwargs: Any) -> Any:
    """A causal language model (AutoModelForCausalLM) from safetensors weights."""
    from transformers import AutoModelForCausalLM

    chain = adapter_chain(folder)
    model = AutoModelForCausalLM.from_pretrained(
        chain[0], use_safetensors=True, trust_remote_code=False, **kwargs
    )
    return apply_adapters(model, chain[1:])


def load_reward_model(folder: Path, pad_token_id: int | None = None, **kwargs: Any) -> Any:
    """A one-output sequence classifier (reward or value model) from safetensors weights.

    From a policy folder the score head is new (randomly initialised); from a reward model's
    folder it is the trained one."""
    from transformers import AutoModelForSequenceClassification

    chain = adapter_chain(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        chain[0], num_labels=1, use_safetensors=True, trust_remote_code=False, **kwargs
    )
    # A reward adapter carries its trained score head (peft's modules_to_save).
    model = apply_adapters(model, chain[1:])
    # The classifier scores the last non-pad token, which it can only find with a pad id.
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    return model


def apply_adapters(model: Any, adapters: list[Path]) -> Any:
    """`model` with each adapter folder applied and merged in, in order."""
    if not adapters:
        return model
    from peft import PeftModel

    for adapter in adapters:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    # peft froze the base's weights while the adapter was on; trainable again, as
    # from_pretrained leaves a full model (a 4-bit model's packed integer weights never are).
    for parameter in model.parameters():
        if parameter.is_floating_point():
            parameter.requires_grad_(True)
    return model


def parameter_count(model: Any) -> int:
    return sum(parameter.numel() for parameter in model.parameters())

"""Which engine samples a job's completions: vLLM where the `vllm` extra is installed on a CUDA
worker, transformers' `generate` otherwise.

Generation runs (and so best-of-N and evaluations, which are generation runs) sample through a
Sampler from `open_sampler`; RLOO and GRPO hand the choice to TRL (`use_vllm=True`,
`vllm_mode="colocate"`: vLLM shares the training GPU and receives the policy's new weights after
each step). Either way the job records the backend and why in its settings
(`generation_backend`), which the run page lists. `use_vllm` in a run's hyperparameters forces
the choice: True fails a worker that cannot (rather than quietly sampling another way), False
keeps `generate` where vLLM would be picked.

vLLM runs on CUDA only: VllmSampler and the colocated TRL path are not run on the CPU test
machine; the choice between the two is.
"""

from __future__ import annotations

import gc
import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol

from worker.training.errors import JobInputError
from worker.training.evaluation import sample
from worker.training.loading import ADAPTER_CONFIG, adapter_chain, load_policy

VLLM = "vllm"
GENERATE = "generate"
# The share of GPU memory vLLM reserves for weights and KV cache in a generation run: the
# reward model that scores the samples loads once vLLM is closed, so most of it.
GENERATION_GPU_MEMORY = 0.85
# Colocated with training (RLOO, GRPO), vLLM leaves the rest of the GPU to the policy, its
# gradients and optimizer state (TRL's default for colocate is 0.3).
COLOCATED_GPU_MEMORY = 0.3
# The adapter ranks vLLM 0.31 can reserve room for (its LoRAConfig.max_lora_rank).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def vllm_installed() -> bool:
    return find_spec("vllm") is not None


def pick_generation_backend(device: str, use_vllm: bool | None) -> tuple[str, str]:
    """(backend, why): vLLM on a CUDA worker that has it, unless the run says otherwise."""
    if use_vllm is False:
        return GENERATE, "use_vllm off in the run's hyperparameters"
    if device != "cuda":
        if use_vllm:
            raise JobInputError(
                f"use_vllm needs a CUDA worker (vLLM runs on GPUs only); this worker runs on "
                f"{device}: leave use_vllm unset to sample with generate"
            )
        return GENERATE, f"vLLM runs on CUDA only; this worker runs on {device}"
    if not vllm_installed():
        if use_vllm:
            raise JobInputError(
                "use_vllm needs the vllm package, which this worker does not have: install "
                "Smiley with the `vllm` extra (pip install -e '.[train,vllm]') or leave "
                "use_vllm unset"
            )
        return GENERATE, "the vllm package is not installed on this worker (the `vllm` extra)"
    if use_vllm:
        return VLLM, "use_vllm on in the run's hyperparameters"
    return VLLM, "CUDA worker with the vllm package installed"


def record_backend(settings: dict[str, Any], backend: tuple[str, str]) -> None:
    settings["generation_backend"] = backend[0]
    settings.setdefault("reasons", {})["generation_backend"] = backend[1]


def trl_vllm_arguments(backend: str) -> dict[str, Any]:
    """RLOOConfig's and GRPOConfig's vLLM fields for the backend: colocated vLLM, or none."""
    if backend != VLLM:
        return {"use_vllm": False}
    return {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": COLOCATED_GPU_MEMORY,
    }


class Sampler(Protocol):
    def sample(self, prompts: list[list[dict[str, str]]], seed: int) -> list[str]: ...

    def close(self) -> None: ...


class GenerateSampler:
    """transformers' generate, batch by batch (worker/training/evaluation.py's sample)."""

    def __init__(self, folder: Path, tokenizer: Any, device: str, load: dict[str, Any],
                 options: dict[str, Any]) -> None:  # fmt: skip
        self.policy = load_policy(folder, **load).to(device).eval()
        self.tokenizer = tokenizer
        self.options = options

    def sample(self, prompts: list[list[dict[str, str]]], seed: int) -> list[str]:
        return sample(self.policy, self.tokenizer, prompts, seed=seed, **self.options)

    def close(self) -> None:
        del self.policy
        gc.collect()


class VllmSampler:
    """vLLM's offline engine (vllm.LLM) on the model folder; an adapter folder is served as its
    base plus the adapter (a LoRARequest). Each prompt is its own request with seed `seed + i`,
    so the same prompts, settings and seed give the same completions. CUDA only."""

    def __init__(self, folder: Path, tokenizer: Any, torch_dtype: str,
                 options: dict[str, Any]) -> None:  # fmt: skip
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        chain = adapter_chain(folder)
        if len(chain) > 2:
            raise JobInputError(
                f"vLLM applies one adapter to its base; {folder} stacks {len(chain) - 1}: set "
                "use_vllm off, or merge the adapters first"
            )
        lora: dict[str, Any] = {}
        self.lora_request = None
        if len(chain) == 2:
            rank = int(json.loads((chain[1] / ADAPTER_CONFIG).read_text()).get("r", 16))
            fitting = [size for size in VLLM_LORA_RANKS if size >= rank]
            if not fitting:
                raise JobInputError(
                    f"vLLM serves adapters of rank up to {VLLM_LORA_RANKS[-1]}; {folder} has "
                    f"rank {rank}: set use_vllm off"
                )
            lora = {"enable_lora": True, "max_lora_rank": fitting[0], "max_loras": 1}
            self.lora_request = LoRARequest("adapter", 1, str(chain[1]))
        self.llm = LLM(
            model=str(chain[0]),
            dtype=torch_dtype,
            gpu_memory_utilization=GENERATION_GPU_MEMORY,
            **lora,
        )
        self.tokenizer = tokenizer
        self.options = options

    def sample(self, prompts: list[list[dict[str, str]]], seed: int) -> list[str]:
        from vllm import SamplingParams

        # Rendered and tokenized by the run's own tokenizer (its chat template), so vLLM sees
        # exactly the tokens generate would.
        requests = [
            {
                "prompt_token_ids": self.tokenizer(
                    self.tokenizer.apply_chat_template(
                        prompt, tokenize=False, add_generation_prompt=True
                    ),
                    add_special_tokens=False,
                )["input_ids"]
            }
            for prompt in prompts
        ]
        params = [
            SamplingParams(
                n=1,
                max_tokens=self.options["max_new_tokens"],
                temperature=self.options["temperature"],
                top_p=self.options["top_p"],
                seed=seed + index,
                skip_special_tokens=True,
            )
            for index in range(len(prompts))
        ]
        outputs = self.llm.generate(
            requests, params, lora_request=self.lora_request, use_tqdm=False
        )
        return [output.outputs[0].text for output in outputs]

    def close(self) -> None:
        import torch

        # The engine holds most of the GPU: freed before the reward model loads.
        del self.llm
        gc.collect()
        torch.cuda.empty_cache()


def open_sampler(
    backend: str,
    folder: Path,
    tokenizer: Any,
    device: str,
    loading: dict[str, Any],
    load: dict[str, Any],
    options: dict[str, Any],
) -> Sampler:
    if backend == VLLM:
        return VllmSampler(folder, tokenizer, loading["torch_dtype"], options)
    return GenerateSampler(folder, tokenizer, device, load, options)

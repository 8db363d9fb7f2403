"""Which engine samples: vLLM on a CUDA worker that has the package, transformers' generate
otherwise, recorded in the run's settings. vLLM itself needs CUDA; here its import is faked (a
`vllm` module whose LLM answers from the request's seed), so what is tested on the CPU is the
choice, what reaches vLLM, and what the run records."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, replace
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

import pytest

from tests.worker.job_support import Recorder, make_context
from worker.jobs import generate
from worker.training.errors import JobInputError
from worker.training.generation import (
    COLOCATED_GPU_MEMORY,
    GENERATION_GPU_MEMORY,
    pick_generation_backend,
    trl_vllm_arguments,
    vllm_installed,
)

NOT_CUDA = "use_vllm needs a CUDA worker (vLLM runs on GPUs only); this worker runs on cpu: "
NOT_INSTALLED = (
    "use_vllm needs the vllm package, which this worker does not have: install Smiley with "
    "the `vllm` extra (pip install -e '.[train,vllm]') or leave use_vllm unset"
)


@dataclass
class FakeOutput:
    text: str


@dataclass
class FakeRequestOutput:
    outputs: list[FakeOutput]


class FakeVllm:
    """What the job hands vLLM: the engine's arguments and every request."""

    def __init__(self) -> None:
        self.engines: list[dict[str, Any]] = []
        self.requests: list[tuple[list[int], dict[str, Any]]] = []
        self.generate_options: list[dict[str, Any]] = []
        fake = self

        class LLM:
            def __init__(self, **kwargs: Any) -> None:
                fake.engines.append(kwargs)

            def generate(self, prompts: list[dict[str, Any]], params: list[Any], **kwargs: Any):
                fake.generate_options.append(kwargs)
                fake.requests += [
                    (prompt["prompt_token_ids"], param.kwargs)
                    for prompt, param in zip(prompts, params, strict=True)
                ]
                return [FakeRequestOutput([FakeOutput(f"seed {p.kwargs['seed']}")]) for p in params]

        class SamplingParams:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs = kwargs

        self.module = types.ModuleType("vllm")
        self.module.__spec__ = ModuleSpec("vllm", None)
        self.module.LLM = LLM  # type: ignore[attr-defined]
        self.module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
        lora = types.ModuleType("vllm.lora.request")
        lora.LoRARequest = lambda *args: ("LoRARequest", *args)  # type: ignore[attr-defined]
        self.submodules = {"vllm.lora": types.ModuleType("vllm.lora"), "vllm.lora.request": lora}


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> FakeVllm:
    fake = FakeVllm()
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    for name, module in fake.submodules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


def test_a_cpu_worker_samples_with_generate_and_refuses_use_vllm() -> None:
    assert not vllm_installed()
    assert pick_generation_backend("cpu", None) == (
        "generate",
        "vLLM runs on CUDA only; this worker runs on cpu",
    )
    assert pick_generation_backend("cuda", None) == (
        "generate",
        "the vllm package is not installed on this worker (the `vllm` extra)",
    )
    assert pick_generation_backend("cuda", False)[0] == "generate"
    with pytest.raises(JobInputError) as cpu:
        pick_generation_backend("cpu", True)
    assert str(cpu.value) == NOT_CUDA + "leave use_vllm unset to sample with generate"
    with pytest.raises(JobInputError) as missing:
        pick_generation_backend("cuda", True)
    assert str(missing.value) == NOT_INSTALLED


def test_a_cuda_worker_with_vllm_samples_through_it(fake_vllm: FakeVllm) -> None:
    assert pick_generation_backend("cuda", None) == (
        "vllm",
        "CUDA worker with the vllm package installed",
    )
    assert pick_generation_backend("cuda", True) == (
        "vllm",
        "use_vllm on in the run's hyperparameters",
    )
    assert pick_generation_backend("cuda", False) == (
        "generate",
        "use_vllm off in the run's hyperparameters",
    )
    # Still not on a CPU, installed or not.
    assert pick_generation_backend("cpu", None)[0] == "generate"
    # RLOO and GRPO hand it to TRL, colocated on the training GPU.
    assert trl_vllm_arguments("vllm") == {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": COLOCATED_GPU_MEMORY,
    }
    assert trl_vllm_arguments("generate") == {"use_vllm": False}


def prompts_input(root: Path) -> Path:
    folder = root / "input"
    folder.mkdir(parents=True)
    rows = [
        {"prompt_id": 7, "messages": [{"role": "user", "content": "Say hello."}]},
        {"prompt_id": 8, "messages": [{"role": "user", "content": "Say goodbye."}]},
    ]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_a_generation_run_on_a_cuda_worker_with_vllm_samples_and_records_it(
    fake_vllm: FakeVllm, tiny: Path, tmp_path: Path
) -> None:
    params = {"samples_per_prompt": 2, "max_new_tokens": 9, "temperature": 0.5, "seed": 3}
    ctx = make_context(tmp_path, "generate", params, tiny, None, Recorder())
    ctx = replace(ctx, device="cuda", input_dir=prompts_input(tmp_path))

    result = generate.run(ctx)

    assert fake_vllm.engines == [
        {"model": str(tiny), "dtype": "float32", "gpu_memory_utilization": GENERATION_GPU_MEMORY}
    ]
    from worker.training.loading import load_tokenizer

    tokenizer = load_tokenizer(tiny)
    hello = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say hello."}], tokenize=False, add_generation_prompt=True
    )
    expected_ids = tokenizer(hello, add_special_tokens=False)["input_ids"]
    assert [ids for ids, _ in fake_vllm.requests[:2]] == [expected_ids, expected_ids]
    assert [options for _, options in fake_vllm.requests] == [
        {"n": 1, "max_tokens": 9, "temperature": 0.5, "top_p": 1.0, "seed": 3 + index,
         "skip_special_tokens": True}
        for index in range(4)
    ]  # fmt: skip
    samples = [json.loads(line) for line in (result.model_dir / "samples.jsonl").open()]
    assert [(s["prompt_id"], s["sample"], s["content"]) for s in samples] == [
        (7, 0, "seed 3"), (7, 1, "seed 4"), (8, 0, "seed 5"), (8, 1, "seed 6"),
    ]  # fmt: skip
    assert fake_vllm.generate_options == [{"lora_request": None, "use_tqdm": False}]
    assert result.settings["generation_backend"] == "vllm"
    assert result.settings["reasons"]["generation_backend"] == (
        "CUDA worker with the vllm package installed"
    )


def test_vllm_serves_an_adapter_as_its_base_plus_a_lora_request(
    fake_vllm: FakeVllm, tiny: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model

    from worker.training.generation import VllmSampler
    from worker.training.loading import load_policy, load_tokenizer

    adapter = tmp_path / "adapter"
    get_peft_model(load_policy(tiny), LoraConfig(r=12, target_modules=["q_proj"])).save_pretrained(
        adapter
    )
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tiny)
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    options = {"max_new_tokens": 4, "temperature": 1.0, "top_p": 1.0}

    sampler = VllmSampler(adapter, load_tokenizer(tiny), "bfloat16", options)
    assert sampler.sample([[{"role": "user", "content": "Hi."}]], seed=9) == ["seed 9"]

    # vLLM reserves adapter room in fixed sizes: rank 12 needs the 16 slot.
    assert fake_vllm.engines == [
        {"model": str(tiny), "dtype": "bfloat16", "gpu_memory_utilization": GENERATION_GPU_MEMORY,
         "enable_lora": True, "max_lora_rank": 16, "max_loras": 1}
    ]  # fmt: skip
    assert fake_vllm.generate_options == [
        {"lora_request": ("LoRARequest", "adapter", 1, str(adapter)), "use_tqdm": False}
    ]


def test_a_generation_run_on_the_cpu_records_generate(tiny: Path, tmp_path: Path) -> None:
    params = {"samples_per_prompt": 2, "max_new_tokens": 4}
    ctx = make_context(tmp_path, "generate", params, tiny, None, Recorder())
    result = generate.run(replace(ctx, input_dir=prompts_input(tmp_path)))

    assert result.metrics == {"prompts": 2.0, "samples": 4.0}
    assert result.settings["generation_backend"] == "generate"
    assert result.settings["reasons"]["generation_backend"] == (
        "vLLM runs on CUDA only; this worker runs on cpu"
    )
    with pytest.raises(JobInputError) as refused:
        generate.run(replace(ctx, hyperparameters={**params, "use_vllm": True}))
    assert str(refused.value) == NOT_CUDA + "leave use_vllm unset to sample with generate"

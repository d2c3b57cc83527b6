"""Tiny random-weight checkpoints saved by transformers, and a driver that runs hand-built steps.

The checkpoints are real: transformers builds Llama / Mistral / Qwen2 from a config, saves safetensors,
and the reference is reloaded with `from_pretrained` (rotary buffers stay fp32). The driver plays a
small decode-maximal scheduler: every step carries all running decodes, then prefill chunks fill the
rest of the token budget; block tables come from a shuffled pool, so the paging is exercised.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers

from sarathi_models.backend import TorchModelBackend
from sarathi_models.sampler import Sampler, SamplerOutput
from sarathi_sdk import DecodeSlot, EngineConfig, PrefillChunk, SamplingParams, ScheduledBatch

TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=256,
    max_position_embeddings=1024,
    initializer_range=0.1,
)
GREEDY = SamplingParams(temperature=0, max_tokens=1024)


def save_tiny(folder: Path, architecture: str, seed: int = 0, max_shard_size: str | None = None, **overrides) -> Path:
    """Save a random `architecture` (e.g. "LlamaForCausalLM") with TINY's shape plus `overrides`."""
    model_type = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
                  "Qwen3ForCausalLM": "qwen3", "Phi3ForCausalLM": "phi3", "Gemma2ForCausalLM": "gemma2",
                  "Gemma3ForCausalLM": "gemma3_text"}
    config = transformers.AutoConfig.for_model(model_type[architecture], **{**TINY, **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(config)
    if architecture.startswith("Gemma"):  # norm offsets of 0 would hide (1 + w); see the function
        from tests.gguf.tiny_gguf import gemma_weights_that_vary

        gemma_weights_that_vary(model)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(folder, **kwargs)
    return folder


def load_reference(folder: Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    model.generation_config.eos_token_id = None  # generate exactly max_new_tokens
    return model.eval()


def reference_last_logits(reference: torch.nn.Module, prompt: Sequence[int]) -> torch.Tensor:
    """HF logits [V] (fp32) at the prompt's last position."""
    with torch.no_grad():
        return reference(torch.tensor([list(prompt)])).logits[0, -1].float()


def reference_greedy(reference: torch.nn.Module, prompt: Sequence[int], max_new_tokens: int) -> list[int]:
    ids = torch.tensor([list(prompt)])
    with torch.no_grad():  # an explicit mask: HF would otherwise take token 0 (the pad id) for padding
        out = reference.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=0
        )
    return out[0, len(prompt) :].tolist()


class RecordingSampler:
    """The real sampler, keeping each step's logits and rows so tests can compare them."""

    def __init__(self, seed: int = 0) -> None:
        self.inner = Sampler(seed)
        self.logits: dict[str, list[torch.Tensor]] = {}

    def __call__(self, logits: torch.Tensor, rows: Sequence[PrefillChunk | DecodeSlot]) -> SamplerOutput:
        for row, row_logits in zip(rows, logits):
            self.logits.setdefault(row.request_id, []).append(row_logits.clone())
        return self.inner(logits, rows)


def make_backend(
    folder: Path, dtype: str = "float32", block_size: int = 4, num_blocks: int = 512, sampler=None, **options
) -> TorchModelBackend:
    config = EngineConfig(model=str(folder), dtype=dtype, device="cpu", block_size=block_size, max_num_seqs=1,
                          token_budget=1, **options)
    backend = TorchModelBackend(config, sampler=sampler)
    backend.start(config, num_blocks)
    return backend


@dataclass
class _Seq:
    request_id: str
    prompt: tuple[int, ...]
    max_new_tokens: int
    params: SamplingParams
    blocks: list[int]
    computed: int = 0
    output: list[int] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.output) >= self.max_new_tokens


def run_steps(
    backend: TorchModelBackend,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    token_budget: int,
    params: SamplingParams = GREEDY,
    seed: int = 0,
) -> tuple[list[list[int]], list[ScheduledBatch]]:
    """Generate `max_new_tokens` for each prompt through decode-maximal steps of `token_budget` tokens.

    Returns the generated tokens per prompt and the batches that ran.
    """
    block_size = backend.block_size
    rng = random.Random(seed)
    per_seq = -(-(max(map(len, prompts)) + max_new_tokens) // block_size)
    pool = list(range(len(prompts) * per_seq))
    rng.shuffle(pool)
    seqs = [
        _Seq(f"r{i}", tuple(p), max_new_tokens, params, pool[i * per_seq : (i + 1) * per_seq])
        for i, p in enumerate(prompts)
    ]
    batches: list[ScheduledBatch] = []
    while not all(s.done for s in seqs):
        decodes = [
            DecodeSlot(s.request_id, s.output[-1], s.computed, tuple(s.blocks[: s.computed // block_size + 1]), s.params)
            for s in seqs
            if s.output and not s.done
        ]
        budget = token_budget - len(decodes)
        prefills = []
        for s in seqs:
            remaining = len(s.prompt) - s.computed
            if remaining <= 0 or budget == 0:
                continue
            n = min(budget, remaining)
            end = s.computed + n
            prefills.append(
                PrefillChunk(s.request_id, s.prompt[s.computed : end], s.computed,
                             tuple(s.blocks[: -(-end // block_size)]), end == len(s.prompt), s.params)
            )
            budget -= n
        batch = ScheduledBatch(step_id=len(batches), prefills=tuple(prefills), decodes=tuple(decodes))
        out = backend.execute(batch)
        batches.append(batch)
        for s in seqs:
            for chunk in prefills:
                if chunk.request_id == s.request_id:
                    s.computed += len(chunk.token_ids)
            if any(d.request_id == s.request_id for d in decodes):
                s.computed += 1
            if s.request_id in out.sampled:
                s.output.append(out.sampled[s.request_id])
    return [s.output for s in seqs], batches

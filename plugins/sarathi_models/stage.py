"""TorchPipelineStage: one contiguous range of a Llama-family model's layers, for pipeline parallelism.

The pipeline plugin (`sarathi_parallel`) runs one stage per process and moves hidden states between
them; this module is what a stage computes. Each stage loads the checkpoint as the single-process
backend does, keeps its layers `[first, last)` and drops the rest, and keeps the KV cache of its own
layers only, under the block ids the engine's one KV-cache manager hands out. Stage 0 (the engine's
process) also embeds the tokens and, when the last stage sends back the rows that sample, runs the
final norm, the LM head and the sampler there: tied embeddings live on stage 0 anyway, and no sampling
parameter has to cross a process.

Layers are split evenly, the first stage taking the smaller share when they do not divide: it also
runs the embedding, the LM head, the sampler and the engine's own loop.

Imports torch, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sarathi_sdk import ConfigError, EngineConfig, KVCacheSpec, ScheduledBatch, StepOutput

from .backend import Factory, sample_step, select_attention_backend
from .device import resolve_device, resolve_dtype
from .inputs import build_step_inputs
from .kv_cache import allocate_kv_cache, kv_cache_spec
from .loader import load_model
from .protocols import TokenSampler
from .quantize_model import prepack_model, quantize_model
from .sampler import Sampler


def layer_range(num_layers: int, stage_index: int, num_stages: int) -> tuple[int, int]:
    """Layers `[first, last)` of stage `stage_index`: an even split, the remainder to the last stages."""
    if not 0 <= stage_index < num_stages:
        raise ConfigError(f"stage {stage_index} of {num_stages} does not exist")
    if num_stages > num_layers:
        raise ConfigError(
            f"pipeline_parallel_size ({num_stages}) exceeds the model's {num_layers} layers: every stage "
            "needs at least one layer"
        )
    base, extra = divmod(num_layers, num_stages)
    sizes = [base + (i >= num_stages - extra) for i in range(num_stages)]
    first = sum(sizes[:stage_index])
    return first, first + sizes[stage_index]


class TorchPipelineStage:
    """Stage `stage_index` of `num_stages` of `config.model`; see the module docstring and
    `sarathi_sdk.PipelineStage`. `sampler` is used on stage 0 only (None builds the bundled one)."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        stage_index: int,
        num_stages: int,
        architectures: Mapping[str, Factory],
        attention_backends: Mapping[str, Factory],
        sampler: TokenSampler | None = None,
    ) -> None:
        if config.model is None:
            raise ConfigError("a pipeline stage needs a checkpoint folder; config.model is None")
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.attention = select_attention_backend(config, attention_backends, self.device)
        model = load_model(config.model, architectures, self.device, self.dtype, config.quantization)
        quantize_model(model, config.quantization, self.device, self.dtype)
        decoder = getattr(model, "model", None)
        if not isinstance(getattr(decoder, "layers", None), nn.ModuleList) or not hasattr(decoder, "run_layers"):
            raise ConfigError(f"{type(model).__name__} cannot be split into pipeline stages (no `model.layers`)")
        first, last = self.layers = layer_range(model.config.num_layers, stage_index, num_stages)
        decoder.layers = nn.ModuleList(list(decoder.layers)[first:last])
        self.is_first = stage_index == 0
        self.is_last = stage_index == num_stages - 1
        if not self.is_first:  # the embedding, final norm and LM head serve stage 0 only
            decoder.embed_tokens = decoder.norm = model.lm_head = model.tied_head_quantized = None
        prepack_model(model, self.device, self.dtype)
        self.model = model
        self.stage_config = dataclasses.replace(model.config, num_layers=last - first)
        """The model's shape as far as this stage's KV cache goes: its own layers."""
        self.sampler: TokenSampler | None = (sampler or Sampler(seed=config.seed)) if self.is_first else None
        self.block_size = config.block_size

    def kv_cache_spec(self, config: EngineConfig) -> KVCacheSpec:
        return kv_cache_spec(self.stage_config, config, self.device, self.dtype)

    def start(self, config: EngineConfig, num_blocks: int) -> None:
        self.block_size = config.block_size
        caches = allocate_kv_cache(self.stage_config, num_blocks, config.block_size, self.device, self.dtype)
        self.model.attach(caches, self.attention)

    def forward(self, batch: ScheduledBatch, hidden: torch.Tensor | None) -> torch.Tensor:
        """hidden [T, H] from the previous stage (None: embed the tokens) -> [T, H], or on the last
        stage the sampling rows [S, H]."""
        with torch.inference_mode():
            inputs = build_step_inputs(batch, self.block_size, self.device)
            self.attention.prepare(inputs.context)
            decoder: Any = self.model.model
            if hidden is None:
                hidden = decoder.embed_tokens(inputs.input_ids)  # [T, H]
            with self.model.context.bind(inputs.context):
                out = decoder.run_layers(hidden.to(self.device), inputs.positions)  # [T, H]
            return out[inputs.sample_indices] if self.is_last else out  # [S, H] or [T, H]

    def sample(self, batch: ScheduledBatch, hidden: torch.Tensor) -> StepOutput:
        """The last stage's rows [S, H] -> one token per request that samples this step."""
        if self.sampler is None:
            raise RuntimeError("only the first pipeline stage samples")
        rows = [c for c in batch.prefills if c.is_last_chunk] + list(batch.decodes)
        if not rows:
            return StepOutput(step_id=batch.step_id, sampled={})
        with torch.inference_mode():
            logits = self.model.compute_logits(hidden.to(self.device))  # [S, V] fp32
            return sample_step(self.sampler, batch.step_id, logits, rows)

    def close(self) -> None:
        """Drop the weights and the KV cache."""
        self.__dict__.pop("model", None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

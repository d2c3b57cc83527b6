"""TorchModelBackend: the `ModelBackend` that runs Llama-family checkpoints with torch.

Lifecycle, as the engine drives it: construction loads the weights (`config.model` is already a
checkpoint folder), `kv_cache_spec` says how many KV blocks fit, `start` allocates them, `execute` runs
one step per call (on a worker thread), `close` drops the tensors. One step: flatten the batch into
token/position tensors and an `AttentionContext`, run the model with the context bound, compute logits
only at the positions that sample, and sample on the device.

The model, its context slot and the sampler's stream are one device's state, so steps run one at a
time: with several batches in flight (`pipeline_parallel_size` > 1) the engine's worker threads take
turns here. Overlapping stages is the pipeline-parallel plugin's work, with one model shard per stage.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from sarathi_sdk import (
    ConfigError,
    EngineConfig,
    KVCacheSpec,
    ScheduledBatch,
    StepOutput,
    TokenLogprobs,
    expand_proposals,
    verify_proposals,
)

from .cpu_ops import kernel_variant, kernels
from .device import resolve_device, resolve_dtype
from .inputs import StepInputs, build_step_inputs
from .kv_cache import allocate_kv_cache, kv_cache_spec
from .layers import Linear
from .loader import load_model
from .protocols import AttentionBackend, CausalLM, TokenSampler
from .quant import QUANTIZED_MAX_ROWS
from .quantize_model import prepack_model, quantize_model
from .registry import ARCHITECTURES, ATTENTION_BACKENDS
from .sampler import Sampler

logger = logging.getLogger(__name__)

Factory = Callable[..., Any]


class TorchModelBackend:
    """Runs `config.model` on `config.device` in `config.dtype`; see the module docstring.

    `architectures` and `attention_backends` are the registries (name -> factory) that plugins
    contribute to; `sampler` is what `sarathi_make_sampler` built. Each defaults to the bundled ones,
    so the backend can be built directly, without an engine.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        architectures: Mapping[str, Factory] | None = None,
        attention_backends: Mapping[str, Factory] | None = None,
        sampler: TokenSampler | None = None,
    ) -> None:
        if config.model is None:
            raise ConfigError("the torch backend needs a checkpoint folder; config.model is None")
        architectures = architectures if architectures is not None else ARCHITECTURES
        attention_backends = attention_backends if attention_backends is not None else ATTENTION_BACKENDS
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.attention: AttentionBackend = select_attention_backend(config, attention_backends, self.device)
        self.sampler: TokenSampler = sampler if sampler is not None else Sampler(seed=config.seed)
        self.model: CausalLM = load_model(config.model, architectures, self.device, self.dtype, config.quantization)
        self.num_quantized_layers = quantize_model(self.model, config.quantization, self.device, self.dtype)
        prepack_model(self.model, self.device, self.dtype)
        self.kernel_variant = kernel_variant() if self.device.type == "cpu" else self.device.type
        """The CPU kernels' ISA level ("avx512", "avx2", "portable"), "torch" without them; for records."""
        self.block_size = 0
        """Tokens per KV block, as the cache `start` allocated holds them."""
        self._started = False
        self._one_step_at_a_time = threading.Lock()
        self._cpu_threads = torch.get_num_threads()

    def kv_cache_spec(self, config: EngineConfig) -> KVCacheSpec:
        spec = kv_cache_spec(self.model.config, config, self.device, self.dtype)
        if self.device.type == "cpu" and any(isinstance(m, Linear) and m.quantized is not None
                                             for m in self.model.modules()):  # type: ignore[attr-defined]
            # quantized weights run their decode kernels up to QUANTIZED_MAX_ROWS rows; a larger step
            # dequantizes every weight tile first (see `quant`), so speculation keeps within it
            spec = dataclasses.replace(spec, max_decode_rows=QUANTIZED_MAX_ROWS)
        return spec

    def start(self, config: EngineConfig, num_blocks: int) -> None:
        """Allocate `num_blocks` KV blocks of `config.block_size` tokens and attach them to the layers."""
        self.block_size = config.block_size
        caches = allocate_kv_cache(self.model.config, num_blocks, config.block_size, self.device, self.dtype)
        self.model.attach(caches, self.attention)
        self._started = True

    def execute(self, batch: ScheduledBatch) -> StepOutput:
        if not self._started:
            raise RuntimeError("execute() outside start() .. close(): no KV cache is allocated")
        if batch.is_empty:
            return StepOutput(step_id=batch.step_id, sampled={})
        batch = expand_proposals(batch)  # a decode's proposed tokens become rows of their own
        with self._one_step_at_a_time, torch.inference_mode():
            if self.device.type == "cpu":
                # every step on all the threads torch had when the backend was built: whichever worker
                # thread runs it, and even for one token (2-core Zen 4, SmolLM2-135M: batch-1 decode
                # 107 tok/s on two threads, 78 on one, 2026-11-30; one OpenMP team in the process)
                torch.set_num_threads(self._cpu_threads)
            passes = [build_step_inputs(part, self.block_size, self.device) for part in self._passes(batch)]
            hidden = torch.cat([self._forward(inputs) for inputs in passes])  # [T, H], prefills then decodes
            rows = [row for inputs in passes for row in inputs.sample_rows]
            if not rows:
                return StepOutput(step_id=batch.step_id, sampled={})
            offsets = itertools.accumulate((int(inputs.input_ids.shape[0]) for inputs in passes[:-1]), initial=0)
            sample_indices = torch.cat([inputs.sample_indices + offset for inputs, offset in zip(passes, offsets)])  # [S]
            logits = self.model.compute_logits(hidden[sample_indices])  # [S, V] fp32
            return sample_step(self.sampler, batch.step_id, logits, rows)

    def _passes(self, batch: ScheduledBatch) -> tuple[ScheduledBatch, ...]:
        """The forward passes of a step: the step itself, or, for a model that runs decodes apart (the CPU
        decode stack, `runs_decodes_apart`), a mixed step's prefill chunks and then its decodes, so a
        generated token is computed the same way whether its step carried a prefill chunk or not."""
        runs_apart = getattr(self.model, "runs_decodes_apart", None)
        if batch.prefills and batch.decodes and runs_apart is not None and runs_apart(len(batch.decodes)):
            return (ScheduledBatch(batch.step_id, prefills=batch.prefills),
                    ScheduledBatch(batch.step_id, decodes=batch.decodes))
        return (batch,)

    def _forward(self, inputs: StepInputs) -> torch.Tensor:
        self.attention.prepare(inputs.context)
        with self.model.context.bind(inputs.context):
            return self.model(inputs.input_ids, inputs.positions)  # [T, H]

    def close(self) -> None:
        """Drop the weights and the KV cache (the layers hold it); the backend cannot run again."""
        self._started = False
        self.__dict__.pop("model", None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def sample_step(sampler: TokenSampler, step_id: int, logits: torch.Tensor, rows: Sequence[Any]) -> StepOutput:
    """One token per row from logits [S, V] (fp32) of the S `rows` (last prefill chunks, then decodes,
    in batch order, a decode's verification rows together), then verification of the proposed tokens
    (`sarathi_sdk.verify_proposals`); a pipeline's first stage samples the same way (see `stage`)."""
    try:
        result = sampler(logits, rows)
    except Exception:
        return _sample_rows_alone(sampler, step_id, logits, rows)
    return verify_proposals(step_id, rows, result.token_ids, result.logprobs)


def _sample_rows_alone(sampler: TokenSampler, step_id: int, logits: torch.Tensor, rows: Sequence[Any]) -> StepOutput:
    """The batched sampler failed: sample each row (logits [S, V]) on its own, so the request whose
    row fails ends alone (`StepOutput.failed`) and every other one still gets its token."""
    tokens: list[int | None] = []
    logprobs: list[TokenLogprobs | None] = []
    failed: dict[str, str] = {}
    for i, row in enumerate(rows):
        try:
            result = sampler(logits[i : i + 1], [row])
        except Exception as exc:
            logger.exception("sampling failed for request %s", row.request_id)
            failed.setdefault(row.request_id, f"{type(exc).__name__}: {exc}")
            tokens.append(None)
            logprobs.append(None)
            continue
        tokens.append(result.token_ids[0])
        logprobs.append(result.logprobs[0])
    return verify_proposals(step_id, rows, tokens, logprobs, failed)


def select_attention_backend(
    config: EngineConfig, registry: Mapping[str, Factory], device: torch.device
) -> AttentionBackend:
    """`config.attention_backend` from the registry; "auto" is "triton" on CUDA when a plugin registers
    it, "cpu" on the CPU when its kernels compiled (see `cpu_ops`), else "torch"."""
    name = config.attention_backend
    if name == "auto":
        if device.type == "cuda" and "triton" in registry:
            name = "triton"
        elif device.type == "cpu" and "cpu" in registry and kernels() is not None:
            name = "cpu"
        else:
            name = "torch"
    factory = registry.get(name)
    if factory is None:
        raise ConfigError(
            f"no attention backend named {name!r}; registered: {', '.join(sorted(registry)) or 'none'}"
        )
    return factory(config)

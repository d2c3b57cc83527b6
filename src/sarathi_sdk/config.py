"""EngineConfig: every engine option, validated once, frozen afterwards.

`Engine(model, **options)` builds one with :meth:`EngineConfig.from_options`; an unknown option or a
value out of range is a :class:`ConfigError` before anything starts. Names follow vLLM where vLLM has
one (`max_num_seqs`, `block_size`, `enable_prefix_caching`); `token_budget` is SARATHI's per-step token
budget (vLLM's `max_num_batched_tokens`).

Imports only the standard library, `checks` and `errors`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from .checks import is_finite_number, is_int
from .errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16", "float16")
POLICY_ORDERS = ("fcfs", "priority")
QUANTIZATIONS = ("auto", "none", "int8", "int4")
AUTO = "auto"
"""`token_budget=AUTO`: profile the model at start and take the largest budget meeting `tbt_slo`."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Options of one Engine. Plugins read the fields they understand and ignore the rest."""

    model: str | None = None
    """A Hugging Face checkpoint folder or a .gguf file; None is the bundled default model."""
    scheduler: str = "sarathi"
    """Batch policy by registered name: "sarathi" (default), "vllm", "orca", "static" or a plugin's."""
    token_budget: int | str = 512
    """Most tokens (decodes plus prefill chunks) that one step may carry. Left unset, the engine takes
    the backend's measured default for its device (the bundled backend: 256 on the CPU, 512 on CUDA).
    "auto" (needs `tbt_slo`):
    the engine profiles the model at start, as Sarathi-Serve picks its budget, and takes the largest
    budget whose step time meets `tbt_slo` (see `sarathi_sdk.budget`). Until then the defaults and checks
    that need a number (`max_num_seqs`, `low_chunk_size`) wait; the started engine's `config` holds the
    chosen int."""
    tbt_slo: float | None = None
    """Time-between-tokens target in seconds (> 0) for `token_budget="auto"`, and only for it: a fixed
    budget would ignore it. The engine clears it once it has replaced "auto" by the chosen budget."""
    max_logprobs: int = 20
    """Most top log-probabilities a request may ask for (`SamplingParams.logprobs`), as vLLM's option of
    the same name: each one is a sort and a copy per token, and a huge count would fail the step."""
    max_num_seqs: int | None = None
    """Most requests running (holding KV blocks) at once; None is `min(128, token_budget)`."""
    policy_order: str = "fcfs"
    """Order of the waiting queue and of preemption victims: "fcfs" (arrival) or "priority" (lower
    `generate(priority=...)` first, as in vLLM, then arrival). Every bundled policy honours it."""
    max_num_partial_prefills: int | None = None
    """Most prompts that may be part-way through their prefill at once ("sarathi" only); a prompt whose
    last chunk fits in the step still starts. None: no limit."""
    long_prefill_token_threshold: int | None = None
    """Most prefill tokens one request may take in one step ("sarathi" only), so a long prompt cannot
    take the whole budget from shorter ones. None: only the budget limits it."""
    enable_dynamic_chunking_schedule: bool = False
    """Shrink a prompt's chunks as its cached context grows ("sarathi" only), as Sarathi-Serve's option
    of the same name: a chunk attending to a long context costs more per token, so later chunks get a
    smaller share of the step, keeping step times uniform."""
    low_chunk_size: int | None = None
    """Smallest step size of the dynamic schedule (the largest is `token_budget`); at least
    `max_num_seqs`, so a prefill always gets a token next to a full set of decodes. None:
    `max(max_num_seqs, token_budget // 4)`."""
    chunk_schedule_max_tokens: int = 4096
    """Context length over which the dynamic schedule descends from `token_budget` to `low_chunk_size`;
    longer contexts keep the smallest size."""
    chunk_schedule_stages: int = 4
    """Number of chunk sizes in the dynamic schedule, evenly spaced from `token_budget` down to
    `low_chunk_size`."""
    block_size: int = 16
    """Tokens per KV-cache block."""
    num_kv_blocks: int | None = None
    """KV-cache size in blocks; None sizes it from `kv_cache_memory_fraction`."""
    kv_cache_memory_fraction: float = 0.9
    """Share of the memory left after loading the weights that the KV cache may take."""
    max_model_len: int | None = None
    """Longest prompt plus output; None takes the model's own limit."""
    dtype: str = "auto"
    device: str = "auto"
    quantization: str = "auto"
    """Weight-only quantization of the linear layers, used by small (decode) steps on the CPU in bf16:
    "auto" keeps a GGUF file's Q4_0 / Q4_1 / Q8_0 weights as stored (no requantizing) and the rest
    as loaded; "int4" / "int8" also quantize every other linear weight; "none" dequantizes all."""
    attention_backend: str = "auto"
    """"auto", "torch", "triton", or a name a plugin registers."""
    pipeline_parallel_size: int = 1
    """Pipeline stages; the engine keeps this many batches in flight."""
    max_waiting_requests: int | None = None
    """Backpressure: with this many requests waiting (as `stats().num_waiting`: not scheduled yet, or
    preempted and queued to resume), a new one is refused at once with `EngineOverloadedError` instead
    of queueing without bound. None: no limit."""
    step_timeout: float | None = 600.0
    """Watchdog, in seconds: a step (`backend.execute`) running longer kills the engine, ending every
    open stream with `EngineDeadError`, rather than every request hanging behind a stuck device or a
    deadlocked backend. Generous by default so a first step that compiles kernels passes. None: off."""
    enable_prefix_caching: bool = False
    """Reuse the KV of whole blocks that earlier requests computed for the same leading tokens (a
    shared system prompt, the previous turns of a conversation, a preempted request's own context):
    a request's prefill starts after its longest cached whole-block prefix. Its last prompt token is
    always computed. Works with chunked prefill and every policy; see `sarathi_paged_kv`. Left unset,
    the engine takes the backend's default for its device: the bundled backend turns it on for CUDA
    and leaves it off on the CPU (see its `kv_cache.py`)."""
    speculative: str | None = None
    """Speculative decoding: who proposes tokens for each decode to verify in one step. "ngram"
    (prompt lookup: what followed the last few tokens where they occur earlier in the prompt or the
    output), "draft:PATH" (a small model with the same tokenizer, a checkpoint folder or .gguf file),
    or a name a plugin registers (`sarathi_register_proposers`); None: off. The output is the same as
    without (see `sarathi_sdk.speculative`); not with `pipeline_parallel_size` > 1."""
    num_speculative_tokens: int = 4
    """Most tokens proposed for one decode per step, with `speculative`. Each takes a token of the
    step's budget, and fewer are proposed when the budget is short or a request's proposals keep
    being rejected (see `sarathi_sdk.proposals`)."""
    speculative_disable_by_batch_size: int | None = 8
    """With more running decodes than this, nothing is proposed: past it a verification row costs
    about as much as the token it may save (on the CPU, SmolLM2-135M copying text: 1.3x at 2 decodes,
    1.2x at 4, 1.05x at 8; docs/benchmarks.md). None: never off."""
    seed: int = 0
    """Seed of the sampler for requests that give no seed of their own."""
    plugins: tuple[object, ...] = ()
    """Plugin objects registered on this engine only (observers, factories, registries)."""
    block_plugins: tuple[str, ...] = ()
    """Plugin names never to register, bundled ones included."""
    load_entrypoint_plugins: bool | tuple[str, ...] = False
    """Load third-party plugins from the `sarathi_sdk` entry-point group: all (True), none (False),
    or only those named."""

    def __post_init__(self) -> None:
        auto = self._check_token_budget()
        if self.max_num_seqs is None and not auto:
            object.__setattr__(self, "max_num_seqs", min(128, self.token_budget))
        for name in ("block_size", "pipeline_parallel_size"):
            _require_int(name, getattr(self, name), minimum=1)
        for name in ("max_num_seqs", "num_kv_blocks", "max_model_len", "max_waiting_requests"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name), minimum=1)
        if self.step_timeout is not None and (not is_finite_number(self.step_timeout) or self.step_timeout <= 0):
            raise ConfigError(f"step_timeout must be a finite number of seconds > 0 or None, got {self.step_timeout!r}")
        _require_int("seed", self.seed, minimum=0)
        _require_int("max_logprobs", self.max_logprobs, minimum=0)
        if not auto and cast(int, self.max_num_seqs) > cast(int, self.token_budget):  # both ints once not auto
            raise ConfigError(
                f"max_num_seqs ({self.max_num_seqs}) must not exceed token_budget ({self.token_budget}): "
                "every running decode takes one token of the step's budget"
            )
        self._check_policy_options(auto)
        self._check_speculative()
        if not 0.0 < float(self.kv_cache_memory_fraction) <= 1.0:
            raise ConfigError(f"kv_cache_memory_fraction must be in (0, 1], got {self.kv_cache_memory_fraction!r}")
        _require_choice("dtype", self.dtype, DTYPES)
        _require_choice("quantization", self.quantization, QUANTIZATIONS)
        for name in ("scheduler", "attention_backend"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{name} must be a non-empty name, got {getattr(self, name)!r}")
        if self.model is not None and not isinstance(self.model, str):
            object.__setattr__(self, "model", str(self.model))
        object.__setattr__(self, "plugins", _as_tuple("plugins", self.plugins))
        object.__setattr__(self, "block_plugins", _as_tuple("block_plugins", self.block_plugins))
        if not isinstance(self.load_entrypoint_plugins, bool):
            object.__setattr__(
                self, "load_entrypoint_plugins", _as_tuple("load_entrypoint_plugins", self.load_entrypoint_plugins)
            )

    def _check_token_budget(self) -> bool:
        """Validate `token_budget` and `tbt_slo` together; True when the budget is still "auto"."""
        if self.tbt_slo is not None and (
            not is_finite_number(self.tbt_slo) or self.tbt_slo <= 0
        ):
            raise ConfigError(f"tbt_slo must be a finite number of seconds > 0, got {self.tbt_slo!r}")
        if self.token_budget == AUTO:
            if self.tbt_slo is None:
                raise ConfigError(
                    "token_budget='auto' needs tbt_slo=SECONDS: the step-time target the profiled budget must meet"
                )
            return True
        _require_int("token_budget", self.token_budget, minimum=1, alternative="'auto'")
        if self.tbt_slo is not None:
            raise ConfigError(
                f"tbt_slo only applies to token_budget='auto' (it picks the budget); with token_budget="
                f"{self.token_budget} it would be ignored: drop tbt_slo or set token_budget='auto'"
            )
        return False

    def _check_speculative(self) -> None:
        if self.speculative is not None and (not isinstance(self.speculative, str) or not self.speculative):
            raise ConfigError(f"speculative must be a proposer's name (\"ngram\", \"draft:PATH\") or None, "
                              f"got {self.speculative!r}")
        _require_int("num_speculative_tokens", self.num_speculative_tokens, minimum=1)
        if self.speculative_disable_by_batch_size is not None:
            _require_int("speculative_disable_by_batch_size", self.speculative_disable_by_batch_size, minimum=1)
        if self.speculative is not None and self.pipeline_parallel_size > 1:
            raise ConfigError(
                "speculative decoding does not run with pipeline_parallel_size > 1: the pipeline's stages "
                "exchange one token per decode; use one of them"
            )

    def _check_policy_options(self, auto: bool) -> None:
        _require_choice("policy_order", self.policy_order, POLICY_ORDERS)
        for name in ("max_num_partial_prefills", "long_prefill_token_threshold"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name), minimum=1)
        for name in ("enable_dynamic_chunking_schedule", "enable_prefix_caching"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _require_int("chunk_schedule_max_tokens", self.chunk_schedule_max_tokens, minimum=1)
        _require_int("chunk_schedule_stages", self.chunk_schedule_stages, minimum=1)
        if self.low_chunk_size is not None:
            _require_int("low_chunk_size", self.low_chunk_size, minimum=1)
        if auto:
            return  # the default and the range wait for the profiled budget
        budget, max_num_seqs = cast(int, self.token_budget), cast(int, self.max_num_seqs)  # validated ints
        if self.low_chunk_size is None:
            object.__setattr__(self, "low_chunk_size", max(max_num_seqs, budget // 4))
        if not max_num_seqs <= cast(int, self.low_chunk_size) <= budget:
            raise ConfigError(
                f"low_chunk_size ({self.low_chunk_size}) must lie between max_num_seqs ({self.max_num_seqs}) "
                f"and token_budget ({self.token_budget}): a smaller step could be filled by decodes alone "
                "and a prompt would never advance"
            )

    @classmethod
    def from_options(cls, model: str | None = None, **options: Any) -> EngineConfig:
        """Build a config from keyword options, naming the closest known option for a typo."""
        known = {f.name for f in dataclasses.fields(cls)}
        for name in options:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown engine option {name!r}{hint}")
        return cls(model=model, **options)

def _require_int(name: str, value: object, minimum: int, alternative: str | None = None) -> None:
    if not is_int(value) or value < minimum:
        also = f" or {alternative}" if alternative else ""
        raise ConfigError(f"{name} must be an integer >= {minimum}{also}, got {value!r}")

def _require_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")

def _as_tuple(name: str, value: object) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{name} must be a list, got {value!r}")
    return tuple(value)

"""Hook specifications: the reference of every hook a sarathi-sdk plugin can implement.

Three kinds of hook:

- **factories** (`firstresult`) build one object at engine start; the bundled defaults are marked
  `trylast`, so any user plugin that returns something wins;
- **registries** let every plugin contribute named entries (`register(name, factory)`), as in
  simonw/llm's `register_models`;
- **observers** are told of engine events; an exception in one is logged and never reaches the engine.

None is called per token. pluggy is synchronous: implementations are plain functions, never
`async def`. An implementation may take fewer arguments than its spec names.

Imports only pluggy and the contract modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .batch import ScheduledBatch
    from .config import EngineConfig
    from .interfaces import BatchPolicy, KVCacheManager, ModelBackend, PipelineStage, Tokenizer
    from .metrics import EngineStats
    from .output import RequestOutput
    from .proposals import Proposer
    from .registries import Registries
    from .sampling import SamplingParams
    from .structured_outputs import StructuredOutputBackend

PROJECT = "sarathi_sdk"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a plugin's function as a hook implementation: `@hookimpl`, or `@hookimpl(trylast=True)` for a
default that any other plugin's factory should win over (see the module docstring)."""

Register = Callable[[str, Callable[..., Any]], None]


# Factories: called once at engine start.


@hookspec(firstresult=True)
def sarathi_resolve_model(config: EngineConfig) -> str | None:
    """Turn `config.model` into the checkpoint folder the backend and tokenizer load: the bundled
    default model for None, a converted folder for a .gguf file. Return None to leave it as it is."""


@hookspec(firstresult=True)
def sarathi_convert_model(source: str, out_dir: str) -> str | None:
    """Convert the checkpoint file `source` (a .gguf file for the bundled models plugin) into a Hugging
    Face folder at `out_dir` (`sarathi convert`); return the folder, or None when this plugin does not
    convert that kind of file."""


@hookspec(firstresult=True)
def sarathi_make_backend(config: EngineConfig, registries: Registries, sampler: Any) -> ModelBackend | None:
    """Build the model backend, with the architectures and attention backends of `registries` and the
    sampler `sarathi_make_sampler` built. Skipped when `Engine(backend=...)` is given one."""


@hookspec(firstresult=True)
def sarathi_make_tokenizer(config: EngineConfig) -> Tokenizer | None:
    """Build the tokenizer of `config.model`; None means prompts must be token ids."""


@hookspec(firstresult=True)
def sarathi_make_kv_cache_manager(config: EngineConfig, num_blocks: int) -> KVCacheManager | None:
    """Build the KV-cache manager over `num_blocks` blocks of `config.block_size` tokens."""


@hookspec(firstresult=True)
def sarathi_make_batch_policy(
    config: EngineConfig, kv_cache_manager: KVCacheManager, registries: Registries
) -> BatchPolicy | None:
    """Build the batch policy; the default looks `config.scheduler` up in `registries.schedulers`."""


@hookspec(firstresult=True)
def sarathi_make_pipeline_stage(
    config: EngineConfig, registries: Registries, stage_index: int, num_stages: int, sampler: Any
) -> PipelineStage | None:
    """Build stage `stage_index` of `num_stages` of `config.model` for `pipeline_parallel_size` > 1:
    a contiguous range of its layers (see `PipelineStage`). Called once in each stage's process, the
    engine's own (stage 0) included; `sampler` is what `sarathi_make_sampler` built for stage 0 and
    None for the others, which never sample. Stage processes register the bundled and entry-point
    plugins only (plugin objects cannot cross processes), so an implementation that replaces the
    bundled one must be installed as an entry-point plugin."""


@hookspec(firstresult=True)
def sarathi_make_sampler(config: EngineConfig) -> Any:
    """Build the sampler the model backend runs on its device after each forward pass."""


@hookspec(firstresult=True)
def sarathi_make_structured_output_backend(config: EngineConfig, tokenizer: Tokenizer | None) -> (
        StructuredOutputBackend | None):
    """Build the backend that compiles requests' `structured_outputs` for this engine's tokenizer and
    makes their matchers (see `sarathi_sdk.StructuredOutputBackend`); None leaves the engine without
    one, and a request that asks for structured output is then refused. Called at engine start; an
    implementation should defer anything costly to its first `compile`."""


@hookspec(firstresult=True)
def sarathi_make_proposer(config: EngineConfig, registries: Registries,
                          make_backend: Callable[[str], ModelBackend]) -> Proposer | None:
    """Build the speculative-decoding proposer `config.speculative` names ("NAME" or "NAME:ARGUMENT");
    the default looks NAME up in `registries.proposers`. `make_backend(model)` builds a model backend
    for another checkpoint (a draft model) the way the engine built its own, not yet started. Called
    only when `config.speculative` is set."""


# Registries: every plugin may contribute.


@hookspec
def sarathi_register_schedulers(register: Register) -> None:
    """`register(name, factory)`; `factory(config, kv_cache_manager)` returns a BatchPolicy and is
    selected by `Engine(scheduler=name)`."""


@hookspec
def sarathi_register_proposers(register: Register) -> None:
    """`register(name, factory)`; `factory(config, argument, make_backend)` returns a `Proposer` and is
    selected by `Engine(speculative="name")` or `"name:argument"` (argument None without one)."""


@hookspec
def sarathi_register_model_architectures(register: Register) -> None:
    """`register(architecture, factory)`, architecture as in config.json's "architectures"."""


@hookspec
def sarathi_register_attention_backends(register: Register) -> None:
    """`register(name, factory)`; selected by `Engine(attention_backend=name)`."""


# Observers: told of events, never able to break the engine.


@hookspec
def sarathi_on_engine_start(config: EngineConfig) -> None:
    """The engine has started and accepts requests."""


@hookspec
def sarathi_on_request_added(
    request_id: str, prompt_token_ids: Sequence[int], sampling_params: SamplingParams
) -> None:
    """A validated request joined the waiting queue. Raising here does not refuse it: as from every
    observer, the exception is logged and the request is served all the same (refusing belongs before
    admission, in validation or `max_waiting_requests`)."""


@hookspec
def sarathi_on_step_end(batch: ScheduledBatch, stats: EngineStats) -> None:
    """A step's batch executed and its tokens were recorded."""


@hookspec
def sarathi_on_request_finished(request_id: str, output: RequestOutput) -> None:
    """A request ended (stop, length or abort); `output` is its final output, with metrics."""


@hookspec
def sarathi_on_engine_stop(stats: EngineStats) -> None:
    """The engine is closing; no more steps will run."""

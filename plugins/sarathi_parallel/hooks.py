"""Hook implementation of the pipeline-parallel plugin: the backend for `pipeline_parallel_size` > 1.

Not `trylast`, unlike the bundled models backend, so it is asked before that one; bundled, so it is
registered before any user plugin, which is asked first and wins. It answers only when the engine asks
for more than one stage (None otherwise, leaving the single-process backend to answer).

Imports only the public `sarathi_sdk` API; torch and the rest load when a pipeline is built.
"""

from __future__ import annotations

from typing import Any

from sarathi_sdk import EngineConfig, hookimpl


@hookimpl
def sarathi_make_backend(config: EngineConfig, sampler: Any) -> Any:
    if config.pipeline_parallel_size == 1:
        return None
    from .backend import PipelineBackend

    return PipelineBackend(config, sampler=sampler)

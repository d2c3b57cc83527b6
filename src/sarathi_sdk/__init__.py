"""sarathi-sdk: an embeddable async engine for LLM inference with SARATHI scheduling.

Chunked prefills and decode-maximal batching behind an asyncio `Engine`; batch policy, KV-cache
manager, model backend and tokenizer are pluggy plugins. Everything public is named here.
"""

from .batch import DecodeSlot, PrefillChunk, ScheduledBatch, StepOutput, TokenHistory, TokenLogprobs
from .config import EngineConfig
from .engine import Engine, EngineState
from .errors import (
    ConfigError,
    EngineDeadError,
    EngineOverloadedError,
    EngineStateError,
    InvalidRequestError,
    PluginError,
    RequestError,
    SarathiError,
)
from .hookspecs import hookimpl
from .interfaces import (
    BatchPolicy,
    IncrementalDetokenizer,
    KVCacheManager,
    KVCacheSpec,
    ModelBackend,
    PolicyStats,
    Tokenizer,
)
from .metrics import EngineStats
from .plugins import PluginManager
from .request import FinishReason, Request, RequestMetrics, RequestOutput, RequestStatus
from .sampling import SamplingParams

__all__ = [
    "BatchPolicy",
    "ConfigError",
    "DecodeSlot",
    "Engine",
    "EngineConfig",
    "EngineDeadError",
    "EngineOverloadedError",
    "EngineState",
    "EngineStateError",
    "EngineStats",
    "FinishReason",
    "IncrementalDetokenizer",
    "InvalidRequestError",
    "KVCacheManager",
    "KVCacheSpec",
    "ModelBackend",
    "PluginError",
    "PluginManager",
    "PolicyStats",
    "PrefillChunk",
    "Request",
    "RequestError",
    "RequestMetrics",
    "RequestOutput",
    "RequestStatus",
    "SamplingParams",
    "SarathiError",
    "ScheduledBatch",
    "StepOutput",
    "TokenHistory",
    "TokenLogprobs",
    "Tokenizer",
    "hookimpl",
]

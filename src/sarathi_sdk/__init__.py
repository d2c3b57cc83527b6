"""sarathi-sdk: an embeddable async engine for LLM inference with SARATHI scheduling.

Chunked prefills and decode-maximal batching behind an async `Engine` (asyncio or trio, through anyio); batch policy, KV-cache
manager, model backend and tokenizer are pluggy plugins. Everything public is named here.
"""

from .allocator import release_free_memory
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
    PipelineStage,
    PolicyStats,
    StageStats,
    Tokenizer,
)
from .metrics import EngineStats, RequestMetrics
from .output import RequestOutput
from .plugins import PluginManager
from .proposals import Proposer
from .registries import Registries
from .request import FinishReason, Request, RequestStatus
from .sampling import SamplingParams
from .speculative import expand_proposals, verify_proposals
from .structured_outputs import GrammarMatcher, StructuredOutputBackend
from .structured_params import StructuredOutputsParams

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
    "GrammarMatcher",
    "IncrementalDetokenizer",
    "InvalidRequestError",
    "KVCacheManager",
    "KVCacheSpec",
    "ModelBackend",
    "PluginError",
    "PipelineStage",
    "PluginManager",
    "PolicyStats",
    "PrefillChunk",
    "Proposer",
    "Registries",
    "Request",
    "RequestError",
    "RequestMetrics",
    "RequestOutput",
    "RequestStatus",
    "SamplingParams",
    "SarathiError",
    "ScheduledBatch",
    "StageStats",
    "StepOutput",
    "StructuredOutputBackend",
    "StructuredOutputsParams",
    "TokenHistory",
    "TokenLogprobs",
    "Tokenizer",
    "hookimpl",
    "expand_proposals",
    "release_free_memory",
    "verify_proposals",
]

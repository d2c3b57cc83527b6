"""Bundled plugin: structured outputs on xgrammar (JSON schema, regex, choice, EBNF grammar, any JSON
object), for an engine whose tokenizer can list its tokens' bytes (`token_bytes()`, as the bundled
tokenizers do). Registered by module path; xgrammar is imported on the first request that asks for
structured output, never at engine start.
"""

from __future__ import annotations

from sarathi_sdk import EngineConfig, StructuredOutputBackend, Tokenizer, hookimpl

__all__ = ["sarathi_make_structured_output_backend"]


@hookimpl(trylast=True)
def sarathi_make_structured_output_backend(config: EngineConfig, tokenizer: Tokenizer | None) -> (
        StructuredOutputBackend | None):
    token_bytes = getattr(tokenizer, "token_bytes", None)
    if tokenizer is None or not callable(token_bytes):
        return None
    from .xgrammar_backend import XGrammarBackend

    return XGrammarBackend(token_bytes, tokenizer.eos_token_ids)

"""Bundled plugin: the proposers of speculative decoding, selected with `Engine(speculative=...)`.

`ngram` (prompt lookup, no model) and `draft:PATH` (a smaller model with the same tokenizer, run by the
engine's own backend code with a KV cache of its own). Both propose deterministic tokens, which the
model backend verifies exactly (see `sarathi_sdk.speculative`). Each is registered through
`sarathi_register_proposers`, the registry third-party proposers add to; the default
`sarathi_make_proposer` builds the one `config.speculative` names.
"""

from __future__ import annotations

from collections.abc import Callable

from sarathi_sdk import ConfigError, EngineConfig, ModelBackend, Proposer, Registries, hookimpl

from .draft import DraftModelProposer
from .ngram import NgramProposer


def _ngram(config: EngineConfig, argument: str | None, make_backend: Callable[[str], ModelBackend]) -> Proposer:
    if argument is not None:
        raise ConfigError(f"speculative='ngram' takes no argument, got 'ngram:{argument}'")
    return NgramProposer()


def _draft(config: EngineConfig, argument: str | None, make_backend: Callable[[str], ModelBackend]) -> Proposer:
    if not argument:
        raise ConfigError("speculative='draft:PATH' needs the draft model's checkpoint folder or .gguf file after 'draft:'")
    return DraftModelProposer(make_backend(argument), config)


PROPOSERS = {"ngram": _ngram, "draft": _draft}


@hookimpl
def sarathi_register_proposers(register) -> None:
    for name, factory in PROPOSERS.items():
        register(name, factory)


@hookimpl(trylast=True)
def sarathi_make_proposer(config: EngineConfig, registries: Registries,
                          make_backend: Callable[[str], ModelBackend]) -> Proposer:
    name, _, argument = (config.speculative or "").partition(":")
    factory = registries.proposers.get(name)
    if factory is None:
        known = ", ".join(sorted(registries.proposers))
        raise ConfigError(f"unknown speculative proposer {name!r}; registered: {known}")
    return factory(config, argument or None, make_backend)  # type: ignore[no-any-return]


__all__ = ["DraftModelProposer", "NgramProposer", "PROPOSERS", "sarathi_make_proposer", "sarathi_register_proposers"]

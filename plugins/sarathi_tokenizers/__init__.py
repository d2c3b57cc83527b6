"""Bundled plugin: the tokenizer of a Hugging Face checkpoint folder.

`tokenizer.json` (run by the `tokenizers` library) when the folder has one, else a sentencepiece
`tokenizer.model` (run by sentencepiece directly, not through transformers); a folder with neither
gets no tokenizer, and its prompts must be token ids. Registered by module path; the tokenizer
libraries are imported only when the hook runs.
"""

from __future__ import annotations

from pathlib import Path

from sarathi_sdk import EngineConfig, Tokenizer, hookimpl

__all__ = ["sarathi_make_tokenizer"]


@hookimpl(trylast=True)
def sarathi_make_tokenizer(config: EngineConfig) -> Tokenizer | None:
    if config.model is None or not Path(config.model).is_dir():
        return None
    folder = Path(config.model)
    from .checkpoint import read_settings

    if (folder / "tokenizer.json").is_file():
        from .json_tokenizer import JsonTokenizer

        return JsonTokenizer(folder / "tokenizer.json", read_settings(folder))
    if (folder / "tokenizer.model").is_file():
        from .sentencepiece_tokenizer import SentencePieceTokenizer

        return SentencePieceTokenizer(folder / "tokenizer.model", read_settings(folder))
    return None

"""Opening a GGUF file: its metadata as plain Python values and its tensors, checked to be of an
architecture the converter maps.

GGUF (llama.cpp's format) keeps the hyper-parameters, the tokenizer and the chat template as typed
key-value metadata, and each tensor in its own quantization. `gguf_tensors` parses both (the
tokenizer's arrays as lists, each tensor's bytes read when asked for); this module refuses, with
a `ConfigError` naming the supported ones, a file of an architecture the converter cannot map onto a
Hugging Face model (`llama`: `LlamaForCausalLM`, Mistral's files included; `qwen2`, `qwen3`:
`Qwen2ForCausalLM`, `Qwen3ForCausalLM`; `gemma2`, `gemma3`: `Gemma2ForCausalLM`, `Gemma3ForCausalLM`),
before any weight is read.

Imports the standard library, this package and the public `sarathi_sdk` API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarathi_sdk import ConfigError

from .gguf_parts import gguf_parts
from .gguf_tensors import GGUFTensor, read_tensor_table

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3")


@dataclass(frozen=True)
class GGUFFile:
    path: Path
    metadata: dict[str, Any]
    tensors: list[GGUFTensor]
    """`.name`, `.tensor_type`, `.shape`, `.data` (raw blocks, read on demand): see `gguf_tensors`."""

    @property
    def architecture(self) -> str:
        return self.metadata["general.architecture"]

    def hparam(self, key: str, default: Any = None) -> Any:
        """An architecture-scoped value: `hparam("block_count")` reads `llama.block_count`."""
        return self.metadata.get(f"{self.architecture}.{key}", default)


def open_gguf(path: Path) -> GGUFFile:
    """The model whose first (or only) file is `path`: its metadata (arrays included) and every part's
    tensors."""
    metadata, tensors = read_tensor_table(path, arrays=True)
    if int(metadata.get("split.count", 1)) > 1:
        parts = gguf_parts(path)
        if len(parts) != int(metadata["split.count"]) or parts[0] != path:
            raise ConfigError(f"{path.name}: a split model is read from its first part, named as gguf-split names it")
        for part in parts[1:]:
            tensors += read_tensor_table(part)[1]
    architecture = metadata.get("general.architecture")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise ConfigError(
            f"{path.name} is a {architecture!r} model; only GGUF files of these architectures can be "
            f"converted: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    return GGUFFile(path=path, metadata=metadata, tensors=tensors)

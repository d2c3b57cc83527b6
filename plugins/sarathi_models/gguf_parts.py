"""Which files make up one GGUF model: a plain `.gguf` file, a file in GGUF format under another name
(ollama keeps its models as `blobs/sha256-...`, without an extension), or a model split by llama.cpp's
`gguf-split` into `<name>-00001-of-0000N.gguf` .. `<name>-0000N-of-0000N.gguf` (the first part holds
the metadata, every part its own tensors).

Imports only the standard library and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import re
from pathlib import Path

from sarathi_sdk import ConfigError

MAGIC = b"GGUF"
GGUF_INDEX = "gguf.json"
"""In an index folder (`gguf.write_gguf_index`): {"files": [the model's GGUF files, first part first]}."""
SPLIT_NAME = re.compile(r"(?P<stem>.+)-(?P<number>\d{5})-of-(?P<count>\d{5})\.gguf", re.IGNORECASE)


def is_gguf(path: Path) -> bool:
    """Whether `path` is a file in GGUF format: its first four bytes, whatever its name."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) == MAGIC
    except OSError:
        return False


def gguf_parts(path: Path) -> list[Path]:
    """Every file of the model `path` names, first part first: `[path]` unless its name is a split
    part's, then all N parts, wherever in the series `path` is; a missing part is a ConfigError."""
    match = SPLIT_NAME.fullmatch(path.name)
    if match is None:
        return [path]
    count = int(match["count"])
    parts = [path.with_name(f"{match['stem']}-{number:05d}-of-{count:05d}.gguf") for number in range(1, count + 1)]
    missing = [part.name for part in parts if not part.is_file()]
    if missing:
        raise ConfigError(f"{path.name} is part of a model split in {count} files; missing: {', '.join(missing)}")
    return parts

"""A GGUF file's tensor table and scalar metadata, read without the `gguf` package's reader, and its
tensors read one at a time: what loading a model straight from the file needs.

`gguf.GGUFReader` turns every metadata value into numpy views, the tokenizer's 49,152 tokens and
48,900 merges of the default model included: opening that 98 MB file took 2.4 s and 167 MB of memory
(2026-12-07, Zen 4), more than the weights the kernels keep. Here the header is parsed with `struct`
from a memory map that is closed again: scalar values are kept, arrays are skipped unless asked for
(the tokenizer's, read once as Python lists when the index is written: 0.2 s), and each tensor's
bytes are read with one `pread` when asked for, so memory holds one tensor's raw blocks at a time and
never the mapped file.

The layout (llama.cpp's `gguf.h`, version 2 and 3, little-endian): magic, version, tensor count,
metadata count; key-value pairs (string key, uint32 type, value); tensor infos (name, dimension count,
dimensions innermost first, type, offset); the data, `general.alignment` (32 by default) aligned.

Imports numpy, the standard library and the public `sarathi_sdk` API.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sarathi_sdk import ConfigError

from .gguf_parts import MAGIC
from .gguf_types import BLOCKS, GGMLType

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
"""GGUF value type -> struct format, for the fixed-size types."""
STRING, ARRAY = 8, 9


@dataclass(frozen=True, slots=True)
class GGUFTensor:
    """One tensor of a GGUF file, its bytes read on demand (`data`)."""

    name: str
    tensor_type: GGMLType
    """Its `GGMLType`."""
    shape: tuple[int, ...]
    """Dimensions innermost first, as GGUF stores them (a weight [N, K] is (K, N))."""
    path: Path
    offset: int
    """Of the first byte, from the start of the file."""
    nbytes: int

    @property
    def data(self) -> np.ndarray:
        """The raw blocks, uint8 [*outer dimensions, bytes per row] (what `gguf.quants.dequantize` and
        `gguf_blocks.fast_blocks` take), read from the file now."""
        outer = tuple(reversed(self.shape[1:]))
        return self.rows(0, int(np.prod(outer))).reshape(*outer, -1)

    def values(self) -> np.ndarray:
        """The tensor dequantized, fp32 [*outer dimensions, inner dimension]. Float types are read
        here; the rest through `gguf.quants.dequantize`, imported only for them (the package and what
        it pulls in stay out of a process that serves a file of the kernels' types)."""
        raw = self.data  # [*outer, bytes per row]
        if self.tensor_type == GGMLType.F32:
            return raw.view(np.float32)
        if self.tensor_type == GGMLType.F16:
            return raw.view(np.float16).astype(np.float32)
        if self.tensor_type == GGMLType.BF16:
            return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        import gguf

        return np.asarray(gguf.quants.dequantize(raw, self.tensor_type), dtype=np.float32)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of the tensor seen as [rows, bytes per row] uint8, read from the file now:
        a large tensor is read in parts, so its raw blocks never sit in memory whole."""
        row_bytes = self.nbytes // max(1, int(np.prod(self.shape[1:])))
        buffer = np.empty((stop - start) * row_bytes, dtype=np.uint8)
        with self.path.open("rb", buffering=0) as handle:
            read = os.preadv(handle.fileno(), [memoryview(buffer)], self.offset + start * row_bytes)
        if read != buffer.nbytes:
            raise ConfigError(f"{self.path} ends inside tensor {self.name!r}: the file is truncated")
        return buffer.reshape(stop - start, row_bytes)


def read_tensor_table(path: Path, arrays: bool = False) -> tuple[dict[str, Any], list[GGUFTensor]]:
    """(scalar metadata, tensors) of one GGUF file, with the array values too (as lists) when `arrays`;
    a malformed file is a ConfigError."""
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return _parse(path, view, arrays)
    except (OSError, ValueError, struct.error, UnicodeDecodeError, KeyError) as exc:
        raise ConfigError(f"cannot read GGUF file {path}: {exc}") from exc


def _parse(path: Path, view: mmap.mmap, arrays: bool) -> tuple[dict[str, Any], list[GGUFTensor]]:
    if view[:4] != MAGIC:
        raise ConfigError(f"{path} is not a GGUF file")
    version, tensor_count, kv_count = struct.unpack_from("<IQQ", view, 4)
    if version not in (2, 3):
        raise ConfigError(f"{path}: GGUF version {version} (a big-endian file?) is not supported; versions 2 and 3 are")
    at = 24
    metadata: dict[str, Any] = {}

    def string() -> str:
        nonlocal at
        (length,) = struct.unpack_from("<Q", view, at)
        at += 8 + length
        return bytes(view[at - length : at]).decode("utf-8")

    def value(kind: int) -> Any:
        nonlocal at
        if kind in SCALARS:
            (result,) = struct.unpack_from(SCALARS[kind], view, at)
            at += struct.calcsize(SCALARS[kind])
            return result
        if kind == STRING:
            return string()
        if kind != ARRAY:
            raise ValueError(f"unknown metadata value type {kind}")
        element, count = struct.unpack_from("<IQ", view, at)
        at += 12
        if element in SCALARS:
            items = np.frombuffer(view, np.dtype(SCALARS[element]), count, at).tolist() if arrays else None
            at += count * struct.calcsize(SCALARS[element])
            return items
        items = [value(element) for _ in range(count)]
        return items if arrays else None  # arrays are the tokenizer's: wanted when the index is written

    for _ in range(kv_count):
        key = string()
        (kind,) = struct.unpack_from("<I", view, at)
        at += 4
        result = value(kind)
        if result is not None:
            metadata[key] = result
    infos = []
    for _ in range(tensor_count):
        name = string()
        (dims,) = struct.unpack_from("<I", view, at)
        shape = struct.unpack_from(f"<{dims}Q", view, at + 4)
        qtype, offset = struct.unpack_from("<IQ", view, at + 4 + 8 * dims)
        at += 4 + 8 * dims + 12
        infos.append((name, tuple(int(d) for d in shape), GGMLType(qtype), int(offset)))
    alignment = int(metadata.get("general.alignment", 32))
    start = -(-at // alignment) * alignment
    tensors = []
    for name, shape, qtype, offset in infos:
        block, type_size = BLOCKS[qtype]
        nbytes = int(np.prod(shape)) // block * type_size
        if start + offset + nbytes > len(view):
            raise ConfigError(f"{path} ends inside tensor {name!r}: the file is truncated")
        tensors.append(GGUFTensor(name, qtype, shape, path, start + offset, nbytes))
    return metadata, tensors

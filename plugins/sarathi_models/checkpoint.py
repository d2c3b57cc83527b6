"""Where a model's weights come from: a checkpoint folder's safetensors files, or the GGUF file(s) an
index folder names (written by `gguf.write_gguf_index`).

Both give the loader the same two things, by Hugging Face name:

- `quantized_weights()`: the weights stored in a form the quantized kernels take, each with its code
  width (4, 5, 6 or 8 bits), and `quantized(name)` reading one of them as codes, scale and minimum, by
  ranges of rows (`StoredRows`): a folder's
  `quantized.safetensors` (written by `sarathi convert`), or a GGUF file's tensors of
  `gguf_blocks.FAST_TYPES`, read from their blocks;
- `tensors(skip)`: every other tensor as a float tensor (a GGUF tensor dequantized, one at a time),
  leaving out the names in `skip`: the weights a module keeps only quantized are never read densely.

Imports torch, safetensors, this package and the public `sarathi_sdk` API; gguf and numpy when a
GGUF index is opened.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError, safe_open
from tqdm.auto import tqdm

from sarathi_sdk import ConfigError

from .gguf_file import GGUFFile
from .gguf_parts import GGUF_INDEX
from .gguf_tensors import read_tensor_table
from .gguf_weights import NOT_WEIGHTS, QUANTIZED_FILE, dense_weight, fast_reader, hf_name

StoredWeight = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""codes [N, K] uint8, scale and minimum [N, K / 32] (or [N, K / 16]: a scale per half group) fp16."""


@dataclass(frozen=True)
class StoredRows:
    """One stored quantized weight [N, K], read by ranges of output rows when asked (`read`), so it can
    be packed for the kernels without its whole codes in memory at once (`quant.pack_rows`)."""

    rows: int
    inputs: int
    scale_width: int
    """K / 32, or K / 16 with a scale per half group."""
    read: Callable[[int, int], StoredWeight]
    """(start, stop) -> rows [start, stop) of codes, scale and minimum."""

    def whole(self) -> StoredWeight:
        return self.read(0, self.rows)


class Checkpoint(Protocol):
    def quantized_weights(self) -> dict[str, int]:
        """Weight name (`model.layers.0.self_attn.q_proj`, no `.weight`) -> code bits (4, 5, 6 or 8)."""
        ...

    def quantized(self, name: str) -> StoredRows:
        """One weight of `quantized_weights`, to be read by rows."""
        ...

    def tensors(self, skip: Container[str]) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, tensor) of every dense tensor but those named in `skip`."""
        ...


def open_checkpoint(model_dir: str | Path, hf_config: dict[str, Any]) -> Checkpoint:
    """The weights of the folder `model_dir`: a GGUF index's files, or its safetensors."""
    folder = Path(model_dir)
    if (folder / GGUF_INDEX).is_file():
        return GGUFCheckpoint(folder / GGUF_INDEX, hf_config)
    return SafetensorsCheckpoint(folder)


class SafetensorsCheckpoint:
    """A Hugging Face folder: `model.safetensors` (or its shards), and `quantized.safetensors` if any."""

    def __init__(self, folder: Path) -> None:
        self.files = safetensors_files(folder)
        self.quantized_file = folder / QUANTIZED_FILE

    def quantized_weights(self) -> dict[str, int]:
        if not self.quantized_file.is_file():
            return {}
        with open_safetensors(self.quantized_file) as handle:
            kinds = (key.rpartition(".") for key in handle.keys())
            return {name.removesuffix(".weight"): 4 if kind == "q4" else 8 for name, _, kind in kinds
                    if kind in ("q4", "u8")}

    def quantized(self, name: str) -> StoredRows:
        with open_safetensors(self.quantized_file) as handle:
            key = f"{name}.weight"
            if f"{key}.q4" in handle.keys():
                packed = handle.get_tensor(f"{key}.q4")  # [N, K/2]: two codes a byte
                codes = torch.stack((packed & 0x0F, packed >> 4), dim=-1).flatten(1)  # [N, K]
                kind = "q4"
            else:
                codes, kind = handle.get_tensor(f"{key}.u8"), "u8"  # [N, K]
            scale, minimum = handle.get_tensor(f"{key}.{kind}_scale"), handle.get_tensor(f"{key}.{kind}_min")
        return StoredRows(codes.shape[0], codes.shape[1], scale.shape[1],
                          lambda a, b: (codes[a:b], scale[a:b], minimum[a:b]))

    def tensors(self, skip: Container[str]) -> Iterator[tuple[str, torch.Tensor]]:
        total = 0
        for f in self.files:
            with open_safetensors(f) as handle:
                total += sum(name not in skip for name in handle.keys())
        with tqdm(total=total, desc="Loading weights", unit="tensor", leave=False) as bar:
            for f in self.files:
                with open_safetensors(f) as handle:
                    for name in handle.keys():
                        if name not in skip:
                            yield name, handle.get_tensor(name)
                            bar.update(1)


class GGUFCheckpoint:
    """The GGUF file(s) an index folder names, read tensor by tensor (`gguf_tensors`)."""

    def __init__(self, index: Path, hf_config: dict[str, Any]) -> None:
        try:
            files = [Path(p) for p in json.loads(index.read_text(encoding="utf-8"))["files"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{index} is not a GGUF index: {exc}") from exc
        if not files:
            raise ConfigError(f"{index} names no GGUF file")
        metadata, tensors = read_tensor_table(files[0])
        for part in files[1:]:
            tensors += read_tensor_table(part)[1]
        self.file = GGUFFile(path=files[0], metadata=metadata, tensors=tensors)
        self.heads = int(hf_config["num_attention_heads"])
        self.kv_heads = int(hf_config.get("num_key_value_heads", self.heads))
        self.by_name: dict[str, Any] = {}
        """HF name -> its `gguf_tensors.GGUFTensor`."""
        for tensor in tensors:
            if tensor.name not in NOT_WEIGHTS:
                self.by_name[hf_name(tensor.name, self.file.architecture)[0]] = tensor

    def quantized_weights(self) -> dict[str, int]:
        from .gguf_blocks import FAST_TYPES, FIVE_BIT_TYPES, FOUR_BIT_TYPES, Q

        def bits(qtype: Any) -> int:
            return 4 if qtype in FOUR_BIT_TYPES else 5 if qtype in FIVE_BIT_TYPES else 6 if qtype == Q.Q6_K else 8

        return {name.removesuffix(".weight"): bits(tensor.tensor_type)
                for name, tensor in self.by_name.items() if tensor.tensor_type in FAST_TYPES}

    def quantized(self, name: str) -> StoredRows:
        tensor = self.by_name[f"{name}.weight"]
        read = fast_reader(self.file, tensor, self.heads, self.kv_heads)

        def torch_rows(start: int, stop: int) -> StoredWeight:
            blocks = read(start, stop)
            return torch.from_numpy(blocks.codes), torch.from_numpy(blocks.scale), torch.from_numpy(blocks.minimum)

        from .gguf_blocks import Q

        inputs = int(tensor.shape[0])
        return StoredRows(int(tensor.shape[1]), inputs, inputs // (16 if tensor.tensor_type == Q.Q6_K else 32),
                          torch_rows)

    def tensors(self, skip: Container[str]) -> Iterator[tuple[str, torch.Tensor]]:
        names = [name for name in self.by_name if name not in skip]
        for name in tqdm(names, desc="Loading weights", unit="tensor", leave=False):
            _, array = dense_weight(self.file, self.by_name[name], self.heads, self.kv_heads)
            yield name, torch.from_numpy(array)


def safetensors_files(model_dir: str | Path) -> list[Path]:
    """The checkpoint's weight files: the shards of the index if there is one, else every file."""
    folder = Path(model_dir)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files = [folder / name for name in shards]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"shards listed in {index} are missing: {', '.join(missing)}")
        return files
    files = sorted(f for f in folder.glob("*.safetensors") if f.name != QUANTIZED_FILE)
    if not files:
        raise ConfigError(f"no *.safetensors weights in {folder} (pickled checkpoints are not loaded)")
    return files


@contextlib.contextmanager
def open_safetensors(path: Path) -> Iterator[Any]:
    """`safe_open` whose failures (a corrupted or absurd header, a truncated body, an unreadable file)
    are a ConfigError naming the file, raised while opening or while reading any tensor."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            yield handle
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{path} is not a readable safetensors file: {exc}") from exc

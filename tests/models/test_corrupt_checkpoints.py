"""A damaged .safetensors file is a ConfigError naming the file, as a damaged GGUF file is."""

from __future__ import annotations

import asyncio
import shutil
import struct

import pytest

from sarathi_sdk import ConfigError, Engine


def _corrupt_header(data: bytes) -> bytes:
    return data[:8] + b"{garbage" + data[16:]


def _absurd_header_length(data: bytes) -> bytes:
    return struct.pack("<Q", 2**60) + data[8:]


def _truncated_body(data: bytes) -> bytes:
    header = struct.unpack("<Q", data[:8])[0]
    return data[: 8 + header + 64]


@pytest.mark.parametrize("damage", [_corrupt_header, _absurd_header_length, _truncated_body])
def test_a_damaged_safetensors_file_is_a_config_error_naming_it(checkpoint, tmp_path, damage):
    folder = tmp_path / "damaged"
    shutil.copytree(checkpoint("llama"), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))

    async def start() -> None:
        async with Engine(str(folder)):
            pass

    with pytest.raises(ConfigError, match="model.safetensors is not a readable safetensors file"):
        asyncio.run(asyncio.wait_for(start(), 60))

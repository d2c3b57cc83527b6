"""The GGML type table the reader keeps (`gguf_types`) against the `gguf` package's, float tensors read
without that package, and a process that serves a file of the kernels' types importing neither
`gguf` nor sympy: each stayed resident for the life of the process (4 MB and 32 MB, 2026-12-07),
a third of what a 100 MB file cost beside its codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import gguf
import numpy as np
import pytest
import sentencepiece

from sarathi_models.gguf_tensors import read_tensor_table
from sarathi_models.gguf_types import BLOCKS, GGMLType
from tests.gguf.tiny_gguf import random_llama, write_llama_gguf

Q = gguf.GGMLQuantizationType


def test_the_type_table_is_the_gguf_packages():
    assert {t.name: int(t) for t in GGMLType} == {t.name: int(t) for t in Q}
    assert {int(t): size for t, size in BLOCKS.items()} == {int(t): size for t, size in gguf.GGML_QUANT_SIZES.items()}


@pytest.mark.parametrize("kind", [Q.F32, Q.F16, Q.BF16, Q.Q8_0])
def test_values_are_what_gguf_dequantizes(tmp_path, kind):
    values = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)  # [rows, K]
    writer = gguf.GGUFWriter(str(tmp_path / "t.gguf"), "llama")
    stored = values if kind == Q.F32 else gguf.quants.quantize(values, kind)
    writer.add_tensor("w", stored, raw_dtype=None if kind == Q.F32 else kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (tensor,) = read_tensor_table(tmp_path / "t.gguf")[1]
    expected = gguf.quants.dequantize(tensor.data, kind)  # [3, 64]
    assert tensor.values().dtype == np.float32
    np.testing.assert_array_equal(tensor.values(), expected)


def test_serving_a_file_imports_neither_gguf_nor_sympy(sp_model, tmp_path):
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    path = tmp_path / "tiny-q8.gguf"
    quant = {name: Q.Q8_0 for name in ("token_embd.weight", *(f"blk.{i}.{part}.weight" for i in range(2) for part in (
        "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")))}
    write_llama_gguf(path, random_llama(vocab), sp_model, quant=quant)
    script = textwrap.dedent(f"""
        import json, sys, anyio, sarathi_sdk

        async def main():
            params = sarathi_sdk.SamplingParams(max_tokens=4, temperature=0, ignore_eos=True)
            async with sarathi_sdk.Engine({str(path)!r}, token_budget=8) as engine:
                return len((await engine.complete("def main():", params)).token_ids)

        tokens = anyio.run(main)
        print(json.dumps({{"tokens": tokens, "imported": [m for m in ("gguf", "sympy") if m in sys.modules]}}))
    """)
    env = dict(os.environ, SARATHI_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"tokens": 4, "imported": []}

"""`python -m tests.gguf.big_llama FOLDER --llamacpp-python PY`: the larger files of the memory table in
docs/benchmarks.md. A random-weight Llama (hidden 2,048, 16 layers, intermediate 5,632, 32 query and 8
KV heads: 722M parameters) with a 1,000-token sentencepiece vocabulary, written as F16 GGUF by
`tiny_gguf`, then quantized to Q8_0 and Q4_K_M by llama.cpp's own `llama_model_quantize` (run in the
llama-cpp-python interpreter `PY`). The F16 file (1.45 GB) is removed afterwards. A manual tool: CI
never runs it (llama.cpp is not a test dependency).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import gguf
import sentencepiece
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tests.gguf.tiny_gguf import gguf_tensors, write_llama_gguf
from tests.tokenizers.spm import train_sentencepiece

QUANTIZE = """
import sys, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.nthread = 2
for name in ("Q8_0", "Q4_K_M"):
    params.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + name)
    out = sys.argv[1].replace("-F16.gguf", "-" + name + ".gguf")
    if llama_cpp.llama_model_quantize(sys.argv[1].encode(), out.encode(), params) != 0:
        raise SystemExit("llama_model_quantize failed for " + name)
    print(out)
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.gguf.big_llama", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--llamacpp-python", required=True, help="an interpreter with llama-cpp-python installed")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    sp_model = train_sentencepiece(args.folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size(),
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    model = LlamaForCausalLM(config).eval()
    matrices = [name for name, array in gguf_tensors(model, permute=True, gemma=False) if array.ndim == 2]
    f16 = args.folder / "big-F16.gguf"
    write_llama_gguf(f16, model, sp_model, quant=dict.fromkeys(matrices, gguf.GGMLQuantizationType.F16))
    subprocess.run([args.llamacpp_python, "-c", QUANTIZE, str(f16)], check=True)
    f16.unlink()


if __name__ == "__main__":
    main()

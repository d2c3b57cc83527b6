"""`python -m tests.gguf.llamacpp_gemma <python with llama-cpp-python>`: tiny Gemma 2 and Gemma 3 GGUF
files, written as the tests write them (`tiny_gguf`), run by the engine and by llama.cpp.

Not a test (llama.cpp is no dependency of the project): a check against the outside reference that
the tests' writer and our reading of Gemma's conventions (norm offsets, window pattern, soft-caps, the
windowed layers' RoPE base, the attention scale) agree with llama.cpp's own. For each architecture and
type (F32, Q8_0 and a Q4_K_M-like mix) and four prompts, the engine's 16 greedy tokens (fp32 for the
F32 file, bf16 on the quantized kernels otherwise) are compared with llama.cpp's argmax at every
position of the same token sequence (teacher-forced, `logits_all=True`); where they part, the line
gives our token's rank and logit gap in llama.cpp's logits.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np
import sentencepiece

from sarathi_sdk import Engine, SamplingParams
from sarathi_sdk.bench.llamacpp_logits import save_llamacpp_logits
from tests.gguf.test_gguf_fast_types import type_of
from tests.gguf.tiny_gguf import gguf_tensors, random_gemma, write_llama_gguf
from tests.tokenizers.spm import train_sentencepiece

PROMPTS = ["def main():\n    return 0", "The quick brown fox jumps over", "hello world, hello", "1 2 3 4 5 6 7 8"]
TYPES = ["F32", gguf.GGMLQuantizationType.Q8_0, "mixed"]


async def greedy(path: Path, dtype: str, prompt: str) -> tuple[list[int], list[int]]:
    async with Engine(str(path), dtype=dtype, max_num_seqs=4, token_budget=8) as engine:
        ids = engine.tokenizer.encode(prompt)
        out = await engine.complete(ids, SamplingParams(max_tokens=16, temperature=0, ignore_eos=True))
    return ids, list(out.token_ids)


def main(python: str) -> None:
    root = Path(tempfile.mkdtemp())
    sp_model = train_sentencepiece(root)
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    for architecture in ("gemma2", "gemma3"):
        model = random_gemma(architecture, vocab, hidden_size=256, intermediate_size=512)
        for qtype in TYPES:
            name = qtype if isinstance(qtype, str) else qtype.name
            path = root / f"{architecture}-{name}.gguf"
            quant = None if qtype == "F32" else {
                n: type_of(n, qtype) for n, a in gguf_tensors(model, gemma=True) if a.ndim == 2}
            write_llama_gguf(path, model, sp_model, quant=quant, architecture=architecture)
            dtype = "float32" if qtype == "F32" else "bfloat16"
            for prompt in PROMPTS:
                ids, tokens = asyncio.run(greedy(path, dtype, prompt))
                save_llamacpp_logits(str(path), ids + tokens, str(root / "logits.npy"), python, 2)
                logits = np.load(root / "logits.npy")[len(ids) - 1 : len(ids) - 1 + len(tokens)]  # [16, V]
                best = logits.argmax(-1)
                first = next((i for i, token in enumerate(tokens) if best[i] != token), None)
                head = f"{architecture} {name:6s} {dtype:8s} {prompt[:14]!r:18s}"
                if first is None:
                    print(f"{head} 16/16 llama.cpp's argmax ({len(set(tokens))} distinct tokens)")
                else:
                    row = logits[first]
                    rank = int((row > row[tokens[first]]).sum()) + 1
                    print(f"{head} parts at token {first}: ours is llama.cpp's #{rank}, "
                          f"{row[best[first]] - row[tokens[first]]:.4f} below its first")


if __name__ == "__main__":
    main(sys.argv[1])

"""The GGUF benchmarks run end to end on a tiny file (their numbers are read from their output, not
here): memory and cache bytes per run, and prompt time on stored-quantized against dense weights."""

from __future__ import annotations

import gguf
import pytest
import sentencepiece

from sarathi_sdk.bench import memory, prefill_weights
from tests.gguf.tiny_gguf import gguf_tensors, random_llama, write_llama_gguf


@pytest.fixture(scope="module")
def q8_file(sp_model, tmp_path_factory):
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    model = random_llama(vocab)
    path = tmp_path_factory.mktemp("bench") / "tiny-q8.gguf"
    quant = {name: gguf.GGMLQuantizationType.Q8_0 for name, array in gguf_tensors(model) if array.ndim == 2}
    write_llama_gguf(path, model, sp_model, quant=quant)
    return path


@pytest.mark.timeout(300)
def test_the_memory_benchmark_reports_both_runs(q8_file, capsys):
    assert memory.main([str(q8_file)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny-q8.gguf")]
    assert [row.split("|")[3].strip() for row in rows] == ["first use", "second"]
    assert all(float(row.split("|")[4]) < 1.0 for row in rows)  # MB in the cache: the index only


@pytest.mark.timeout(300)
def test_the_prefill_weights_benchmark_prints_a_ratio(q8_file, capsys):
    assert prefill_weights.main(["--model", str(q8_file), "--turns", "1", "--sentences", "4"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("ratio: ")


@pytest.mark.timeout(300)
def test_the_accuracy_benchmark_compares_with_the_fp32_model(q8_file, capsys):
    from sarathi_sdk.bench import accuracy

    assert accuracy.main(["--model", str(q8_file), "--llamacpp-python", "", "--text", "def main():\n    return 0"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "KL mean" in line]
    assert len(rows) == 2 and "llama.cpp" not in out  # no interpreter given: llama.cpp is skipped
    kl = [float(row.split("KL mean")[1].split()[0]) for row in rows]
    assert all(0 <= value < 1 for value in kl)

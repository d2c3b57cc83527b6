"""`bench.cpu --isa`'s arithmetic, options and process plumbing; its measurements are read from its
output, not tested (each level's engine takes minutes to build its kernels)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from sarathi_sdk.bench import contention, isa, isa_report, isa_worker

NATIVE, AVX2_BUILD = "/venvs/native/bin/python", "/venvs/avx2/bin/python"


def _runs(b1, b16, loaded_b1, loaded_b16):
    return {"decode_b1": b1, "decode_b16": b16, "loaded_decode_b1": loaded_b1, "loaded_decode_b16": loaded_b16}


def _summary(variants=None):
    variants = variants or {"avx512": "avx512", "avx2": "avx2", "torch": "torch"}
    runs = {"avx512": _runs([250.0, 125.0], [1000.0, 500.0], [100.0, 50.0], [300.0, 150.0]),
            "avx2": _runs([150.0, 75.0], [700.0, 350.0], [90.0, 45.0], [280.0, 140.0]),
            "torch": _runs([100.0, 50.0], [350.0, 175.0], [40.0, 20.0], [100.0, 50.0])}
    runs = {level: r for level, r in runs.items() if variants[level] == level}
    lc_runs = {NATIVE: {"decode": [125.0, 62.5], "loaded_decode": [62.5, 31.25]},
               AVX2_BUILD: {"decode": [100.0, 50.0], "loaded_decode": [60.0, 30.0]}}
    pythons = {"avx512": NATIVE, "avx2": AVX2_BUILD}
    same, other = [[1] * 32] * 32, [[1] * 16 + [2] * 16] * 32
    tokens = {"avx512": same, "avx2": same, "torch": other}
    tokens = {level: t for level, t in tokens.items() if level in runs}
    return isa._summary("model.gguf", list(variants), pythons, 2, variants, runs, lc_runs, tokens)


def test_every_ratio_is_paired_within_a_repeat():
    # the machine runs at half speed in the second repeat: every ratio is the same in both
    r = _summary()["ratios"]
    assert r["avx512"]["b1_vs_llamacpp"] == pytest.approx(2.0)
    assert r["avx512"]["b16_vs_llamacpp"] == pytest.approx(8.0)
    assert r["avx2"]["b1_vs_llamacpp"] == pytest.approx(1.5)
    assert r["avx2"]["b16_vs_llamacpp"] == pytest.approx(7.0)
    assert r["avx512"]["b1_vs_torch"] == pytest.approx(2.5) and r["avx2"]["b16_vs_torch"] == pytest.approx(2.0)
    assert r["avx512"]["loaded_b1"] == pytest.approx(0.4) and r["avx512"]["llamacpp_loaded"] == pytest.approx(0.5)
    assert r["avx512"]["contended_vs_llamacpp"] == pytest.approx(0.8)
    assert r["avx2"]["contended_vs_llamacpp"] == pytest.approx(1.0)
    assert "b1_vs_llamacpp" not in r["torch"] and "b1_vs_torch" not in r["torch"]


def test_the_record_carries_the_machine_each_levels_build_and_the_agreement_between_builds():
    summary = _summary()
    assert summary["machine"]["kernel_variant"] == {"avx512": "avx512", "avx2": "avx2", "torch": "torch"}
    assert {"cpu_model", "cpu_flags", "date", "command"} <= set(summary["machine"])
    assert summary["agreement"] == {"avx512/avx2": 1.0, "avx512/torch": 0.5, "avx2/torch": 0.5}
    assert len(summary["greedy_tokens"]["torch"]) == 32  # kept, to see where two builds part
    assert summary["levels"]["avx512"]["decode_b1_tok_s"] == pytest.approx(187.5)  # median of the repeats
    assert summary["levels"]["avx512"]["llamacpp"]["python"] == NATIVE


def test_the_table_shows_the_build_that_ran_and_every_goal_beside_its_measurement():
    table = "\n".join(isa_report.report(_summary()))
    assert "avx512: the engine ran kernel_variant=avx512" in table
    assert "avx2: the engine ran kernel_variant=avx2" in table
    assert ">= 2x  yes" in table and ">= 8x  yes" in table  # avx512 against llama.cpp, at the goals
    assert ">= 1x  yes" in table and ">= 6x  yes" in table  # avx2
    assert "greedy agreement with avx2" in table and ">= 0.95  yes" in table
    assert "greedy agreement with torch" in table and "0.500" in table
    assert "contended: ours vs llama.cpp's (batch-1)" in table and "0.80x" in table
    assert table.count("NO") == 1  # avx512 keeps less of its rate under load than llama.cpp does


def test_a_level_whose_worker_ran_another_build_is_skipped_not_reported_under_its_name():
    summary = _summary({"avx512": "avx512", "avx2": "torch", "torch": "torch"})
    assert "avx2" not in summary["levels"] and "kernel_variant='torch'" in summary["skipped"]["avx2"]
    assert summary["machine"]["kernel_variant"]["avx2"] == "torch"
    assert "avx2: skipped" in "\n".join(isa_report.report(summary))


def test_each_level_gets_the_llamacpp_named_for_it_and_torch_none_by_default(monkeypatch):
    monkeypatch.setattr(isa.importlib.util, "find_spec", lambda name: object())  # llama_cpp "installed" here
    pythons = isa.llamacpp_pythons(["avx512", "avx2", "torch"], [f"x86-64-v3={sys.executable}"])
    assert pythons == {"avx512": sys.executable, "avx2": sys.executable}
    monkeypatch.setattr(isa.importlib.util, "find_spec", lambda name: None)
    assert isa.llamacpp_pythons(["avx512", "torch"], []) == {}
    with pytest.raises(SystemExit):
        isa.llamacpp_pythons(["avx512"], ["avx512"])
    with pytest.raises(SystemExit):
        isa.llamacpp_pythons(["avx512"], ["avx2=" + sys.executable])  # not a level of the run


def test_a_levels_worker_sees_only_its_own_kernel_variable(monkeypatch):
    monkeypatch.setenv("SARATHI_CPU_KERNELS", "0")
    avx2 = isa_worker.level_env("avx2")
    assert avx2["SARATHI_CPU_ARCH"] == "avx2" and "SARATHI_CPU_KERNELS" not in avx2
    monkeypatch.setenv("SARATHI_CPU_ARCH", "avx512")
    torch_path = isa_worker.level_env("torch")
    assert torch_path["SARATHI_CPU_KERNELS"] == "0" and "SARATHI_CPU_ARCH" not in torch_path


STAND_IN = """
import sys
print("a compiler log line", flush=True)
print('sarathi-isa-result {"kernel_variant": "avx2"}', flush=True)
for line in sys.stdin:
    if line.strip() == "decode":
        print('sarathi-isa-result {"decode_b1": 1.0, "decode_b16": 2.0}', flush=True)
    elif line.strip() == "hang":
        pass
"""


def test_the_worker_protocol_passes_logs_on_and_every_wait_has_a_deadline(capsys):
    worker = isa_worker.LevelWorker("avx2", "model.gguf", child=(sys.executable, "-c", STAND_IN))
    try:
        assert worker.ready() == "avx2"
        assert worker.ask("decode") == {"decode_b1": 1.0, "decode_b16": 2.0}
        with pytest.raises(TimeoutError):
            worker.ask("hang", timeout=0.5)
    finally:
        worker.close()
    assert "a compiler log line" in capsys.readouterr().err


def test_busy_cores_spin_one_process_per_core_until_the_block_ends(monkeypatch):
    monkeypatch.setattr(contention, "SETTLE_S", 0.0)
    with contention.busy_cores() as procs:
        assert len(procs) == os.cpu_count()
        time.sleep(0.2)
        assert all(p.poll() is None for p in procs)
    assert all(p.poll() is not None for p in procs)

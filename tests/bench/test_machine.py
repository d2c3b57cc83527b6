"""The `machine` object every benchmark record carries: which CPU, its SIMD flags, which kernel build,
when and by which command (read, never measured: these tests run no model)."""

from __future__ import annotations

import datetime
import sys

from sarathi_sdk.bench import machine

X86_CPUINFO = """processor\t: 0
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt avx f16c avx2 bmi2 avx512f avx512_vnni avx512_bf16 lahf_lm
processor\t: 1
flags\t\t: fpu sse avx2 amx_tile
"""
ARM_CPUINFO = """processor\t: 0
Features\t: fp asimd evtstrm aes crc32 atomics fphp asimdhp asimddp sve sve2
CPU implementer\t: 0x41
"""


def test_the_record_names_the_cpu_its_simd_flags_the_kernel_build_the_date_and_the_command():
    record = machine.describe("cpu", "avx2")
    assert isinstance(record["cpu_model"], str) and record["cpu_model"]
    assert isinstance(record["cpu_flags"], list) and all(isinstance(f, str) for f in record["cpu_flags"])
    assert record["cpu_flags"] == machine.cpu_flags()  # this machine's own
    assert record["kernel_variant"] == "avx2"
    assert datetime.datetime.fromisoformat(record["date"]).tzinfo is not None
    assert sys.orig_argv[0] in record["command"]


def test_a_run_of_several_builds_records_each_levels_build():
    record = machine.describe("cpu", {"avx512": "avx512", "avx2": "avx2", "torch": "torch"})
    assert record["kernel_variant"]["avx2"] == "avx2"


def test_simd_flags_are_the_first_processors_vector_extensions_on_x86_and_arm():
    assert machine.cpu_flags(X86_CPUINFO) == ["avx", "avx2", "avx512_bf16", "avx512_vnni", "avx512f", "f16c", "fma",
                                              "sse4_1", "sse4_2"]
    assert machine.cpu_flags(ARM_CPUINFO) == ["asimd", "asimddp", "asimdhp", "sve", "sve2"]
    assert machine.cpu_flags("") == []


def test_a_backend_that_does_not_say_its_kernel_build_reads_unknown():
    class Backend:
        kernel_variant = "avx512"

    assert machine.kernel_variant_of(Backend()) == "avx512"
    assert machine.kernel_variant_of(object()) == "unknown"
    assert machine.kernel_variant_of(None) == "unknown"

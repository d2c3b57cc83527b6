"""Which build of the CPU kernels runs where (`cpu_isa`, `cpu_ops`): the level chosen for each CPU,
the torch path where no level is fast, builds keyed so that none is loaded on a CPU without its
features, and which kernels each level has."""

from __future__ import annotations

import pytest

from sarathi_models import cpu_isa, cpu_ops
from sarathi_models.cpu_isa import AVX2, AVX512, PORTABLE_X86, choose_level

ZEN4 = AVX512.requires | {"sha_ni", "avx512_bitalg"}
ZEN3 = AVX2.requires | {"sha_ni", "vaes"}  # AVX2, FMA, F16C; no AVX-512
ICE_LAKE = AVX512.requires - {"avx512_bf16"}  # AVX-512 and VNNI, no BF16
NEHALEM = PORTABLE_X86.requires


@pytest.mark.parametrize(("features", "want"), [(ZEN4, "avx512"), (ZEN3, "avx2"), (ICE_LAKE, "avx2")])
def test_auto_takes_the_best_fast_level_the_cpu_runs(features, want):
    choice = choose_level(frozenset(features), "auto")
    assert choice.level is not None and choice.level.name == want


@pytest.mark.parametrize("features", [NEHALEM, frozenset()])
def test_a_cpu_without_avx2_runs_the_torch_path(features):
    choice = choose_level(frozenset(features), "auto")
    assert choice.level is None and "AVX2" in choice.reason


GRAVITON2 = frozenset({"fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp",
                       "asimdhp", "cpuid", "asimdrdm", "lrcpc", "dcpop", "asimddp", "ssbs"})
CORTEX_A72 = frozenset({"fp", "asimd", "evtstrm", "crc32", "cpuid"})  # Raspberry Pi 4: no dotprod


@pytest.mark.parametrize(("features", "want"), [(GRAVITON2, "neon-dotprod"), (CORTEX_A72, "neon")])
def test_arm64_takes_its_neon_level(features, want, monkeypatch):
    monkeypatch.setattr(cpu_isa.platform, "machine", lambda: "aarch64")
    assert [level.name for level in cpu_isa.levels()] == ["neon-dotprod", "neon", "portable"]
    choice = choose_level(features, "auto")
    assert choice.level is not None and choice.level.name == want
    assert choose_level(features, "armv8-a").level == cpu_isa.NEON
    refused = choose_level(CORTEX_A72, "neon-dotprod")
    assert refused.level is None and "asimddp" in refused.reason


def test_another_architecture_runs_the_torch_path(monkeypatch):
    monkeypatch.setattr(cpu_isa.platform, "machine", lambda: "riscv64")
    assert [level.name for level in cpu_isa.levels()] == ["portable"]
    assert choose_level(frozenset({"rv64imafdc"}), "auto").level is None


@pytest.mark.parametrize(("requested", "want"), [("x86-64-v3", "avx2"), ("avx2", "avx2"), ("x86-64-v2", "portable"),
                                                 ("portable", "portable"), ("x86-64-v4", "avx512")])
def test_a_requested_level_runs_where_the_cpu_has_its_features(requested, want):
    choice = choose_level(frozenset(ZEN4), requested)
    assert choice.level is not None and choice.level.name == want


def test_a_level_the_cpu_lacks_is_refused_with_what_is_missing():
    choice = choose_level(frozenset(ZEN3), "avx512")
    assert choice.level is None and "avx512f" in choice.reason
    unknown = choose_level(frozenset(ZEN4), "sse9")
    assert unknown.level is None and "not a level" in unknown.reason


def test_builds_are_named_by_level_and_by_what_they_are_built_from():
    names = {level.name: cpu_ops.build_name(level) for level in (AVX512, AVX2, PORTABLE_X86)}
    assert len(set(names.values())) == 3
    assert all(name.startswith(f"sarathi_cpu_ops_{level}_") for level, name in names.items())
    assert cpu_ops.build_name(AVX2) == names["avx2"]  # stable from one process to the next


def test_a_build_is_never_loaded_on_a_cpu_without_its_features(monkeypatch):
    """A CPU that looks like a Zen 3 gets the avx2 build even where an avx512 one is cached."""
    monkeypatch.setattr(cpu_isa, "cpu_features", lambda: frozenset(ZEN3))
    monkeypatch.delenv(cpu_isa.ARCH_ENV, raising=False)
    monkeypatch.delenv(cpu_ops.DISABLE_ENV, raising=False)
    cpu_ops.kernels.cache_clear()
    cpu_ops.kernels_for.cache_clear()
    try:
        assert cpu_ops.kernels_for("avx512") is None
        module = cpu_ops.kernels()
        if module is None:
            pytest.skip("no C++ compiler")
        assert module.isa_level() == "avx2" and cpu_ops.kernel_variant() == "avx2"
        monkeypatch.setenv(cpu_isa.ARCH_ENV, "avx512")
        cpu_ops.kernels.cache_clear()
        assert cpu_ops.kernels() is None and cpu_ops.kernel_variant() == "torch"
    finally:
        cpu_ops.kernels.cache_clear()
        cpu_ops.kernels_for.cache_clear()


def test_each_level_says_which_kernels_it_has(fused):
    """The fast levels have every kernel; the portable build runs SDPA for prefill chunks (a scalar
    prefill kernel would be slower than torch's)."""
    level = fused.isa_level()
    assert fused.prefill_attention_supported() == (level != "portable")
    from sarathi_models.cpu_attention import CpuAttention

    assert CpuAttention(fused).has_prefill_kernel == (level != "portable")


@pytest.mark.parametrize("case", ["no compiler", "no avx2"])
def test_without_a_compiler_or_a_fast_level_the_torch_path_runs_with_one_warning(case, monkeypatch, caplog):
    monkeypatch.delenv(cpu_isa.ARCH_ENV, raising=False)
    monkeypatch.delenv(cpu_ops.DISABLE_ENV, raising=False)
    if case == "no compiler":
        monkeypatch.setenv("CXX", "/nonexistent/c++")
    else:
        monkeypatch.setattr(cpu_isa, "cpu_features", lambda: frozenset(NEHALEM))
    cpu_ops.kernels.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=cpu_ops.__name__):
            assert cpu_ops.kernels() is None and cpu_ops.kernel_variant() == "torch"
        assert len(caplog.records) == 1  # said once, however often the kernels are asked for
        assert ("compiler" if case == "no compiler" else "AVX2") in caplog.records[0].getMessage()
    finally:
        cpu_ops.kernels.cache_clear()

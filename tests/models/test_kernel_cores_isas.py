"""The kernels' cores (`csrc/*.h`: plain C++, no ATen) built alone for each ISA level and run, so one
x86 machine checks the arithmetic of every CPU the kernels serve, ARM64 included:

- `tests/csrc/kernels_check.cpp` runs every kernel and the vector operations they are built from on
  fixed inputs and prints a hash of each output: every level must print the same hashes (one numerics
  on every CPU; on the avx512 level the operations are the AVX-512 instructions themselves, so the
  other levels are held to vdpbf16ps and friends), and the attention outputs must be near float64;
- `tests/csrc/quant_core_check.cpp` holds each level's quantized-matmul pass to its scalar form at
  every row count;
- the ATen-bound sources compile for ARM64 as they are.

The x86 levels run where this CPU has them; ARM64 builds with `g++-aarch64-linux-gnu` and runs under
`qemu-user` (Debian packages; a development check, skipped where they are missing)."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from torch.utils.cpp_extension import include_paths

from sarathi_models.cpu_isa import AVX2, AVX512, PORTABLE_X86, runnable_levels
from sarathi_models.cpu_ops import COMMON_FLAGS, SOURCES

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "tests" / "csrc"
CSRC = ROOT / "plugins" / "sarathi_models" / "csrc"
RUNNABLE = {level.name for level in runnable_levels()}
X86 = [(level.name, level.flags) for level in (AVX512, AVX2, PORTABLE_X86)]
ARM64 = [("neon", ("-march=armv8-a",)), ("neon-dotprod", ("-march=armv8.2-a+dotprod",))]
# the extension's arithmetic flags (no OpenMP: the cores run on one thread here)
MATH_FLAGS = tuple(flag for flag in COMMON_FLAGS if flag not in ("-fopenmp", "-fvisibility=hidden"))


def gxx() -> str:
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    return "g++"


def arm64() -> tuple[str, str]:
    compiler, qemu = shutil.which("aarch64-linux-gnu-g++"), shutil.which("qemu-aarch64")
    if compiler is None or qemu is None:
        pytest.skip("needs g++-aarch64-linux-gnu and qemu-user (apt-get install g++-aarch64-linux-gnu qemu-user)")
    return compiler, qemu


def build_and_run(compiler: str, flags: tuple[str, ...], check: str, out: Path, runner: list[str]) -> str:
    subprocess.run([compiler, *MATH_FLAGS, "-static", *flags, f"-I{CSRC}", str(CHECKS / check), "-o", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    done = subprocess.run([*runner, str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def hashes(output: str) -> dict[str, str]:
    lines = dict(line.split() for line in output.splitlines())
    lines.pop("level")
    return lines


@pytest.fixture(scope="module")
def x86_hashes(tmp_path_factory) -> dict[str, dict[str, str]]:
    """Each runnable x86 level's kernel hashes."""
    compiler, folder = gxx(), tmp_path_factory.mktemp("kernels_x86")
    return {name: hashes(build_and_run(compiler, flags, "kernels_check.cpp", folder / name, []))
            for name, flags in X86 if name in RUNNABLE}


def test_every_x86_level_computes_the_same_bits(x86_hashes):
    if len(x86_hashes) < 2:
        pytest.skip(f"this CPU runs one level ({list(x86_hashes)})")
    first, *others = x86_hashes.values()
    assert len(first) >= 24
    for level, got in x86_hashes.items():
        assert got == first, f"{level}: {sorted(k for k in got if got[k] != first[k])} differ"


@pytest.mark.parametrize(("name", "flags"), ARM64, ids=[name for name, _ in ARM64])
def test_arm64_computes_the_bits_of_every_x86_level_under_qemu(name, flags, x86_hashes, tmp_path):
    compiler, qemu = arm64()
    output = build_and_run(compiler, flags, "kernels_check.cpp", tmp_path / name, [qemu, "-cpu", "max"])
    assert output.startswith(f"level {name}\n")
    got, want = hashes(output), next(iter(x86_hashes.values()))
    assert got == want, f"{name}: {sorted(k for k in got if got[k] != want.get(k))} differ from x86"


@pytest.mark.parametrize(("name", "flags"), X86, ids=[name for name, _ in X86])
def test_each_x86_quantized_pass_equals_its_scalar_form(name, flags, tmp_path):
    compiler = gxx()
    if name not in RUNNABLE:
        pytest.skip(f"this CPU cannot run the {name} level")
    out = build_and_run(compiler, flags, "quant_core_check.cpp", tmp_path / name, [])
    assert "0 differ" in out and ("scalar" if name == "portable" else name) in out


@pytest.mark.parametrize(("name", "flags"), ARM64, ids=[name for name, _ in ARM64])
def test_each_arm64_quantized_pass_equals_its_scalar_form_under_qemu(name, flags, tmp_path):
    compiler, qemu = arm64()
    out = build_and_run(compiler, flags, "quant_core_check.cpp", tmp_path / name, [qemu, "-cpu", "max"])
    assert "0 differ" in out and out.startswith(name.replace("-", "+") + ":")


@pytest.mark.parametrize("source", SOURCES, ids=[path.name for path in SOURCES])
def test_the_torch_bindings_compile_for_arm64(source):
    """The ATen-bound files (checks, threads, bindings) as they are, against torch's own headers: what
    an ARM64 machine's first `kernels()` call compiles (it links there; here only the syntax is checked)."""
    compiler, _ = arm64()
    includes = [f"-I{path}" for path in (*include_paths(), sysconfig.get_paths()["include"])]
    done = subprocess.run([compiler, *COMMON_FLAGS, "-march=armv8.2-a+dotprod", "-fsyntax-only", *includes, str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

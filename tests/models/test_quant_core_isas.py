"""The quantized matmul's core (`csrc/quant_core.h`, plain C++ without ATen) built alone for each ISA
level and run: every SIMD path (AVX-512 VNNI, AVX2, ARM64 NEON with and without dotprod) must equal the
scalar reference bit for bit (`tests/csrc/quant_core_check.cpp`). The x86 levels run where this CPU has
them; ARM64 runs under qemu-user where `g++-aarch64-linux-gnu` and `qemu-user` are installed (Debian
packages; a development check, skipped elsewhere, CI included)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sarathi_models.cpu_isa import AVX2, AVX512, PORTABLE_X86, runnable_levels

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tests" / "csrc" / "quant_core_check.cpp"
CSRC = ROOT / "plugins" / "sarathi_models" / "csrc"
RUNNABLE = {level.name for level in runnable_levels()}
X86 = [(level.name, level.flags) for level in (AVX512, AVX2, PORTABLE_X86)]
ARM64 = [("neon", ("-march=armv8-a",)), ("neon+dotprod", ("-march=armv8.2-a+dotprod",))]


def build_and_run(compiler: str, flags: tuple[str, ...], out: Path, runner: list[str]) -> str:
    subprocess.run([compiler, "-O2", "-std=c++20", "-static", *flags, f"-I{CSRC}", str(CHECK), "-o", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    done = subprocess.run([*runner, str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(("name", "flags"), X86, ids=[name for name, _ in X86])
def test_each_x86_level_equals_the_scalar_path(name, flags, tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    if name not in RUNNABLE:
        pytest.skip(f"this CPU cannot run the {name} level")
    out = build_and_run("g++", flags, tmp_path / name, [])
    assert "0 differ" in out and ("scalar" if name == "portable" else name) in out


@pytest.mark.parametrize(("name", "flags"), ARM64, ids=[name for name, _ in ARM64])
def test_each_arm64_level_equals_the_scalar_path_under_qemu(name, flags, tmp_path):
    compiler, qemu = shutil.which("aarch64-linux-gnu-g++"), shutil.which("qemu-aarch64")
    if compiler is None or qemu is None:
        pytest.skip("needs g++-aarch64-linux-gnu and qemu-user (apt-get install g++-aarch64-linux-gnu qemu-user)")
    cpu = "max"  # qemu's CPU with every extension, dotprod included
    out = build_and_run(compiler, flags, tmp_path / name.replace("+", "_"), [qemu, "-cpu", cpu])
    assert "0 differ" in out and out.startswith(name + ":")

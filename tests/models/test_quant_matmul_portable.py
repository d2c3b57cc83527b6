"""`quant_matmul`'s portable branch, for CPUs without AVX-512 VNNI: the same file compiled with VNNI
turned off (a module of its own, about 30 s once per machine), against the same float64 reference as
the vector branch (`test_quant_matmul.py`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from sarathi_models.cpu_ops import SOURCES
from sarathi_models.quant import pack_codes
from tests.models.test_quant_matmul import dequantized, quantized_activations, random_weight

BINDING = """
#include "{header}"
#include <torch/extension.h>
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {{ m.def("quant_matmul", &quant_matmul); }}
"""


@pytest.fixture(scope="module")
def portable(tmp_path_factory):
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    from torch.utils.cpp_extension import load

    source = next(path for path in SOURCES if path.name == "quant_matmul.cpp")
    binding = tmp_path_factory.mktemp("portable") / "binding.cpp"
    binding.write_text(BINDING.format(header=Path(source).parent / "ops.h"))
    return load(name="sarathi_quant_matmul_portable", sources=[str(binding), str(source)],
                extra_cflags=["-O2", "-march=native", "-mno-avx512vnni", "-fopenmp"], extra_ldflags=["-fopenmp"])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("rows", [1, 9])
def test_the_portable_branch_computes_the_quantized_arithmetic(portable, bits, rows):
    codes, scale, minimum = random_weight(40, 96, bits, seed=rows + bits)
    weight = pack_codes(codes, scale, minimum, bits, fused=portable)
    x = torch.randn(rows, 96, generator=torch.Generator().manual_seed(rows))  # [M, K]
    got = weight.matmul(x).double()  # [M, N]
    want = quantized_activations(x) @ dequantized(codes, scale, minimum).T
    magnitude = quantized_activations(x).abs() @ dequantized(codes, scale, minimum).abs().T
    assert ((got - want).abs() <= 1e-5 * magnitude + 1e-6).all()

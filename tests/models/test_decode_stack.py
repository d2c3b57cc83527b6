"""The decode stack (every decoder layer of a decode step in one C++ call, `decode_stack.py`) against the
Python layers it replaces: the same hidden states bit for bit, step after step, and built only where
every layer qualifies."""

from __future__ import annotations

import pytest
import torch

from sarathi_models.cpu_ops import kernels
from tests.models.helpers import make_backend, run_steps

pytestmark = pytest.mark.skipif(kernels() is None, reason="the fused CPU kernels did not build here")
PROMPTS = [torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (37, 9, 21)]


def hidden_states(backend, batches) -> list[torch.Tensor]:
    """Replay `batches`, returning each step's hidden states after the last layer."""
    decoder = backend.model.model
    run_layers = decoder.run_layers
    seen = []

    def capture(x, positions):
        out = run_layers(x, positions)  # [T, H]
        seen.append(out.clone())
        return out

    decoder.run_layers = capture
    for batch in batches:
        backend.execute(batch)
    return seen


@pytest.mark.parametrize("variant", ["llama", "mistral"])
def test_the_stack_computes_the_python_layers_bit_for_bit(variant, checkpoint):
    options = dict(dtype="bfloat16", quantization="int4")
    with_stack = make_backend(checkpoint(variant), **options)
    assert with_stack.model.model.decode_stack is not None
    tokens, batches = run_steps(with_stack, PROMPTS, max_new_tokens=24, token_budget=16)
    decode_steps = [b for b in batches if not b.prefills]
    assert len(decode_steps) >= 20 and {len(b.decodes) for b in decode_steps} >= {1, 3}

    without = make_backend(checkpoint(variant), **options)
    without.model.model.decode_stack = None
    replayed = hidden_states(without, batches)
    fresh = make_backend(checkpoint(variant), **options)
    stacked = hidden_states(fresh, batches)
    assert len(stacked) == len(replayed) == len(batches)
    for step, (a, b) in enumerate(zip(stacked, replayed)):
        assert torch.equal(a, b), f"step {step} differs"
    again, _ = run_steps(without, PROMPTS, max_new_tokens=24, token_budget=16)
    assert again == tokens


def test_the_stack_is_built_only_where_every_layer_qualifies(checkpoint):
    def stack(variant, **options):
        return make_backend(checkpoint(variant), **options).model.model.decode_stack

    assert stack("llama", dtype="bfloat16", quantization="int4") is not None
    assert stack("llama", dtype="bfloat16", quantization="int4", attention_backend="torch") is None
    assert stack("llama", dtype="bfloat16", quantization="int8") is None  # torch's int8 kernel, not packed
    assert stack("llama", dtype="bfloat16") is None  # nothing quantized
    assert stack("llama") is None  # fp32
    assert stack("qwen2", dtype="bfloat16", quantization="int4") is None  # q/k/v biases

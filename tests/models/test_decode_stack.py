"""The decode stack (every decoder layer of a decode step in one C++ call, `decode_stack.py`) against the
Python layers it replaces: the same hidden states bit for bit, step after step, and built only where
every layer qualifies."""

from __future__ import annotations

import pytest
import torch

import sarathi_models.llama
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
def test_the_stack_computes_the_python_layers_bit_for_bit(variant, checkpoint, monkeypatch):
    options = dict(dtype="bfloat16", quantization="int4")
    with_stack = make_backend(checkpoint(variant), **options)
    assert with_stack.model.model.decode_stack is not None
    tokens, batches = run_steps(with_stack, PROMPTS, max_new_tokens=24, token_budget=16)
    decode_steps = [b for b in batches if not b.prefills]
    assert len(decode_steps) >= 20 and {len(b.decodes) for b in decode_steps} >= {1, 3}

    stacked = hidden_states(make_backend(checkpoint(variant), **options), batches)
    with monkeypatch.context() as patch:
        patch.setattr(sarathi_models.llama, "takes_decode_stack", lambda context, x: False)  # the Python layers
        replayed = hidden_states(make_backend(checkpoint(variant), **options), batches)
        again, _ = run_steps(make_backend(checkpoint(variant), **options), PROMPTS, max_new_tokens=24, token_budget=16)
    assert len(stacked) == len(replayed) > len(batches)  # mixed steps run in two passes
    for step, (a, b) in enumerate(zip(stacked, replayed)):
        assert torch.equal(a, b), f"pass {step} differs"
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


def test_a_mixed_steps_decodes_run_as_a_decode_only_step_would(checkpoint):
    """The backend gives a mixed step's decodes to the stack as a pass of their own: their hidden
    states equal those of the same decodes run as a decode-only step."""
    options = dict(dtype="bfloat16", quantization="int4")
    _, batches = run_steps(make_backend(checkpoint("llama"), **options), PROMPTS, max_new_tokens=8,
                           token_budget=24)
    mixed_at = next(i for i, b in enumerate(batches) if b.prefills and b.decodes)
    mixed = batches[mixed_at]
    decodes_alone = type(mixed)(step_id=mixed.step_id, decodes=mixed.decodes)
    in_mixed, alone = make_backend(checkpoint("llama"), **options), make_backend(checkpoint("llama"), **options)
    for batch in batches[:mixed_at]:
        in_mixed.execute(batch)
        alone.execute(batch)
    from_mixed = hidden_states(in_mixed, [mixed])  # two passes: the prefill chunks, then the decodes
    from_alone = hidden_states(alone, [decodes_alone])
    assert len(from_mixed) == 2 and from_mixed[1].shape[0] == len(mixed.decodes)
    assert torch.equal(from_mixed[1], from_alone[0])

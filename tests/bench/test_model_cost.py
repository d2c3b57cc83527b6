"""The model's parameter count, from config.json, against what transformers builds from that config."""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")

from sarathi_sdk.bench.model_cost import ModelCost  # noqa: E402
from sarathi_sdk.errors import ConfigError  # noqa: E402


@pytest.mark.parametrize("kv_heads,tied", [(2, False), (4, True), (1, False)])
def test_linear_parameters_match_the_transformers_model(kv_heads, tied):
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                      num_attention_heads=4, num_key_value_heads=kv_heads, vocab_size=300,
                                      tie_word_embeddings=tied)
    model = transformers.LlamaForCausalLM(config)
    layer_linear = sum(m.weight.numel() for name, m in model.named_modules()
                       if isinstance(m, transformers.pytorch_utils.nn.Linear) and "layers." in name)
    cost = ModelCost.from_config(config.to_dict())
    assert cost.layer_params == layer_linear
    assert cost.head_params == model.lm_head.weight.numel()
    assert cost.kv_bytes_per_token == 2 * 3 * kv_heads * 16 * 2


def test_a_config_without_the_shape_is_a_config_error():
    with pytest.raises(ConfigError, match="shape"):
        ModelCost.from_config({"hidden_size": 8})
    with pytest.raises(ConfigError, match="dtype"):
        ModelCost.from_config({"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
                               "intermediate_size": 8, "vocab_size": 8}, dtype="int3")

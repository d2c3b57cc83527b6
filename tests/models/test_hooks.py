"""The plugin's hooks: registries other plugins extend, factories other plugins override."""

from __future__ import annotations

import pytest

from sarathi_models.backend import TorchModelBackend
from sarathi_models.llama import LlamaForCausalLM
from sarathi_models.model_config import ModelConfig
from sarathi_models.sampler import Sampler
from sarathi_models.torch_attention import TorchAttention
from sarathi_sdk import ConfigError, EngineConfig, PluginManager, hookimpl
from tests.models.helpers import run_steps


def build_backend(config: EngineConfig) -> TorchModelBackend:
    plugins = PluginManager(config)
    return plugins.hook.sarathi_make_backend(config=config, registries=plugins.registries(),
                                             sampler=plugins.hook.sarathi_make_sampler(config=config))


def test_bundled_registries_hold_the_llama_family_and_torch_attention():
    plugins = PluginManager(EngineConfig())
    assert {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"} <= set(
        plugins.registry("sarathi_register_model_architectures")
    )
    assert "torch" in plugins.registry("sarathi_register_attention_backends")


def test_make_backend_builds_the_torch_backend_with_the_default_sampler(checkpoint):
    backend = build_backend(EngineConfig(model=str(checkpoint("qwen2")), device="cpu"))
    assert isinstance(backend, TorchModelBackend)
    assert isinstance(backend.sampler, Sampler)
    assert isinstance(backend.model, LlamaForCausalLM)


class CountingAttention(TorchAttention):
    """The real torch kernel, counting its calls."""

    calls = 0

    def forward(self, *args, **kwargs):
        CountingAttention.calls += 1
        return super().forward(*args, **kwargs)


class SubclassedLlama(LlamaForCausalLM):
    pass


class PluginSampler(Sampler):
    pass


class ExtendingPlugin:
    @hookimpl
    def sarathi_register_model_architectures(self, register):
        register("LlamaForCausalLM", lambda hf: SubclassedLlama(ModelConfig.from_hf(hf, "llama")))

    @hookimpl
    def sarathi_register_attention_backends(self, register):
        register("triton", lambda config: CountingAttention())

    @hookimpl
    def sarathi_make_sampler(self, config):
        return PluginSampler(seed=config.seed)


def test_a_plugin_overrides_architecture_attention_backend_and_sampler(checkpoint):
    plugin = ExtendingPlugin()
    config = EngineConfig(model=str(checkpoint("llama")), device="cpu", dtype="float32", attention_backend="triton",
                          plugins=[plugin], block_size=4)
    backend = build_backend(config)
    backend.start(config, 64)
    CountingAttention.calls = 0
    run_steps(backend, [[1, 2, 3]], max_new_tokens=2, token_budget=4)
    assert isinstance(backend.model, SubclassedLlama)
    assert isinstance(backend.sampler, PluginSampler)
    assert CountingAttention.calls == 2 * 2  # two layers, two steps


def test_an_unregistered_attention_backend_is_a_config_error(checkpoint):
    with pytest.raises(ConfigError, match="'flash'.*registered: cpu, torch"):
        build_backend(EngineConfig(model=str(checkpoint("llama")), device="cpu", attention_backend="flash"))


def test_attention_backend_auto_is_torch(checkpoint):
    backend = build_backend(EngineConfig(model=str(checkpoint("llama")), device="cpu"))
    assert isinstance(backend.attention, TorchAttention)

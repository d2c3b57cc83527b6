"""EngineConfig validation."""

import pytest

from sarathi_sdk import ConfigError, EngineConfig


def test_defaults_are_valid_and_max_num_seqs_follows_a_small_budget():
    assert EngineConfig().max_num_seqs == 128
    assert EngineConfig(token_budget=7).max_num_seqs == 7


@pytest.mark.parametrize(
    "options",
    [
        {"token_budget": 0},
        {"token_budget": True},
        {"block_size": -4},
        {"num_kv_blocks": 0},
        {"max_num_seqs": 600, "token_budget": 512},
        {"kv_cache_memory_fraction": 0},
        {"kv_cache_memory_fraction": 1.5},
        {"dtype": "float8"},
        {"attention_backend": ""},
        {"scheduler": ""},
        {"plugins": "not-a-list"},
        {"seed": -1},
        {"enable_prefix_caching": "yes"},
        {"enable_prefix_caching": 1},
    ],
)
def test_out_of_range_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        EngineConfig(**options)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        EngineConfig(block_size=0)


def test_unknown_option_names_the_closest_one():
    with pytest.raises(ConfigError, match="did you mean 'block_size'"):
        EngineConfig.from_options(None, blok_size=4)
    with pytest.raises(ConfigError, match="unknown engine option 'zzz'$"):
        EngineConfig.from_options(None, zzz=1)


def test_lists_become_tuples_so_the_config_stays_frozen():
    config = EngineConfig(block_plugins=["a"], load_entrypoint_plugins=["b"])
    assert config.block_plugins == ("a",) and config.load_entrypoint_plugins == ("b",)
    with pytest.raises(AttributeError):
        config.token_budget = 3


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"speculative": ""}, "speculative must be a proposer's name"),
        ({"speculative": 3}, "speculative must be a proposer's name"),
        ({"num_speculative_tokens": 0}, "num_speculative_tokens must be an integer >= 1"),
        ({"speculative_disable_by_batch_size": 0}, "speculative_disable_by_batch_size must be an integer >= 1"),
        ({"speculative": "ngram", "pipeline_parallel_size": 2}, "does not run with pipeline_parallel_size > 1"),
    ],
)
def test_speculative_options_are_checked(options, words):
    with pytest.raises(ConfigError, match=words):
        EngineConfig(**options)

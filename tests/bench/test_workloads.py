"""Length distributions, the named traces and trace files."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest

from sarathi_sdk.bench.workloads import (
    TRACES,
    BenchRequest,
    Lengths,
    bench_prompt,
    load_trace,
    prompt_token_ids,
    synthetic,
)
from sarathi_sdk.errors import ConfigError


def _draw(spec, n=20_000, seed=0, scale=1.0):
    lengths, rng = Lengths.parse(spec), random.Random(seed)
    return [lengths.sample(rng, scale) for _ in range(n)]


def test_fixed_and_uniform_lengths():
    assert set(_draw(128, 100)) == {128}
    values = _draw("256-768")
    assert min(values) == 256 and max(values) == 768
    assert statistics.fmean(values) == pytest.approx(512, rel=0.02)
    assert Lengths.parse("uniform:3-5") == Lengths.parse("3-5")


def test_lognormal_has_the_asked_median_and_p90():
    values = sorted(_draw("lognormal:1730,5696", 40_000))
    assert values[len(values) // 2] == pytest.approx(1730, rel=0.04)
    assert values[int(0.9 * len(values))] == pytest.approx(5696, rel=0.05)


def test_zipf_stays_in_bounds_and_favours_short():
    values = _draw("zipf:1.2,10-1000")
    assert min(values) >= 10 and max(values) <= 1000
    assert values.count(10) > values.count(11) > values.count(100) > 0
    assert statistics.median(values) < 100


def test_length_scale_shrinks_draws():
    assert set(_draw(1000, 10, scale=0.25)) == {250}


@pytest.mark.parametrize("spec", ["", "abc", "10-5", "0", "lognormal:100", "lognormal:500,100",
                                  "zipf:0,1-10", "zipf:1.1,20-10", "gauss:1,2"])
def test_bad_length_specs_are_config_errors(spec):
    with pytest.raises(ConfigError, match="length"):
        Lengths.parse(spec)


def test_synthetic_is_seeded_and_clipped_to_the_model():
    a = synthetic(50, "100-900", "50-300", seed=3, max_len=1024)
    assert a == synthetic(50, "100-900", "50-300", seed=3, max_len=1024)
    assert a != synthetic(50, "100-900", "50-300", seed=4, max_len=1024)
    assert all(r.prompt_len + r.output_len <= 1024 and r.prompt_len >= 1 for r in a)
    with pytest.raises(ConfigError):
        synthetic(0, 10, 10)


def test_named_traces_follow_their_published_medians():
    for name, (prompt, output) in TRACES.items():
        requests = synthetic(20_001, prompt, output, seed=1)
        median_prompt = statistics.median(r.prompt_len for r in requests)
        assert median_prompt == pytest.approx(Lengths.parse(prompt).params[0], rel=0.05), name
        median_output = statistics.median(r.output_len for r in requests)
        assert median_output == pytest.approx(Lengths.parse(output).params[0], rel=0.05), name


def test_trace_files_csv_and_jsonl(tmp_path):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("prompt_len,output_len,arrival_time\n10,5,0.0\n20,3,0.5\n", encoding="utf-8")
    assert load_trace(csv_file) == [BenchRequest(10, 5, 0.0), BenchRequest(20, 3, 0.5)]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [{"prompt_len": 7, "output_len": 2}, {"prompt_len": 900,
                                                                                            "output_len": 300}]))
    assert load_trace(jsonl, max_len=1000) == [BenchRequest(7, 2), BenchRequest(700, 300)]


@pytest.mark.parametrize("content,match", [
    ("prompt_len,output_len\n", "no requests"),
    ("prompt_len\n5\n", "row 1"),
    ("prompt_len,output_len\n0,5\n", ">= 1"),
    ("prompt_len,output_len,arrival_time\n5,5,1.0\n5,5,0.5\n", "non-decreasing"),
    ("prompt_len,output_len,arrival_time\n5,5,1.0\n5,5,\n", "every row"),
])
def test_bad_trace_files_are_config_errors(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_trace(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_trace(tmp_path / "missing.csv")


def test_prompts_are_distinct_and_inside_the_vocabulary():
    a, b = prompt_token_ids(64, 1, 100), prompt_token_ids(64, 2, 100)
    assert a[0] != b[0] and len(a) == 64
    assert all(1 <= t < 100 for t in a + b)
    assert not math.isnan(sum(a))


def test_a_runs_prompts_share_exactly_the_shared_prefix_and_other_runs_differ():
    vocab = 1000
    a, b = bench_prompt(40, 10, 0, vocab, 24), bench_prompt(30, 10, 1, vocab, 24)
    assert (len(a), len(b)) == (40, 30)
    assert a[:24] == b[:24] and a[24] != b[24]
    assert bench_prompt(40, 20, 0, vocab, 24)[0] != a[0]  # another run: another prefix
    assert bench_prompt(10, 10, 5, vocab, 24) == a[:10]  # a prompt shorter than the prefix is all prefix
    assert bench_prompt(40, 10, 3, vocab) == prompt_token_ids(40, 13, vocab)  # no prefix: as before
    assert all(1 <= t < vocab for t in a + b)

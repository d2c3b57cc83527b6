"""`python -m sarathi_sdk.bench.structured` end to end at a tiny size on the default model.

What is checked is the shape of the table and of the JSON record, with real measurements in it, not
the numbers: two schemas of two requests, a few tokens, one throughput turn at batches 1 and 2.
"""

from __future__ import annotations

import json
import math

import pytest

from sarathi_sdk.bench.structured import CASES, full_batch_steps, main, validity_error

pytestmark = pytest.mark.timeout(180)


def test_the_benchmark_reports_every_section(tmp_path, capsys):
    out = tmp_path / "structured.json"
    argv = ["--schemas", "2", "--requests", "2", "--max-tokens", "24", "--batches", "1,2", "--turns", "1",
            "--decode-tokens", "8", "--json", str(out)]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert set(record) == {"machine", "config", "validity", "throughput", "compile", "load_average", "table"}
    assert record["config"]["schemas"] == [CASES[0].name, CASES[1].name]

    for row in record["validity"]:
        assert row["requests"] == 2 and row["stop"] + row["length"] == 2
        assert row["valid"] == row["stop"] and row["invalid"] == []

    assert [row["batch"] for row in record["throughput"]] == [1, 2]
    for row in record["throughput"]:
        for mode in ("unconstrained", "constrained"):
            assert row[mode]["steps_measured"] > 0 and row[mode]["tokens_per_s"] > 0
        assert math.isclose(row["ratio"], row["constrained"]["tokens_per_s"] / row["unconstrained"]["tokens_per_s"])

    compiled = record["compile"]
    assert [row["schema"] for row in compiled["schemas"]] == [CASES[0].name, CASES[1].name]
    for row in [compiled["first_constraint"], *compiled["schemas"]]:
        assert (row["compiled_first"], row["hit_on_repeat"]) == (1, 1)
        assert row["compile_ms"] > 0 and row["first_output_ms"] > 0
    assert compiled["concurrent_first"]["requests"] == 2 and compiled["concurrent_first"]["compiles"] >= 1
    assert set(compiled["counters"]) == {"compiles", "cache_hits"}

    printed = capsys.readouterr().out
    assert printed == record["table"] + "\n"
    assert printed.startswith("| schema | requests | stop | length | stop and valid | mean tokens |")
    assert "| batch | unconstrained tok/s | constrained tok/s | ratio |" in printed
    assert printed.rstrip().splitlines()[-1].startswith("backend counters: compiles ")


def test_validity_error_names_what_is_wrong():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]}
    assert validity_error('{"n": 2}', schema) is None
    assert validity_error('{"n": 4}', schema).startswith("ValidationError: 4 is greater than the maximum of 3")
    assert validity_error('{"n": ', schema).startswith("JSONDecodeError")


def test_only_steps_that_decode_the_whole_batch_count():
    steps = [(0.0, 0, 2), (1.0, 2, 1), (1.5, 2, 0), (2.5, 2, 0), (2.75, 1, 0)]
    assert full_batch_steps(steps, 2) == [0.5, 1.0]

"""The CPU benchmarks run end to end at tiny sizes (their numbers are read from their output, not here)."""

from sarathi_sdk.bench import engine_overhead, scheduling_cost


def test_engine_overhead_benchmark_runs(capsys):
    assert engine_overhead.main(["--sizes", "2", "8", "--repeats", "1"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[-2:]
    assert [row.split()[0] for row in rows] == ["2", "8"]
    assert all(float(row.split()[1]) > 0 for row in rows)


def test_scheduling_cost_benchmark_runs_every_policy(capsys):
    assert scheduling_cost.main(["--sizes", "4", "--steps", "5"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[-4:]
    assert [row.split()[0] for row in rows] == ["sarathi", "vllm", "orca", "static"]

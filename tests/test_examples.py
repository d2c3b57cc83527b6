"""Every example in examples/ runs as a user runs it, and prints what it promises.

Examples run in this process (`runpy`, as `python examples/X.py ARGS`), so torch is imported once.
Those whose output does not depend on the text run on a tiny random Llama with SmolLM2's tokenizer
(fast: a handful of milliseconds per step); the chatbot, the agent and the quickstart run on the
default model with greedy decoding and few tokens, since their point is what the model says.
The plugin packaged as its own project is pip-installed into this environment, offline, and used
from a fresh interpreter, as a user would after `pip install`.
"""

from __future__ import annotations

import io
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.gguf.smollm2 import converted_smollm2, session_cache_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PLUGIN_PACKAGE = EXAMPLES / "plugin-shortest-first"
PIP = (sys.executable, "-m", "pip")
TINY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer random Llama with SmolLM2's vocabulary, tokenizer and chat template."""
    import transformers

    smollm2 = converted_smollm2(tmp_path_factory)
    folder = tmp_path_factory.mktemp("tiny-smollm2")
    config = transformers.AutoConfig.from_pretrained(smollm2)
    for name, value in TINY_SHAPE.items():
        setattr(config, name, value)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(smollm2 / name, folder / name)
    return str(folder)


@pytest.fixture
def run_example(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                tmp_path_factory: pytest.TempPathFactory):
    """run_example("x.py", *args, stdin="") -> what `python examples/x.py args` printed to stdout."""
    monkeypatch.setenv("SARATHI_CACHE_DIR", str(session_cache_dir(tmp_path_factory)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: see tests/models/conftest.py

    def run(name: str, *args: str, stdin: str = "") -> str:
        monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *args])
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        return capsys.readouterr().out

    yield run
    torch.set_num_threads(threads)


def test_custom_policy_example_runs(run_example):
    out = run_example("custom_policy.py")
    assert "step 1: 0 decodes, prefill chunks [short:5, medium:20, long:7]" in out


@pytest.mark.timeout(120)
def test_stream_example_prints_the_completion_and_its_metrics(run_example, tiny_model):
    out = run_example("stream.py", "Once upon a time", "--model", tiny_model, "--max-tokens", "8")
    assert "prompt tokens, " in out and "first token after" in out
    assert out.count("\n") >= 1


@pytest.mark.timeout(120)
def test_concurrent_example_cancels_two_requests_and_frees_every_block(run_example, tiny_model):
    out = run_example("concurrent_requests.py", "--model", tiny_model, "--max-tokens", "16")
    lines = out.splitlines()
    assert any(line.startswith("story: length:") for line in lines)
    assert any(line.startswith("stopped-early: left the stream:") for line in lines)
    assert "cancelled: task cancelled" in lines
    running, free = lines[-1].split(", KV blocks free ")
    used, total = free.split(" of ")
    assert running == "running 0, waiting 0" and used == total


@pytest.mark.timeout(120)
def test_metrics_observer_example_reports_mixed_steps(run_example, tiny_model):
    out = run_example("metrics_observer.py", "--model", tiny_model, "--max-tokens", "8")
    steps = next(line for line in out.splitlines() if line.startswith("steps: "))
    mixed = int(steps.split("mixed prefill+decode steps: ")[1].split(",")[0])
    assert mixed >= 1 and steps.endswith("largest step: 64 tokens")  # the long prompt chunked under the budget
    assert "requests: 3, median TTFT" in out


@pytest.mark.timeout(180)
def test_hello_example_answers_paris(run_example):
    assert run_example("hello.py") == "The capital of France is Paris.\n"


@pytest.mark.timeout(180)
def test_quickstart_example_answers_paris(run_example):
    out = run_example("quickstart.py")
    assert out.startswith("The capital of France is Paris.")
    assert "[stop, time to first token" in out


@pytest.mark.timeout(180)
def test_chatbot_example_keeps_the_history(run_example):
    out = run_example("chatbot.py", "--max-tokens", "16", stdin="What is the capital of France?\nAnd of Italy?\n/exit\n")
    first, second = out.splitlines()
    assert first.startswith("assistant: The capital of France is Paris.")
    assert second.startswith("assistant: The capital of Italy is Rome.")
    assert "[0 of " in first and "[0 of " not in second  # the second turn reused the first's KV


@pytest.mark.timeout(180)
def test_agent_example_calls_the_tool_and_uses_its_result(run_example):
    out = run_example("agent.py", "What is 123 * 45?")
    assert "tool call: calculator(123 * 45) -> 5535" in out
    assert "answer: " in out and "5535" in out.split("answer: ", 1)[1]


def test_agent_calculator_refuses_what_is_not_arithmetic():
    calculator = runpy.run_path(str(EXAMPLES / "agent.py"))["calculator"]
    assert calculator("2^10") == "1024"
    assert calculator("__import__('os')").startswith("error:")
    assert calculator("9 ** 9 ** 9").startswith("error:")


@pytest.mark.timeout(180)
def test_trio_example_streams_under_trio(run_example):
    out = run_example("trio_stream.py", "--max-tokens", "16")
    assert out.startswith("The capital of France is Paris.")


@pytest.fixture
def plugin_package_installed(tmp_path: Path):
    """examples/plugin-shortest-first pip-installed into the running environment, uninstalled after.

    Built from a copy, since a build writes build/ and *.egg-info next to the sources; offline
    (`--no-index`, `--no-build-isolation`: setuptools comes from this environment) and `--no-deps`
    (sarathi-sdk is installed already). Installing over a copy left by an interrupted run is fine."""
    source = tmp_path / PLUGIN_PACKAGE.name
    shutil.copytree(PLUGIN_PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    install = [*PIP, "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", str(source)]
    subprocess.run(install, check=True, capture_output=True, timeout=240)
    yield
    subprocess.run([*PIP, "uninstall", "--yes", "--quiet", "sarathi-shortest-first"], capture_output=True, timeout=120)


@pytest.mark.timeout(420)
def test_plugin_package_installs_and_its_scheduler_is_selected_by_name(plugin_package_installed):
    demo = subprocess.run([sys.executable, str(PLUGIN_PACKAGE / "demo.py")], capture_output=True, text=True,
                          timeout=120, check=True)
    assert demo.stdout.splitlines() == [
        "entry-point plugins: ['shortest_first']",
        "first tokens: short < medium < long",
    ]


@pytest.mark.timeout(180)
def test_llguidance_example_serves_the_same_contract(run_example):
    pet, choice = run_example("llguidance_backend.py").splitlines()[-2:]
    assert pet.startswith("llguidance: Pet(name=") and choice in ('choice: "yes"', 'choice: "no"')


def test_structured_output_example_validates_a_city(run_example):
    text, obj, sentence = run_example("structured_output.py").splitlines()
    assert text.startswith('text: {"name": "Paris", "country": ') and text.endswith("}  [stop]")
    assert obj.startswith("object: City(name='Paris', country=")
    assert sentence.startswith("Paris is in ") and sentence.endswith(" inhabitants.")


def test_speculative_example_gives_the_same_answer_in_fewer_steps(run_example):
    off, off_text, on, on_text = run_example("speculative.py").splitlines()
    assert off_text == on_text and on_text.startswith("  The James Webb Space Telescope is a space telescope")
    steps_off, steps_on = int(off.split(": ")[1].split()[0]), int(on.split(": ")[1].split()[0])
    assert off.endswith("0 of 0 proposed tokens accepted") and steps_on < steps_off / 2

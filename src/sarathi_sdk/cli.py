"""The `sarathi` command: generate, chat, benchmark, convert a GGUF, list plugins.

- `sarathi generate PROMPT` streams one completion to stdout. For a model with a chat template (an
  instruct model, like the bundled SmolLM2-135M-Instruct) the prompt is sent as one user message with
  the template applied, because a raw prompt is not what such a model was trained to continue:
  SmolLM2 answers the raw "What is the capital of France?" with an immediate end of turn. `--raw`
  sends the text as it is (vLLM's `generate`); a model without a template always gets it raw.
- `sarathi chat` reads user lines from stdin and streams each reply, keeping the conversation; it
  ends at end of input or `/exit`.
- `sarathi convert GGUF OUT_DIR` writes the Hugging Face folder of a Llama GGUF file.
- `sarathi bench compare | capacity | micro` measures the schedulers (`sarathi_sdk.bench`).
- `sarathi plugins` lists the registered plugins and what they register.

Decoding is greedy unless `--temperature` says otherwise, so the same command prints the same answer.
An SDK error (`SarathiError`) prints one line to stderr and exits with status 2, without a traceback.

Imports the public `sarathi_sdk` API and the standard library; `convert` reaches the model plugins
through the `sarathi_convert_model` hook.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from .bench import commands as bench_commands
from .config import EngineConfig
from .engine import Engine
from .errors import ConfigError, InvalidRequestError, SarathiError
from .interfaces import Tokenizer
from .output import RequestOutput
from .plugins import PluginManager
from .sampling import SamplingParams
from .serve import commands as serve_commands

EXIT_SDK_ERROR = 2
EXIT_INTERRUPTED = 130
CHAT_EXIT = "/exit"
REGISTRIES = (
    ("schedulers", "sarathi_register_schedulers"),
    ("model architectures", "sarathi_register_model_architectures"),
    ("attention backends", "sarathi_register_attention_backends"),
    ("proposers", "sarathi_register_proposers"),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="sarathi: %(message)s")
    command: Callable[[argparse.Namespace], int] = args.run  # each subcommand's set_defaults(run=...)
    try:
        return command(args)
    except SarathiError as exc:
        print(f"sarathi: error: {exc}", file=sys.stderr)
        return EXIT_SDK_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sarathi", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine and plugins do")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", help="stream the model's answer to PROMPT (its chat template applied, if it has one)"
    )
    generate.add_argument("prompt", metavar="PROMPT", help="the question, or with --raw the text to continue")
    generate.add_argument("--raw", action="store_true", help="send PROMPT as is, without the chat template")
    _add_engine_options(generate)
    generate.set_defaults(run=run_generate)

    chat = commands.add_parser("chat", help="talk with the model: one user message per line of stdin")
    _add_engine_options(chat)
    chat.set_defaults(run=run_chat)

    convert = commands.add_parser("convert", help="convert a Llama GGUF file into a Hugging Face folder")
    convert.add_argument("gguf", metavar="GGUF")
    convert.add_argument("out_dir", metavar="OUT_DIR")
    convert.set_defaults(run=run_convert)

    bench_commands.add_parser(commands)
    serve_commands.add_parser(commands)

    plugins = commands.add_parser("plugins", help="list the registered plugins and their registries")
    plugins.add_argument("--entry-points", action="store_true", help="also load third-party entry-point plugins")
    plugins.set_defaults(run=run_plugins)
    return parser


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--max-tokens", type=int, default=256, help="most tokens to generate (default 256)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--token-budget", type=int, help="most tokens one engine step carries")
    parser.add_argument("--scheduler", help="batch policy by name: sarathi (default), vllm, orca, static")
    parser.add_argument("--enable-prefix-caching", action="store_true",
                        help="reuse the KV of earlier turns: each chat turn prefills only what is new")
    parser.add_argument("--speculative", help='speculative decoding: "ngram" (prompt lookup) or "draft:PATH"; '
                                              "the same answer, in fewer steps when it copies from the prompt")


def engine_from_args(args: argparse.Namespace) -> Engine:
    """The engine the options describe, every option checked before any weight loads: the config's
    own checks, and the scheduler's and proposer's names against those the plugins register."""
    options: dict[str, Any] = {}
    if args.scheduler is not None:
        options["scheduler"] = args.scheduler
    if args.token_budget is not None:
        options["token_budget"] = args.token_budget
    if args.enable_prefix_caching:
        options["enable_prefix_caching"] = True
    if args.speculative is not None:
        options["speculative"] = args.speculative
    serve_commands.check_engine_options(args.model, options)
    return Engine(args.model, **options)


async def read_line() -> str:
    """One line of stdin, read on a daemon thread: Ctrl-C at an idle prompt ends the program at once,
    where a worker thread of the event loop would block its shutdown until Enter is pressed."""
    token = anyio.lowlevel.current_token()
    delivered = anyio.Event()
    outcome: list[str | Exception] = []  # the line, or what reading it raised

    def read() -> None:
        try:
            outcome.append(sys.stdin.readline())
        except Exception as exc:  # handed to the awaiting task, which raises it
            outcome.append(exc)
        try:
            anyio.from_thread.run_sync(delivered.set, token=token)
        except RuntimeError:  # the loop finished (anyio.RunFinishedError) or closed while this thread waited
            pass

    threading.Thread(target=read, name="sarathi-stdin", daemon=True).start()
    await delivered.wait()
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def sampling_from_args(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed)


def run_generate(args: argparse.Namespace) -> int:
    params = sampling_from_args(args)  # bad values fail before the model loads

    async def generate() -> None:
        async with engine_from_args(args) as engine:
            if not args.raw and has_chat_template(engine.tokenizer):
                stream = engine.chat([{"role": "user", "content": args.prompt}], params)
            else:
                stream = engine.generate(args.prompt, params)
            await _print_stream(stream)

    anyio.run(generate, backend="asyncio")
    return 0


def run_chat(args: argparse.Namespace) -> int:
    params = sampling_from_args(args)

    async def chat() -> None:
        async with engine_from_args(args) as engine:
            interactive = sys.stdin.isatty()
            history: list[dict[str, str]] = []
            while True:
                if interactive:
                    print("> ", end="", flush=True)
                line = await read_line()
                if not line or line.strip() == CHAT_EXIT:
                    return
                if not line.strip():
                    continue
                history.append({"role": "user", "content": line.rstrip("\n")})
                reply = await _print_stream(engine.chat(history, params))
                history.append({"role": "assistant", "content": reply})

    anyio.run(chat, backend="asyncio")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """Convert through the plugins' `sarathi_convert_model` hook: the core imports no model code."""
    config = EngineConfig()
    folder = PluginManager(config).hook.sarathi_convert_model(source=args.gguf, out_dir=args.out_dir)
    if folder is None:
        raise ConfigError(f"no plugin converts {args.gguf}; the bundled sarathi_models plugin converts .gguf files")
    print(folder)
    return 0


def run_plugins(args: argparse.Namespace) -> int:
    manager = PluginManager(EngineConfig(load_entrypoint_plugins=args.entry_points))
    print("plugins:")
    for name in manager.plugin_names():
        print(f"  {name}")
    for title, hook_name in REGISTRIES:
        print(f"{title}:")
        for name in sorted(manager.registry(hook_name)):
            print(f"  {name}")
    return 0


def has_chat_template(tokenizer: Tokenizer | None) -> bool:
    """Whether the model has a chat template; the Tokenizer protocol says so by raising
    `InvalidRequestError` when asked to render without one."""
    if tokenizer is None:
        return False
    try:
        tokenizer.apply_chat_template([{"role": "user", "content": ""}], add_generation_prompt=True)
    except InvalidRequestError:
        return False
    return True


async def _print_stream(stream: AsyncIterator[RequestOutput]) -> str:
    """Write each text delta as it comes; returns the whole text."""
    parts = []
    async for output in stream:
        sys.stdout.write(output.text)
        sys.stdout.flush()
        parts.append(output.text)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "".join(parts)

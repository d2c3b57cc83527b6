"""`sarathi serve [MODEL]`: run the OpenAI-compatible server with uvicorn.

Binds 127.0.0.1 unless `--host` says otherwise; `--api-key` (or `$SARATHI_API_KEY`) guards the `/v1`
routes. Engine options are passed on only when given, so the engine's own defaults apply otherwise.
Every option is checked (the engine config, the scheduler's name) before the model loads or the port
is bound; a model that cannot load is an SDK error before the port is bound too. Ctrl-C gives open
requests `--shutdown-timeout` seconds, then aborts them (`server.serve`). fastapi and uvicorn are imported only when the command runs: `sarathi` works without the
`serve` extra.

Imports the public `sarathi_sdk` API; fastapi and uvicorn when run.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
from typing import Any

import anyio

from ..config import EngineConfig
from ..errors import ConfigError
from ..plugins import PluginManager
from .defaults import DEFAULT_CHAT_MAX_TOKENS, DEFAULT_MAX_BODY_BYTES, DEFAULT_SHUTDOWN_TIMEOUT

logger = logging.getLogger(__name__)

API_KEY_ENV = "SARATHI_API_KEY"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ENGINE_OPTIONS = ("scheduler", "token_budget", "max_num_seqs", "max_waiting_requests", "enable_prefix_caching",
                  "speculative", "num_speculative_tokens")


def add_parser(commands: Any) -> None:
    serve = commands.add_parser("serve", help="serve the model over an OpenAI-compatible HTTP API")
    serve.add_argument("model", nargs="?", metavar="MODEL",
                       help="checkpoint folder or .gguf file (default: the bundled SmolLM2)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--api-key", default=os.environ.get(API_KEY_ENV) or None,
                       help=f"require 'Authorization: Bearer KEY' on /v1 routes (default: ${API_KEY_ENV}, if set)")
    serve.add_argument("--max-body-bytes", type=_positive, default=DEFAULT_MAX_BODY_BYTES,
                       help=f"largest request body; larger is a 413 (default {DEFAULT_MAX_BODY_BYTES})")
    serve.add_argument("--served-model-name", help="the model id clients send (default: the model's file or folder name)")
    serve.add_argument("--default-max-tokens", type=_positive, default=DEFAULT_CHAT_MAX_TOKENS,
                       help=f"max_tokens of a chat request that gives none (default {DEFAULT_CHAT_MAX_TOKENS})")
    serve.add_argument("--tool-call-parser", choices=("hermes", "llama3_json"),
                       help='read tool calls out of the model\'s output for tool_choice "auto": hermes '
                            '(<tool_call>{json}</tool_call>: Qwen2.5, Qwen3, Hermes) or llama3_json '
                            '(Llama 3.x); without one, "auto" is refused')
    serve.add_argument("--scheduler", help="batch policy by name: sarathi (default), vllm, orca, static")
    serve.add_argument("--token-budget", type=int, help="most tokens one engine step carries")
    serve.add_argument("--max-num-seqs", type=int, help="most requests running at once")
    serve.add_argument("--max-waiting-requests", type=int, help="refuse new requests (503) past this many waiting")
    serve.add_argument("--enable-prefix-caching", action="store_true", default=None,
                       help="reuse the KV of prompt prefixes earlier requests computed (a shared system prompt, "
                            "earlier turns of a conversation)")
    serve.add_argument("--speculative", help='speculative decoding: "ngram" (prompt lookup) or "draft:PATH" '
                                             "(a smaller model with the same tokenizer); default off")
    serve.add_argument("--num-speculative-tokens", type=_positive,
                       help="most tokens proposed per decode and step with --speculative (default 4)")
    serve.add_argument("--shutdown-timeout", type=_seconds, default=DEFAULT_SHUTDOWN_TIMEOUT,
                       help="seconds open requests may take to finish on Ctrl-C / SIGTERM before they are aborted "
                            f"(default {DEFAULT_SHUTDOWN_TIMEOUT:g})")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                       help="uvicorn's log level (default info)")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = {name: getattr(args, name) for name in ENGINE_OPTIONS if getattr(args, name) is not None}
    check_engine_options(args.model, options)
    try:
        from .app import create_app
        from .server import serve
    except ImportError as exc:
        raise ConfigError(f"sarathi serve needs the serve extra: pip install 'sarathi-sdk[serve]' ({exc})") from exc
    if args.host not in LOOPBACK_HOSTS and not args.api_key:
        logger.warning("serving on %s without --api-key: anyone who reaches this port can use the model", args.host)
    app = create_app(args.model, api_key=args.api_key, max_body_bytes=args.max_body_bytes,
                     served_model_name=args.served_model_name, default_max_tokens=args.default_max_tokens,
                     tool_call_parser=args.tool_call_parser, **options)
    main = functools.partial(serve, app, host=args.host, port=args.port, log_level=args.log_level,
                             shutdown_timeout=args.shutdown_timeout)
    anyio.run(main, backend="asyncio")  # uvicorn runs on asyncio
    return 0


def check_engine_options(model: str | None, options: dict[str, Any]) -> None:
    """The engine config's own checks, and the scheduler's and proposer's names against the registered
    ones."""
    config = EngineConfig.from_options(model, **options)
    plugins = PluginManager(config)
    schedulers = plugins.registry("sarathi_register_schedulers")
    if config.scheduler not in schedulers:
        raise ConfigError(f"unknown scheduler {config.scheduler!r}; registered: {', '.join(sorted(schedulers))}")
    proposers = plugins.registry("sarathi_register_proposers")
    name = (config.speculative or "").partition(":")[0]
    if config.speculative is not None and name not in proposers:
        raise ConfigError(f"unknown speculative proposer {name!r}; registered: {', '.join(sorted(proposers))}")


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {port}")
    return port


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value

"""`sarathi bench compare | capacity | micro | pipeline`: the subcommands, attached to the `sarathi` parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from . import capacity_cmd, compare, micro, pipeline


def add_parser(commands: Any) -> None:
    bench = commands.add_parser("bench", help="compare schedulers, find capacity under a TBT SLO, time steps")
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    compare.add_parser(sub)
    capacity_cmd.add_parser(sub)
    micro.add_parser(sub)
    pipeline.add_parser(sub)
    bench.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    command: Callable[[argparse.Namespace], int] = args.bench_run
    return command(args)

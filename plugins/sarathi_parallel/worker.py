"""A pipeline stage's process: set up from stage 0's messages, then run micro-batches until STOP.

Stages 1 .. N-1 run here (`python -m sarathi_parallel.worker`), either started by the engine on this
machine (see `launch`) or by torchrun on any node (`torchrun ... -m sarathi_parallel.worker APP.py`:
rank 0 runs the app, whose Engine is stage 0; every other rank becomes a stage). A stage:

1. receives the engine's config as JSON (`CONFIG`), builds its stage through the
   `sarathi_make_pipeline_stage` hook of its own plugin manager, answers its KV-cache spec (`SPEC`);
2. receives the engine's block count (`START`), allocates its KV cache, answers `READY`;
3. loops: a micro-batch from the previous stage, its layers, the hidden states to the next stage
   (the last stage sends only the sampling rows back to stage 0), until `STOP`, which it passes on.

A setup failure is answered as {"error": ...}; a failure later ends the process, which stage 0
notices (its sockets close). A stage the engine started also exits when the engine's process dies: it
watches a pipe whose other end only the engine holds. Nothing here is unpickled: see `wire`.

Imports torch, the public `sarathi_sdk` API and this package.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import runpy
import sys
import threading
import time
from typing import Any

import torch

from sarathi_sdk import EngineConfig, PluginError, PluginManager

from . import wire
from .groups import PARENT_FD, Groups, connect_store, rendezvous_from_env

logger = logging.getLogger(__name__)


def _exit_with_parent(fd: int) -> None:
    """Nothing is ever written to the pipe: the read returns (empty) when the engine's process is gone."""
    try:
        os.read(fd, 1)
    finally:
        os._exit(1)


def serve(groups: Groups) -> None:
    """Stage `groups.rank`'s whole life; returns after STOP."""
    rank, num_stages = groups.rank, groups.world_size
    document = _recv_json(groups, wire.CONFIG)
    if document["cuda"]:
        groups.enable_cuda()
    try:
        config = EngineConfig(**document["config"])
        if document["num_threads"]:
            torch.set_num_threads(document["num_threads"])
        if document["cuda"]:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
        stage = _build_stage(config, rank, num_stages)
        spec = stage.kv_cache_spec(config)
    except Exception as exc:
        logger.exception("pipeline stage %d failed to build", rank)
        _send_json(groups, wire.SPEC, {"error": f"{type(exc).__name__}: {exc}"})
        return
    _send_json(groups, wire.SPEC, {"num_blocks": spec.num_blocks, "bytes_per_block": spec.bytes_per_block,
                                   "layers": list(stage.layers)})
    start = _recv_json(groups, wire.START)
    try:
        config = dataclasses.replace(config, block_size=start["block_size"])
        stage.start(config, start["num_blocks"])
    except Exception as exc:
        logger.exception("pipeline stage %d failed to start", rank)
        _send_json(groups, wire.READY, {"error": f"{type(exc).__name__}: {exc}"})
        return
    _send_json(groups, wire.READY, {})
    _run(groups, stage, torch.device("cuda" if document["cuda"] else "cpu"))
    stage.close()


def _build_stage(config: EngineConfig, rank: int, num_stages: int) -> Any:
    plugins = PluginManager(config)
    stage = plugins.hook.sarathi_make_pipeline_stage(
        config=config, registries=plugins.registries(), stage_index=rank, num_stages=num_stages, sampler=None
    )
    if stage is None:
        raise PluginError("no plugin provides a pipeline stage (sarathi_make_pipeline_stage)")
    return stage


def _run(groups: Groups, stage: Any, device: torch.device) -> None:
    """Micro-batches until STOP; see the module docstring. Hidden states arrive on `device`."""
    rank, num_stages = groups.rank, groups.world_size
    last = rank == num_stages - 1
    while True:
        head = groups.recv(torch.empty(8, dtype=torch.int64), rank - 1, wire.FORWARD_TAG)  # [8]
        if int(head[0]) == wire.STOP:
            groups.send(head, 0 if last else rank + 1, wire.RETURN_TAG if last else wire.FORWARD_TAG)
            return
        body = groups.recv(torch.empty(wire.body_length(head), dtype=torch.int64), rank - 1, wire.FORWARD_TAG)
        timings = groups.recv(torch.empty(num_stages, dtype=torch.float64), rank - 1, wire.FORWARD_TAG)
        hidden = groups.recv(wire.hidden_buffer(head, int(head[4]), device), rank - 1, wire.FORWARD_TAG)  # [T, H]
        started = time.perf_counter()
        out = stage.forward(wire.decode_batch(head, body), hidden)  # [T, H], or [S, H] on the last stage
        timings[rank] += time.perf_counter() - started
        if last:
            groups.send(wire.header(wire.RESULT, int(head[1]), a=out.shape[0], hidden=out), 0, wire.RETURN_TAG)
            groups.send(timings, 0, wire.RETURN_TAG)
            groups.send(out.contiguous(), 0, wire.RETURN_TAG)
        else:
            for tensor in (wire.with_hidden(head, out), body, timings, out.contiguous()):
                groups.send(tensor, rank + 1, wire.FORWARD_TAG)


def _recv_json(groups: Groups, kind: int) -> dict[str, Any]:
    head = groups.recv(torch.empty(8, dtype=torch.int64), 0, wire.CONTROL_TAG)  # [8]
    if int(head[0]) != kind:
        raise RuntimeError(f"pipeline setup out of order: expected message {kind}, got {int(head[0])}")
    return wire.decode_json(groups.recv(torch.empty(int(head[2]), dtype=torch.uint8), 0, wire.CONTROL_TAG))


def _send_json(groups: Groups, kind: int, document: dict[str, Any]) -> None:
    head, payload = wire.encode_json(kind, document)
    groups.send(head, 0, wire.CONTROL_TAG)
    groups.send(payload, 0, wire.CONTROL_TAG)


def main(argv: list[str] | None = None) -> None:
    """`torchrun ... -m sarathi_parallel.worker APP.py [ARGS]`: rank 0 runs APP.py as `__main__` (its
    `Engine(pipeline_parallel_size=WORLD_SIZE)` connects to the other ranks), every other rank serves
    as a pipeline stage until that engine closes."""
    args = sys.argv[1:] if argv is None else argv
    found = rendezvous_from_env()
    if found is None:
        raise SystemExit("run under torchrun: MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK must be set")
    rendezvous, rank = found
    if PARENT_FD in os.environ:
        fd = int(os.environ[PARENT_FD])
        threading.Thread(target=_exit_with_parent, args=(fd,), daemon=True, name="sarathi-parent-watch").start()
    if rank == 0:
        if not args:
            raise SystemExit("usage: torchrun ... -m sarathi_parallel.worker APP.py [ARGS]")
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")
        return
    logging.basicConfig(level=logging.INFO)
    serve(Groups(connect_store(rendezvous, rank), rendezvous, rank))


if __name__ == "__main__":
    main()

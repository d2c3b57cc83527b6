"""The torch.distributed process groups of one pipeline process, and point-to-point send / recv on them.

No default process group and no `init_process_group`: each engine builds its own groups from a
`TCPStore`, so two engines in one process (or one after another, as in tests) never share global
state. On the CPU one gloo group carries everything. On CUDA the hidden states go over NCCL, in two
groups so that no NCCL communicator is used from two threads at once: "forward" (stage i -> i + 1,
which stage 0 uses only under its send lock) and "return" (last stage -> 0, which stage 0 receives
on its one router thread); headers, batch bodies and timings stay on gloo, on the CPU.

The gloo timeout is long on purpose: a stage waits in `recv` for as long as the engine has no work,
and a dead peer is noticed at once anyway (its socket closes and every pending op raises).

Imports torch, the standard library and this package's `wire`.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .wire import FORWARD_TAG, RETURN_TAG

IDLE_TIMEOUT = datetime.timedelta(days=30)
"""How long a receive may wait: a stage idles in one for as long as the engine has nothing to run."""
SETUP_TIMEOUT = datetime.timedelta(seconds=120)
"""How long the processes may take to join the store: spawn, import torch, connect."""
PARENT_FD = "SARATHI_PIPELINE_PARENT_FD"
"""Environment variable naming a spawned stage's end of the pipe to the engine (see `launch`)."""
LOOPBACK = "SARATHI_PIPELINE_LOOPBACK"
"""Environment variable: "1" when the engine spawned every process on this machine."""


@dataclass(frozen=True, slots=True)
class Rendezvous:
    """Where the pipeline's processes meet: a TCPStore at `host:port` that stage 0 serves (or, under
    torchrun, the elastic agent does), `world_size` processes, one per stage."""

    host: str
    port: int
    world_size: int
    loopback: bool
    """All processes on this machine, talking over 127.0.0.1 (spawned by the engine); otherwise gloo
    picks its interface as torch.distributed does (`GLOO_SOCKET_IFNAME`)."""
    agent_store: bool = False
    """torchrun's agent serves the store (`TORCHELASTIC_USE_AGENT_STORE`): stage 0 is a client too."""


def serve_store(world_size: int) -> tuple[dist.TCPStore, Rendezvous]:
    """Stage 0's store on a free port of 127.0.0.1, for processes it spawns."""
    store = dist.TCPStore("127.0.0.1", 0, world_size, True, timeout=SETUP_TIMEOUT, wait_for_workers=False)
    return store, Rendezvous("127.0.0.1", store.port, world_size, loopback=True)


def connect_store(rendezvous: Rendezvous, rank: int) -> dist.TCPStore:
    is_server = rank == 0 and not rendezvous.agent_store
    return dist.TCPStore(rendezvous.host, rendezvous.port, rendezvous.world_size, is_server,
                         timeout=SETUP_TIMEOUT, wait_for_workers=False)


def rendezvous_from_env() -> tuple[Rendezvous, int] | None:
    """(rendezvous, rank) when torchrun, the engine (see `launch`) or any launcher setting the same
    variables started this process."""
    names = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")
    if not all(name in os.environ for name in names):
        return None
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    rendezvous = Rendezvous(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                            int(os.environ["WORLD_SIZE"]), loopback=os.environ.get(LOOPBACK) == "1",
                            agent_store=agent)
    return rendezvous, int(os.environ["RANK"])


class Groups:
    """This process's process groups (see the module docstring); every call blocks until done."""

    def __init__(self, store: dist.Store, rendezvous: Rendezvous, rank: int) -> None:
        self.rank = rank
        self.world_size = rendezvous.world_size
        base = dist.PrefixStore("sarathi_parallel", store)
        if rendezvous.loopback:
            options = dist.ProcessGroupGloo._Options()
            options._devices = [dist.ProcessGroupGloo.create_device(hostname="127.0.0.1")]
            options._timeout = IDLE_TIMEOUT
            self.gloo = dist.ProcessGroupGloo(dist.PrefixStore("gloo", base), rank, self.world_size, options)
        else:
            self.gloo = dist.ProcessGroupGloo(dist.PrefixStore("gloo", base), rank, self.world_size, IDLE_TIMEOUT)
        self._base = base
        self._nccl: dict[int, dist.ProcessGroup] = {}

    def enable_cuda(self) -> None:
        """Hidden states on CUDA from now on: every process calls this once the config says so (NCCL
        connects lazily, at the first send)."""
        for tag in (FORWARD_TAG, RETURN_TAG):
            store = dist.PrefixStore(f"nccl{tag}", self._base)
            self._nccl[tag] = dist.ProcessGroupNCCL(store, self.rank, self.world_size)

    def send(self, tensor: torch.Tensor, dst: int, tag: int) -> None:
        if tensor.numel():
            self._group(tensor, tag).send([tensor], dst, tag).wait()

    def recv(self, tensor: torch.Tensor, src: int, tag: int) -> torch.Tensor:
        if tensor.numel():
            self._group(tensor, tag).recv([tensor], src, tag).wait()
        return tensor

    def _group(self, tensor: torch.Tensor, tag: int) -> dist.ProcessGroup:
        return self._nccl[tag] if tensor.is_cuda else self.gloo

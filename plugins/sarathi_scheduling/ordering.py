"""The order in which a policy serves requests, and whom it preempts first.

`config.policy_order` picks one key for both queues: the waiting queue is served smallest key first,
running requests get prefill budget smallest key first, and a request that needs blocks preempts
running requests with larger keys, the largest first. "fcfs" is arrival order; "priority" is vLLM's: lower
`Request.priority` first, arrival breaking ties. `arrival_index` is unique per engine, so keys never tie.

Pure Python; imports only the public `sarathi_sdk` API.
"""

from __future__ import annotations

from collections.abc import Callable

from sarathi_sdk import Request

SortKey = Callable[[Request], tuple[int, ...]]


def fcfs_key(request: Request) -> tuple[int, ...]:
    return (request.arrival_index,)


def priority_key(request: Request) -> tuple[int, ...]:
    return (request.priority, request.arrival_index)


ORDERS: dict[str, SortKey] = {"fcfs": fcfs_key, "priority": priority_key}
"""By `EngineConfig.policy_order`, whose validation names the same choices."""

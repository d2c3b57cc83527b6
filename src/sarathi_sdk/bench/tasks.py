"""`gather`: await several things at once in an anyio task group, results in order.

The benchmarks submit many requests together and wait for all of them. As with the standard library's
gather, the first exception propagates as it is (so an SDK error is still one line from the CLI, not
an ExceptionGroup); the others are cancelled then rather than left running. Runs on any backend anyio
supports. Imports only anyio and the standard library.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio

T = TypeVar("T")


async def gather(*awaitables: Awaitable[T]) -> list[T]:
    """Await every one of `awaitables` concurrently; their results in the order given."""
    results: dict[int, T] = {}
    errors: list[Exception] = []

    async def one(index: int, awaitable: Awaitable[T], scope: anyio.CancelScope) -> None:
        try:
            results[index] = await awaitable
        except Exception as exc:  # raised below, outside the task group
            errors.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as tasks:
        for index, awaitable in enumerate(awaitables):
            tasks.start_soon(one, index, awaitable, tasks.cancel_scope)
    if errors:
        raise errors[0]
    return [results[index] for index in range(len(awaitables))]

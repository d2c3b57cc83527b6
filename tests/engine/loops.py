"""One `async def` test, collected once per event loop: `[asyncio]` run by pytest-asyncio, `[trio]` by `trio.run`.

Mark a test function (or a whole module, with `pytestmark`) `@pytest.mark.loops("asyncio", "trio")`; a
test marked nearer (the function over its module) wins, so `@pytest.mark.loops("asyncio")` keeps one
test of a dual-loop module on asyncio alone. Each loop named becomes one item, its id first in the
brackets: `test_x[asyncio]`, `test_x[trio]`, `test_x[trio-8-cache-off]` for a parametrized one, so
`-k trio` picks a loop.

How, in two hooks:

- `pytest_generate_tests` parametrizes every marked coroutine-function test on a pseudo-fixture
  `loop_name` (a test may take it as an argument to learn its loop), so pytest itself names, ids and
  parametrizes the items, `loop_name` first.
- `pytest_pycollect_makeitem` is a wrapper around pytest's own collection of the function that runs
  inside (`trylast`) pytest-asyncio's wrapper of the same hook, which turns every coroutine-function item
  into its own item class (auto mode). Of the plain items pytest made, it replaces each `trio` one with
  an item whose function is synchronous and calls `trio.run(test, **arguments)`: not a coroutine
  function, so pytest-asyncio leaves it alone and it stays a plain `pytest.Function`, with no asyncio
  loop set up for it and no plugins mixed in one test. Whatever the body raises, `trio.run` raises, so
  the item fails. The `asyncio` items stay as they are and pytest-asyncio takes them over exactly as an
  unmarked async test: its loop, its runner fixture, its contextvars.

A trio item keeps the test's parameters and fixture closure (its own copy of the closure's list, which
pytest-asyncio appends its runner fixture to for the items it takes over). An async fixture would run on
pytest-asyncio's loop, not trio's, so a trio item that needs one is a collection error; the engine tests
use synchronous fixtures only.

Hooked in by `tests/engine/conftest.py`, which binds the three hooks below.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

LOOPS = ("asyncio", "trio")
LOOP_NAME = "loop_name"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "loops(*names): run this async test once per event loop named ('asyncio' by pytest-asyncio, 'trio' "
        "by trio.run), as test[asyncio], test[trio] (tests/engine/loops.py)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("loops")
    if marker is None or not inspect.iscoroutinefunction(metafunc.function):
        return
    names = marker.args or LOOPS
    if set(names) - set(LOOPS) or len(set(names)) != len(names) or not names:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: loops{tuple(names)}: name each of {LOOPS} at most once")
    if LOOP_NAME not in metafunc.fixturenames:
        metafunc.fixturenames.append(LOOP_NAME)
    metafunc.parametrize(LOOP_NAME, names)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object):
    result = yield
    if not inspect.iscoroutinefunction(obj) or not result:
        return result
    items = result if isinstance(result, list) else [result]
    return [_on_trio(item) if _loop_of(item) == "trio" else item for item in items]


def _loop_of(item: object) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get(LOOP_NAME)


def _on_trio(item: pytest.Function) -> pytest.Function:
    if not isinstance(item.parent, pytest.Module):
        raise pytest.UsageError(f"{item.nodeid}: the loops marker is for module-level test functions")
    fixtureinfo = item._fixtureinfo
    async_fixtures = [
        fixture_name
        for fixture_name, defs in fixtureinfo.name2fixturedefs.items()
        if defs and (inspect.iscoroutinefunction(defs[-1].func) or inspect.isasyncgenfunction(defs[-1].func))
    ]
    if async_fixtures:
        raise pytest.UsageError(
            f"{item.nodeid}: async fixtures {async_fixtures} would run on pytest-asyncio's loop, not trio's; "
            "make them synchronous or keep this test on asyncio (@pytest.mark.loops('asyncio'))"
        )
    trio_item = pytest.Function.from_parent(
        item.parent,
        name=item.name,
        callspec=item.callspec,
        callobj=trio_twin(item.obj),
        fixtureinfo=dataclasses.replace(fixtureinfo, names_closure=list(fixtureinfo.names_closure)),
        keywords=item.keywords,
        originalname=item.originalname,
    )
    assert trio_item.nodeid == item.nodeid
    return trio_item


def trio_twin(test: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., None]:
    """A synchronous function with `test`'s name and signature that runs it to the end under `trio.run`."""

    def run_on_trio(**arguments: Any) -> None:
        import trio

        trio.run(functools.partial(test, **arguments))

    functools.update_wrapper(run_on_trio, test)
    del run_on_trio.__wrapped__  # so that nothing unwraps it back to the coroutine function
    run_on_trio.__signature__ = inspect.signature(test)  # type: ignore[attr-defined]
    return run_on_trio

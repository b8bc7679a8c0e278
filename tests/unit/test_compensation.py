"""Undo steps of a write that fails part-way: newest first, all of them, the error unchanged."""

from __future__ import annotations

import asyncio

import pytest

from taskscheduler._compensation import Compensation


class Boom(Exception):
    pass


def recorder(done: list[str], name: str, *, fails: bool = False):  # type: ignore[no-untyped-def]
    async def undo() -> None:
        done.append(name)
        if fails:
            raise RuntimeError(f"cannot undo {name}")

    return undo


async def test_a_failure_takes_back_every_step_newest_first_and_raises_the_original_error() -> None:
    done: list[str] = []
    with pytest.raises(Boom):
        async with Compensation("test") as undo:
            undo.push("first", recorder(done, "first"))
            undo.push("second", recorder(done, "second"))
            raise Boom
    assert done == ["second", "first"]


async def test_an_undo_that_fails_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []
    with pytest.raises(Boom):
        async with Compensation("test") as undo:
            undo.push("first", recorder(done, "first"))
            undo.push("second", recorder(done, "second", fails=True))
            raise Boom
    assert done == ["second", "first"]
    assert "could not take back the second of a failed test" in caplog.text


async def test_success_takes_nothing_back() -> None:
    done: list[str] = []
    async with Compensation("test") as undo:
        undo.push("first", recorder(done, "first"))
    assert done == []


async def cancelled_while_undoing(original: type[BaseException]) -> tuple[list[str], BaseException]:
    """A write failing with ``original`` whose slow undo is cancelled twice over."""
    done: list[str] = []
    undoing = asyncio.Event()

    async def slow_undo() -> None:
        undoing.set()
        await asyncio.sleep(0.2)
        done.append("first")

    async def write() -> None:
        async with Compensation("test") as undo:
            undo.push("first", slow_undo)
            if original is asyncio.CancelledError:
                await asyncio.sleep(60)  # cancelled below
            raise original

    task = asyncio.create_task(write())
    await asyncio.sleep(0.01)
    if original is asyncio.CancelledError:
        task.cancel()
    await undoing.wait()
    task.cancel()  # and again, while the undo runs
    try:
        await task
    except BaseException as exc:
        return done, exc
    raise AssertionError("the write did not fail")


async def test_an_undo_runs_to_its_end_though_the_caller_is_cancelled_again() -> None:
    done, raised = await cancelled_while_undoing(asyncio.CancelledError)
    assert done == ["first"]
    assert isinstance(raised, asyncio.CancelledError)


async def test_a_cancellation_during_the_undo_of_another_error_is_not_lost() -> None:
    done, raised = await cancelled_while_undoing(Boom)
    assert done == ["first"]
    assert isinstance(raised, asyncio.CancelledError)
    assert isinstance(raised.__cause__, Boom)

"""wsss.parallel.parallel_map: order, errors and per-worker state, in this process and over a pool."""

import os

import pytest

from wsss.parallel import parallel_map

_STATE: dict = {}


def _square(x: int) -> int:
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"item{x}.png: unreadable image")
    return x


def _init(tag: str) -> None:
    _STATE["tag"] = tag


def _tagged(x: int) -> tuple[str | None, int, int]:
    return _STATE.get("tag"), os.getpid(), x


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_results_come_in_order(workers):
    assert parallel_map(_square, range(20), workers, progress=False, chunksize=3) == [x * x for x in range(20)]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_reaches_the_caller_with_its_message(workers):
    with pytest.raises(ValueError, match=r"item3\.png: unreadable image"):
        parallel_map(_fail_on_three, range(6), workers, progress=False)


def test_the_initializer_runs_in_each_worker_only():
    pooled = parallel_map(_tagged, range(4), 2, progress=False, initializer=_init, initargs=("worker",))
    assert [x for *_, x in pooled] == [0, 1, 2, 3]
    assert {tag for tag, *_ in pooled} == {"worker"} and os.getpid() not in {pid for _, pid, _ in pooled}
    assert parallel_map(_tagged, [7], 1, progress=False, initializer=_init, initargs=("worker",)) == \
        [(None, os.getpid(), 7)]


def test_no_items_start_no_pool(monkeypatch):
    monkeypatch.setattr("wsss.parallel.multiprocessing.get_context", lambda *_: pytest.fail("a pool was started"))
    assert parallel_map(_square, [], 4, progress=False) == []

"""One parallel map with a progress bar, for every stage that works image by image.

``parallel_map(fn, items, workers)`` is ``[fn(x) for x in items]``: in this process when ``workers <= 1``,
else over a pool of ``min(workers, len(items))`` processes (``Pool.imap``; none is started for no items).
Results come back in the order of ``items`` whatever the number of workers, so what a caller sums or writes
does not depend on it. An exception raised by ``fn`` stops the map and reaches the caller as raised (the pool
is terminated); its message is the one ``fn`` gave, so functions that read files name them. Skipping the
items a killed run completed is the caller's part (it passes only the rest, see ``wsss.io.output_dir``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any


def parallel_map(fn: Callable, items: Iterable, workers: int = 1, desc: str | None = None, progress: bool = True,
                 chunksize: int = 1, unit: str = "it", start_method: str | None = None,
                 initializer: Callable | None = None, initargs: tuple = ()) -> list[Any]:
    """``[fn(x) for x in items]`` in order, with a tqdm bar: in this process when ``workers <= 1``, else over
    ``min(workers, len(items))`` processes.

    ``fn`` (and ``initializer``, ``initargs``) must pickle when ``workers > 1``. ``chunksize``: items sent
    to a worker at a time. ``start_method``: "fork", "spawn" or "forkserver"; None for the platform's
    default. ``initializer(*initargs)`` runs once in each worker process (per-worker state: a model, a
    thread count), never in this process: the in-process map calls ``fn`` alone.
    """
    from tqdm import tqdm  # 60 ms to import: not at import time (wsss.metrics starts fast)

    items = list(items)
    in_pool = workers > 1 and len(items) > 0
    pool = (multiprocessing.get_context(start_method).Pool(min(workers, len(items)), initializer, initargs)
            if in_pool else nullcontext())
    with pool, tqdm(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
        results = []
        for result in (pool.imap(fn, items, chunksize) if in_pool else map(fn, items)):
            results.append(result)
            bar.update()
        return results

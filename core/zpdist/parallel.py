"""Where dask work runs: a new LocalCluster sized to the machine, an existing cluster, or this process.

Shared by every command that fans work out with dask (``zpdist zeropoint``, ``zpdist ingest spectra``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

#: Scheduler names that run in this process instead of on a cluster.
LOCAL_SCHEDULERS = ("threads", "synchronous")
#: The only address a LocalCluster started here listens on (its scheduler and its diagnostics dashboard).
LOCAL_HOST = "127.0.0.1"


@contextlib.contextmanager
def dask_executor(
    scheduler: str | object | None, n_workers: int | None, log: Callable[[str], None]
) -> Iterator[str | object]:
    """Where dask work runs: a ``distributed.Client`` or the name of a local scheduler.

    Parameters
    ----------
    scheduler : str, distributed.Client or None
        None starts a LocalCluster of ``n_workers`` single-threaded processes (default: one per core) for
        the duration of the block, reachable from this machine only (scheduler and diagnostics dashboard on
        127.0.0.1); a scheduler address connects to an existing cluster; a Client is used as it is; "threads"
        or "synchronous" runs in this process.
    n_workers : int or None
        Workers of a new LocalCluster.
    log : callable
        Receives one line naming the scheduler and its diagnostics dashboard.

    Yields
    ------
    distributed.Client or str
    """
    if isinstance(scheduler, str) and scheduler in LOCAL_SCHEDULERS:
        yield scheduler
        return
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            from dask.system import CPU_COUNT

            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers or CPU_COUNT,
                    threads_per_worker=1,
                    processes=True,
                    host=LOCAL_HOST,
                    dashboard_address=f"{LOCAL_HOST}:0",
                )
            )
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler))
        log(f"dask scheduler {client.scheduler.address}, dashboard {client.dashboard_link}")
        yield client


def worker_threads(executor: str | object) -> int:
    """Tasks ``executor`` (a local scheduler name or a ``distributed.Client``) runs at once."""
    if isinstance(executor, str):
        from dask.system import CPU_COUNT

        return 1 if executor == "synchronous" else CPU_COUNT
    return max(1, sum(executor.nthreads().values()))


def map_tasks(
    executor: str | object,
    func: Callable,
    items: Sequence,
    shared: Sequence = (),
    window: int | None = None,
) -> Iterator[tuple[int, object]]:
    """Run ``func(*shared, item)`` for every item on ``executor``; yield ``(i, result)`` for ``items[i]`` as tasks end.

    The one way this package fans work out with dask (``zpdist zeropoint``, ``zpdist ingest spectra``). At most
    ``window`` tasks are in flight, so results are consumed as they come and memory stays bounded however many
    items there are. On a cluster the ``shared`` arguments are scattered once to every worker (one copy each,
    not one per task) and results arrive in completion order; an error or an abandoned loop cancels the tasks
    still running. With a local scheduler the items run in consecutive windows, each window's results in order.

    Parameters
    ----------
    executor : str or distributed.Client
        From :func:`dask_executor`.
    func : callable
        Module-level (it is pickled to the workers), called as ``func(*shared, item)``.
    items : sequence
    shared : sequence
        Arguments common to every task, passed before the item.
    window : int, optional
        Tasks in flight; default twice :func:`worker_threads`.

    Yields
    ------
    (int, object)
        The item's position in ``items`` and what ``func`` returned for it.
    """
    window = window or 2 * worker_threads(executor)
    if isinstance(executor, str):
        import dask

        for first in range(0, len(items), window):
            tasks = [dask.delayed(func, pure=False)(*shared, item) for item in items[first : first + window]]
            yield from enumerate(dask.compute(*tasks, scheduler=executor), first)
        return
    from distributed import as_completed

    # unique keys (hash=False): re-scattering equal data under its content hash while the previous call's copies
    # are being released loses them ("Could not find data", tasks cancelled for lost dependencies)
    handles = executor.scatter(list(shared), broadcast=True, hash=False) if shared else []
    pending = list(enumerate(items))[::-1]
    position: dict[str, int] = {}

    def submit(index: int, item) -> object:
        future = executor.submit(func, *handles, item, pure=False)
        position[future.key] = index
        return future

    running = as_completed([submit(*pending.pop()) for _ in range(min(window, len(pending)))])
    try:
        for future in running:
            yield position.pop(future.key), future.result()
            if pending:
                running.add(submit(*pending.pop()))
    except BaseException:
        executor.cancel(list(running.futures))
        raise

"""Where dask work runs: a new LocalCluster sized to the machine, an existing cluster, or this process.

Shared by every command that fans work out with dask (``zpdist zeropoint``, ``zpdist ingest spectra``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

#: Scheduler names that run in this process instead of on a cluster.
LOCAL_SCHEDULERS = ("threads", "synchronous")


@contextlib.contextmanager
def dask_executor(
    scheduler: str | object | None, n_workers: int | None, log: Callable[[str], None]
) -> Iterator[str | object]:
    """Where dask work runs: a ``distributed.Client`` or the name of a local scheduler.

    Parameters
    ----------
    scheduler : str, distributed.Client or None
        None starts a LocalCluster of ``n_workers`` single-threaded processes (default: one per core) for
        the duration of the block; a scheduler address connects to an existing cluster; a Client is used
        as it is; "threads" or "synchronous" runs in this process.
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
                    n_workers=n_workers or CPU_COUNT, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
            )
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler))
        log(f"dask scheduler {client.scheduler.address}, dashboard {client.dashboard_link}")
        yield client

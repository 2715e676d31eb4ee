"""zpdist.parallel: the one dask helper (map_tasks) on local schedulers and on a cluster, and a LocalCluster that only
this machine can reach."""

from __future__ import annotations

import threading
import time

import pytest

from zpdist.parallel import dask_executor, map_tasks, worker_threads

#: Tasks running now and the most seen at once (the in-process cluster's workers share this module).
_RUNNING = {"now": 0, "most": 0}
_LOCK = threading.Lock()


def affine(scale: int, offset: int, item: int) -> int:
    return scale * item + offset


def counted(item: int) -> int:
    """``item``, after holding a slot long enough for other tasks to start if they may."""
    with _LOCK:
        _RUNNING["now"] += 1
        _RUNNING["most"] = max(_RUNNING["most"], _RUNNING["now"])
    time.sleep(0.05)
    with _LOCK:
        _RUNNING["now"] -= 1
    return item


def fails_on_three(item: int) -> int:
    if item == 3:
        raise ValueError("item 3 is bad")
    return item


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_local_schedulers_give_every_result_with_its_position(scheduler):
    items = list(range(10))
    results = dict(map_tasks(scheduler, affine, items, shared=(3, 1), window=4))
    assert results == {i: 3 * i + 1 for i in items}
    assert worker_threads("synchronous") == 1 and worker_threads("threads") >= 1


def test_a_cluster_keeps_the_window_and_cancels_on_error():
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=4, dashboard_address=None) as client:
        assert worker_threads(client) == 4
        results = dict(map_tasks(client, affine, list(range(12)), shared=(2, -1), window=3))
        assert results == {i: 2 * i - 1 for i in range(12)}
        _RUNNING["most"] = 0
        assert sorted(dict(map_tasks(client, counted, list(range(12)), window=2)).values()) == list(range(12))
        assert _RUNNING["most"] <= 2  # four threads, but never more than the window in flight
        with pytest.raises(ValueError, match="item 3 is bad"):
            dict(map_tasks(client, fails_on_three, list(range(8)), window=2))


def test_a_local_cluster_listens_on_this_machine_only():
    lines: list[str] = []
    with dask_executor(None, 1, lines.append) as client:
        scheduler = client.cluster.scheduler
        dashboard = [sock.getsockname()[0] for sock in scheduler.http_server._sockets.values()]
        listeners = [listener.listen_address for listener in scheduler.listeners]
    assert dashboard == ["127.0.0.1"] and all(a.startswith("tcp://127.0.0.1:") for a in listeners)
    assert "dashboard http://127.0.0.1:" in lines[0]

"""Connecting to Ray: a local cluster of ``workers`` CPUs, or an existing one (``--ray-address``).

On a cluster (``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the
others, then ``RAY_ADDRESS=HEAD:6379`` or ``--ray-address``), every node needs this package
installed and the engine directory on a shared filesystem: workers read the corpus and write
their shards there.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from retriever.core.errors import MissingResourceError


@dataclass(frozen=True)
class Cluster:
    """A connected Ray cluster.

    Attributes:
        workers: how many shards a sharded step makes (tasks that run at once).
        gpus: GPUs the cluster reports (0: encoders run on CPUs).
    """

    workers: int
    gpus: float

    def resources(self, accelerated: bool) -> dict[str, Any]:
        """Ray task options for one shard: a GPU for an encoding step when the cluster has any."""
        if accelerated and self.gpus >= 1:
            return {"num_cpus": 1, "num_gpus": 1}
        return {"num_cpus": 1}


def ray_module():
    """The ``ray`` module, or a clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise MissingResourceError("--workers needs Ray: pip install 'retriever[ray]'") from None
    return ray


def connect(workers: int, address: str | None = None) -> Cluster:
    """Start (or join) Ray and return the cluster to shard over.

    Args:
        workers: the number of shards / concurrent tasks (>= 1).
        address: a Ray address (``HOST:6379`` or ``auto``); default ``$RAY_ADDRESS``, else a
            local cluster with ``workers`` CPUs.
    """
    if workers < 1:
        raise MissingResourceError(f"--workers must be at least 1, got {workers}")
    ray = ray_module()
    address = address or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "runtime_env": {"env_vars": {"PYTHONPATH": _python_path()}}}
        with _fault_handlers_kept():
            try:
                if address:
                    ray.init(address=address, **options)
                else:
                    ray.init(num_cpus=workers, **options)
            except Exception as e:  # noqa: BLE001  (Ray reports a failed start-up as a bare Exception)
                where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
                raise MissingResourceError(f"could not start or join {where}: {e}") from None
    return Cluster(workers, float(ray.cluster_resources().get("GPU", 0)))


def disconnect() -> None:
    """Shut the Ray connection down, keeping the process's fault handlers (see :func:`connect`)."""
    ray = ray_module()
    if ray.is_initialized():
        with _fault_handlers_kept():
            ray.shutdown()


@contextmanager
def _fault_handlers_kept() -> Iterator[None]:
    """Put back the process's SIGSEGV / SIGBUS / SIGFPE / SIGILL handlers after Ray installs its own.

    A JVM started in this process before Ray (Lucene, through pyjnius) handles SIGSEGVs of its
    own making (implicit null checks, safepoint polls); with Ray's crash handler in front of it,
    the next such signal killed the process ("Fatal Python error: Segmentation fault" while
    Lucene indexed). Only done when the JVM is already running.
    """
    if "jnius" not in sys.modules:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    saved = {}
    for number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL):
        action = ctypes.create_string_buffer(512)  # an opaque struct sigaction, read and written back whole
        if libc.sigaction(int(number), None, action) == 0:
            saved[number] = action
    try:
        yield
    finally:
        for number, action in saved.items():
            libc.sigaction(int(number), action, None)


def _python_path() -> str:
    """The driver's import path first, so workers import the same checkout of the package."""
    import retriever

    root = os.path.dirname(os.path.dirname(os.path.abspath(retriever.__file__)))
    return os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])

"""Load benchmark of the service (``retriever bench serve``), bounded and on loopback only.

For each system it measures, in the same run and on a copy of the engine: in-process calls
(one thread, then ``clients`` threads) and HTTP calls to a ``retriever serve`` subprocess
(one client, then ``clients`` concurrent keep-alive clients), while another process adds
documents. The writer hard-links each generation it makes into a snapshot directory, so
afterwards every HTTP result is compared with the Python API opened at the generation that
answered it.

Example:
    >>> report = run_serve_bench("work/nfcorpus", ["bm25", "rrf(bm25,dense)"], Path("results/bench-serve"))
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Sequence

from retriever.api import Engine
from retriever.core.datasets import load_dataset
from retriever.core.errors import InputError
from retriever.engine import writer

HOST = "127.0.0.1"
READY_SECONDS = 300.0
SNAPSHOTS = "snapshots"
ROUNDS = 5
FIRST_ADD_SECONDS = 300.0
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # subprocesses import this same code


def run_serve_bench(engine_dir: str | Path, systems: Sequence[str], out_dir: Path, requests: int = 5000,
                    clients: int = 8, sequential: int = 300, k: int = 10, dataset: str = "nfcorpus",
                    add_every_s: float = 5.0, add_batch: int = 4, max_adds: int = 100, workers: int = 1) -> str:
    """Run the benchmark; writes ``serve.json`` and ``serve.md`` to ``out_dir``; returns the table.

    Args:
        engine_dir: the engine to serve (copied first: the benchmark's writes never touch it).
        systems: ``using`` values to measure, e.g. ``["bm25", "rrf(bm25,dense)"]``.
        requests: requests per system in each concurrent phase.
        clients: concurrent clients (and in-process threads).
        workers: server processes.
        sequential: calls per system in each one-at-a-time phase (latency overhead).
        dataset: whose test queries to send.
        add_every_s, add_batch, max_adds: the concurrent writer's pace and bound.
    """
    if requests < 1 or clients < 1 or sequential < 1:
        raise InputError("requests, clients and sequential must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(dataset)
    queries = [q.text for q in data.split("test")[0].values()]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        root = Path(scratch)
        engine_copy, snapshots = root / "engine", root / SNAPSHOTS
        shutil.copytree(engine_dir, engine_copy)
        snapshot(engine_copy, snapshots)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")])}
        server = subprocess.Popen([sys.executable, "-m", "retriever.serve", str(engine_copy), "--port", str(port),
                                   "--workers", str(workers)],
                                  stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"), env=env)
        stop = root / "stop"
        adder = None
        try:
            wait_ready(port, server)
            engine = Engine.open(engine_copy)
            for using in systems:
                engine.search("warm up", k=k, using=using)
            adder = subprocess.Popen([sys.executable, "-m", "retriever.serve.bench", str(engine_copy),
                                      str(snapshots), str(stop), str(add_every_s), str(add_batch), str(max_adds)],
                                     stdout=subprocess.DEVNULL, stderr=open(root / "writer.log", "w"), env=env)
            wait_first_add(snapshots, adder)
            rows, seen = [], []
            for using in systems:
                row, answers = measure(engine, port, using, queries, k, requests, clients, sequential)
                rows.append(row)
                seen += answers
            engine.close()
        finally:
            stop.touch()
            if adder is not None:
                adder.wait(timeout=600)
            server.terminate()
            server.wait(timeout=60)
            for log in ("server.log", "writer.log"):
                shutil.copy(root / log, out_dir / log)
        mismatches, generations = verify(snapshots, seen, k)
        adds = len(list(snapshots.iterdir())) - 1
    report = {"engine": str(engine_dir), "systems": list(systems), "requests": requests, "clients": clients,
              "workers": workers, "sequential": sequential, "k": k, "cpus": os.cpu_count(), "writer_adds": adds,
              "add_batch": add_batch, "generations_answered": generations, "verified": len(seen),
              "mismatches": mismatches, "rows": rows}
    (out_dir / "serve.json").write_text(json.dumps(report, indent=2) + "\n")
    table = render(report)
    (out_dir / "serve.md").write_text(table + "\n")
    return table


def measure(engine: Engine, port: int, using: str, queries: list[str], k: int, requests: int, clients: int,
            sequential: int) -> tuple[dict[str, Any], list[tuple[str, str, int, list]]]:
    """One system's four phases; returns its row and every HTTP answer (using, query, generation, hits)."""
    order = [queries[i % len(queries)] for i in range(max(requests, sequential))]
    random.Random(0).shuffle(order)

    def local(query: str) -> None:
        engine.search(query, k=k, using=using)

    bodies: list[tuple[str, bytes]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def remote_client() -> Callable[[str], None]:
        connection = http.client.HTTPConnection(HOST, port, timeout=60)

        def call(query: str) -> None:
            path = "/api/search?" + urllib.parse.urlencode({"q": query, "k": k, "using": using})
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
            except Exception as e:  # noqa: BLE001 - every failure is counted, none ends the run
                connection.close()
                with lock:
                    failures.append(f"{type(e).__name__}: {e}")
                return
            with lock:  # decoded after the timed phases: the client's JSON parsing is not the server's cost
                bodies.append((query, body))

        return call

    calls = {"in_process_1": [local], "http_1": [remote_client()], "in_process_n": [local] * clients,
             "http_n": [remote_client() for _ in range(clients)]}
    for name, workers in calls.items():  # warm up: connections, JIT paths, caches
        timed(workers, order[:2 * len(workers)])
    bodies.clear()
    counts = {"in_process_1": sequential, "http_1": sequential, "in_process_n": requests, "http_n": requests}
    parts: dict[str, list[dict]] = {name: [] for name in calls}
    for round_ in range(ROUNDS):  # interleaved, so a change in the machine's load hits every phase alike
        for name, workers in calls.items():
            chunk = order[round_ * counts[name] // ROUNDS:(round_ + 1) * counts[name] // ROUNDS]
            parts[name].append(timed(workers, chunk, keep=True))
    phases = {name: summary(chunks) for name, chunks in parts.items()}
    answers = [(using, query, found["generation"], [(h["doc_id"], h["score"]) for h in found["hits"]])
               for query, found in ((query, json.loads(body)) for query, body in bodies)]
    row = {"using": using, "failed": len(failures), "failures": failures[:20], **phases,
           "p50_overhead_ms": round(phases["http_1"]["p50_ms"] - phases["in_process_1"]["p50_ms"], 3),
           "qps_ratio": round(phases["http_n"]["qps"] / phases["in_process_n"]["qps"], 3)}
    return row, answers


def timed(workers: list[Callable[[str], None]], items: list[str], keep: bool = False) -> dict[str, Any]:
    """Run ``items`` through ``workers`` (one thread each, sharing the list): seconds and latencies."""
    latencies: list[float] = []
    position = [0]
    lock = threading.Lock()

    def loop(work: Callable[[str], None]) -> None:
        mine = []
        while True:
            with lock:
                if position[0] >= len(items):
                    break
                item = items[position[0]]
                position[0] += 1
            started = time.perf_counter()
            work(item)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"seconds": time.perf_counter() - started, "latencies": latencies if keep else []}


def summary(chunks: list[dict[str, Any]]) -> dict[str, float]:
    """QPS over all chunks' time, and latency quantiles over all their calls."""
    ordered = sorted(x for chunk in chunks for x in chunk["latencies"])
    seconds = sum(chunk["seconds"] for chunk in chunks)
    return {"requests": len(ordered), "seconds": round(seconds, 3), "qps": round(len(ordered) / seconds, 1),
            "p50_ms": round(1000 * statistics.median(ordered), 3),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3)}


def verify(snapshots: Path, answers: list[tuple[str, str, int, list]], k: int) -> tuple[int, list[int]]:
    """Compare each HTTP answer with the Python API at its generation; (mismatches, generations seen)."""
    by_generation: dict[int, dict[tuple[str, str], set]] = {}
    for using, query, generation, hits in answers:
        by_generation.setdefault(generation, {}).setdefault((using, query), set()).add(tuple(map(tuple, hits)))
    mismatches = 0
    for generation, wanted in sorted(by_generation.items()):
        with Engine.open(snapshots / f"g{generation}") as engine:
            for (using, query), got in wanted.items():
                expected = tuple((h.doc_id, h.score) for h in engine.search(query, k=k, using=using))
                mismatches += sum(1 for answer in got if answer != expected)
    return mismatches, sorted(by_generation)


def render(report: dict[str, Any]) -> str:
    lines = [f"{report['requests']} requests per system, {report['clients']} clients, "
             f"{report['workers']} server worker(s), k={report['k']}, "
             f"{report['cpus']} CPUs; a writer process made {report['writer_adds']} adds of "
             f"{report['add_batch']} documents meanwhile (generations answered: "
             f"{', '.join(map(str, report['generations_answered']))}); {report['verified']} HTTP answers "
             f"checked against the Python API at their generation: {report['mismatches']} differ.", "",
             "| system | in-process p50 / p99 ms (1 thread) | HTTP p50 / p99 ms (1 client) | p50 overhead ms "
             f"| in-process QPS ({report['clients']} threads) | HTTP QPS ({report['clients']} clients) "
             "| HTTP p50 / p99 ms (loaded) | QPS ratio | failed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['using']} | {r['in_process_1']['p50_ms']} / {r['in_process_1']['p99_ms']} "
                     f"| {r['http_1']['p50_ms']} / {r['http_1']['p99_ms']} | {r['p50_overhead_ms']} "
                     f"| {r['in_process_n']['qps']} | {r['http_n']['qps']} "
                     f"| {r['http_n']['p50_ms']} / {r['http_n']['p99_ms']} | {r['qps_ratio']} | {r['failed']} |")
    return "\n".join(lines)


def snapshot(engine_dir: Path, snapshots: Path) -> None:
    """Hard-link the engine's live generation into ``snapshots/g<generation>`` (generations never change)."""
    generation = json.loads((engine_dir / "engine.json").read_text())["generation"]
    shutil.copytree(engine_dir, snapshots / f"g{generation}", copy_function=os.link, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.lock", ".tmp*"))


def wait_first_add(snapshots: Path, adder: subprocess.Popen) -> None:
    """Measure only once the writer is adding (its first generation is out)."""
    deadline = time.monotonic() + FIRST_ADD_SECONDS
    while len(list(snapshots.iterdir())) < 2:
        if adder.poll() is not None or time.monotonic() > deadline:
            raise InputError("the concurrent writer made no add (see its log)")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise InputError(f"the server exited with status {server.returncode} before it was ready")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=5)
            connection.request("GET", "/api/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise InputError(f"the server was not ready after {READY_SECONDS:g} s")


def add_loop(engine_dir: str, snapshots: str, stop: str, every_s: str, batch: str, most: str) -> None:
    """The concurrent writer: add ``batch`` copies of corpus documents under new ids until ``stop`` exists."""
    engine_path, stop_path = Path(engine_dir), Path(stop)
    with Engine.open(engine_path) as engine:
        source = engine.corpus.rows(list(range(min(len(engine.corpus), 2000))))
    rng = random.Random(1)
    for round_ in range(int(most)):
        if stop_path.exists():
            break
        picked = rng.sample(source, int(batch))
        writer.add(engine_path, [{"_id": f"bench-{round_}-{i}", "title": d.title, "text": d.text}
                                 for i, d in enumerate(picked)])
        snapshot(engine_path, Path(snapshots))
        time.sleep(float(every_s))


if __name__ == "__main__":
    add_loop(*sys.argv[1:7])

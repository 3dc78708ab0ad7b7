"""`make bench`: newsagg's hot path measured against a bare ASGI ceiling, side by side.

In one run (the machine is shared and noisy: read the ratios, not the absolute numbers):
1. cache hits: `GET /articles?category=technology&limit=20`, server pinned to CPU 0 and wrk
   to CPU 1, alternating newsagg and the bare ASGI app serving the identical bytes,
   ROUNDS times each: req/s, server CPU time per request, p50/p99 latency;
2. cold misses with the same latency added to all three simulated providers: the miss
   should cost about one provider's latency, not three;
3. resident memory while DISTINCT different queries are served: it must plateau once the
   result cache is full.

Needs wrk (Debian: `apt-get install -y wrk`) and taskset (util-linux).
    .venv/bin/python bench/run.py [--rounds 3] [--duration 10] [--distinct 50000]
        [--peers ../shared/peers --peer-venv /tmp/perfvenv]   # add the FastAPI peer
        [--shared]                     # add newsagg on PostgreSQL + Redis (unlimited key,
                                       # and a key counted in Redis on every request)
        [--archive | --archive-only]   # 4. the archive at scale (bench/archive.py): a
                                       # 1,000,000-article archive on SQLite and PostgreSQL,
                                       # every article saved through the service's archive
                                       # writer in harvest and refresh order, the service's
                                       # upkeep running, idle 60 s, then ingest rate and
                                       # search p50/p99 per kind (not in the default run)
        [--archive-args "--articles 200000 --backends sqlite"]
        [--push-only]                  # 5. push (bench/push.py): webhook latency with 1,000
                                       # active searches, 1,000 event streams on one instance
        [--hits-only]                  # 6. hits under search (bench/hits_under_search.py):
                                       # cache-hit p50/p99 of `newsagg serve` on a 200,000-
                                       # article archive, alone and while 2 clients search it
        [--hits-args "--backends sqlite,postgres"]
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from providers.base import PROVIDER_NAMES

ROOT = Path(__file__).resolve().parent.parent
PATH = "/articles?category=technology&limit=20"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CLI = (sys.executable, "-m", "edge.cli")  # the `newsagg` console script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, key: str | None = None, timeout: float = 30) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """A server on CPU 0 and a free port (the `{port}` in argv), up when this returns."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.process = subprocess.Popen(
            ["taskset", "-c", "0", *(arg.format(port=port) for arg in argv)],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        url = self.url
        deadline = time.monotonic() + 60
        while True:
            try:
                http_get(f"{url}/health", timeout=1)  # any answer means it is up
                return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)


def wrk(url: str, key: str, duration: int) -> dict[str, float]:
    header = f"Authorization: Bearer {key}"
    base = ["taskset", "-c", "1", "wrk", "-t1", "-c32", "-H", header]
    subprocess.run([*base, "-d2s", url], capture_output=True, check=True)  # warm-up, discarded
    out = subprocess.run(
        [*base, f"-d{duration}s", "--latency", url], capture_output=True, text=True, check=True
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out)[1])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"wrk saw {non2xx[1]} errors:\n{out}")

    def millis(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "requests": requests,
        "p50": millis("50"),
        "p99": millis("99"),
    }


def uvicorn(*command_app_and_dir: str | Path) -> list[str]:
    """argv for one quiet uvicorn worker serving `app` from `app_dir`."""
    *command, app, app_dir = (str(part) for part in command_app_and_dir)
    return [
        *command,
        app,
        "--port",
        "{port}",
        "--no-access-log",
        "--log-level",
        "warning",
        "--app-dir",
        app_dir,
    ]


def create_key(env: dict[str, str], tier: str = "unlimited") -> str:
    """A key of `tier` (by default one with no limit: the bench measures serving, not
    refusing)."""
    return subprocess.run(
        [*CLI, "keys", "create", "--name", "bench", "--tier", tier],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def measured(server: Server, key: str, duration: int) -> dict[str, float]:
    pid = server.process.pid
    before = cpu_seconds(pid)
    result = wrk(server.url + PATH, key, duration)
    # CPU includes the 2 s warm-up run: count its requests out by rate.
    cpu = cpu_seconds(pid) - before
    result["cpu_us"] = cpu / (result["requests"] * (duration + 2) / duration) * 1e6
    return result


def spread(values: list[float], digits: int = 1) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:9.{digits}f} (min {low:.{digits}f}, max {high:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--distinct", type=int, default=50_000)
    parser.add_argument("--latency", type=float, default=0.2, help="added per provider, s")
    parser.add_argument(
        "--peers",
        type=Path,
        help="also measure the idiomatic FastAPI peer from this folder (its README says how)",
    )
    parser.add_argument("--peer-venv", type=Path, default=Path("/tmp/perfvenv"))
    parser.add_argument(
        "--shared",
        action="store_true",
        help="also measure newsagg on PostgreSQL + Redis (servers started like the tests do)",
    )
    parser.add_argument(
        "--archive",
        action="store_true",
        help="also run the archive benchmark (bench/archive.py) after the HTTP ones",
    )
    parser.add_argument(
        "--archive-only", action="store_true", help="run only the archive benchmark"
    )
    parser.add_argument(
        "--archive-args", default="", help="arguments for bench/archive.py, in one string"
    )
    parser.add_argument(
        "--hits-only",
        action="store_true",
        help="run only the hits-under-search benchmark (bench/hits_under_search.py: cache-hit"
        " latency of one server alone and while two clients search its archive)",
    )
    parser.add_argument(
        "--hits-args", default="", help="arguments for bench/hits_under_search.py, in one string"
    )
    parser.add_argument(
        "--push-only",
        action="store_true",
        help="run only the push benchmark (bench/push.py: webhook latency with 1,000"
        " searches, 1,000 event streams on one instance)",
    )
    args = parser.parse_args()
    if args.archive_only:
        archive_bench(args.archive_args)
        return
    if args.push_only:
        sys.path.insert(0, str(ROOT / "bench"))
        import push

        push.main([])
        return
    if args.hits_only:
        hits_bench(args.hits_args)
        return
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (Debian: apt-get install -y {tool})")

    work = Path(tempfile.mkdtemp(prefix="newsagg-bench-"))
    env = {
        **os.environ,
        "NEWSAGG_DATABASE": str(work / "bench.sqlite3"),
        "NEWSAGG_CACHE_TTL": "3600",
        # The request path alone: no harvester covering the queries, and budgets open, so
        # that every cold query and each of the distinct ones is refreshed on demand.
        "NEWSAGG_HARVEST": "off",
        **{f"NEWSAGG_{name.upper()}_QUOTA": "1000000/second" for name in PROVIDER_NAMES},
    }
    python = sys.executable
    serve_newsagg = [python, "-m", "edge.cli", "serve", "--demo", "--port", "{port}"]
    key = create_key(env)

    if args.shared:
        shared_env = {**env, **shared_backing()}
        shared_key = create_key(shared_env)
        # Counted in Redis on every request, with a limit no run reaches.
        limited_env = {**shared_env, "NEWSAGG_RATE_LIMIT_PREMIUM": "1000000000"}
        limited_key = create_key(limited_env, "premium")

    newsagg = Server(serve_newsagg, env, work / "newsagg.log")
    status, body = http_get(newsagg.url + PATH, key)
    assert status == 200 and json.loads(body)["count"] == 20, body[:200]
    status, body = http_get(newsagg.url + PATH, key)  # the bytes of a cache hit
    assert json.loads(body)["cache_status"] == "hit"
    (work / "body.json").write_bytes(body)
    newsagg.stop()  # restarted per round below, so both apps get the same conditions

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}; server on CPU 0, wrk -t1 -c32 on CPU 1"
    )
    print(f"\n1. Cache hits, {args.rounds} rounds x {args.duration}s each, alternating")
    results: dict[str, list[dict[str, float]]] = {"newsagg": [], "bare ASGI": []}
    if args.shared:
        results["newsagg PG+Redis"] = []
        results["newsagg PG+Redis, limited key"] = []
    if args.peers:
        results["FastAPI"] = []
    bare_env = {**env, "BARE_BODY": str(work / "body.json"), "BARE_KEY": key}
    for _ in range(args.rounds):
        server = Server(serve_newsagg, env, work / "newsagg.log")
        http_get(server.url + PATH, key)
        results["newsagg"].append(measured(server, key, args.duration))
        server.stop()
        if args.shared:
            server = Server(serve_newsagg, shared_env, work / "shared.log")
            http_get(server.url + PATH, shared_key)
            results["newsagg PG+Redis"].append(measured(server, shared_key, args.duration))
            server.stop()
            server = Server(serve_newsagg, limited_env, work / "shared.log")
            http_get(server.url + PATH, limited_key)
            results["newsagg PG+Redis, limited key"].append(
                measured(server, limited_key, args.duration)
            )
            server.stop()
        server = Server(
            uvicorn(python, "-m", "uvicorn", "bench.bare_asgi:app", ROOT),
            bare_env,
            work / "bare.log",
        )
        results["bare ASGI"].append(measured(server, key, args.duration))
        server.stop()
        if args.peers:
            peer = uvicorn(str(args.peer_venv / "bin" / "uvicorn"), "fastapi_app:app", args.peers)
            server = Server(peer, env, work / "fastapi.log")
            results["FastAPI"].append(measured(server, "testkey123", args.duration))
            server.stop()
    for name, runs in results.items():
        print(
            f"  {name:30} req/s {spread([r['rps'] for r in runs])}   "
            f"CPU/request us {spread([r['cpu_us'] for r in runs])}   "
            f"p50 ms {spread([r['p50'] for r in runs])}   p99 ms {spread([r['p99'] for r in runs])}"
        )
    ratios = [
        n["rps"] / b["rps"] for n, b in zip(results["newsagg"], results["bare ASGI"], strict=True)
    ]
    print(f"  newsagg / bare ASGI throughput ratio: {spread(ratios, 3)}")
    if args.peers:
        for name in ("newsagg", "newsagg PG+Redis", "newsagg PG+Redis, limited key"):
            if name in results:
                ratios = [
                    n["rps"] / f["rps"]
                    for n, f in zip(results[name], results["FastAPI"], strict=True)
                ]
                print(f"  {name} / FastAPI peer throughput ratio: {spread(ratios, 3)}")

    server = Server(serve_newsagg, env, work / "newsagg.log")
    simulator = re.search(r"upstream simulator at (\S+)", (work / "newsagg.log").read_text())[1]
    for provider in ("newsapi", "guardian", "hackernews"):
        request = urllib.request.Request(
            f"{simulator}/_sim/faults/{provider}",
            method="PUT",
            data=json.dumps({"kind": "latency", "delay": args.latency}).encode(),
        )
        urllib.request.urlopen(request).read()
    cold = []
    for i in range(15):
        started = time.perf_counter()
        status, body = http_get(f"{server.url}/articles?category=technology&q=cold{i}", key)
        cold.append((time.perf_counter() - started) * 1000)
        assert status == 200 and json.loads(body)["cache_status"] == "miss"
    print(f"\n2. Cold misses, {args.latency * 1000:.0f} ms added to each of 3 providers, 15 runs")
    print(
        f"  latency ms {spread(cold)}; ratio to one provider's latency "
        f"{statistics.median(cold) / (args.latency * 1000):.2f} (3 in series would be 3.0+)"
    )
    urllib.request.urlopen(urllib.request.Request(f"{simulator}/_sim/faults", method="DELETE"))

    print(f"\n3. Resident memory while serving {args.distinct} distinct queries (32 at a time)")
    pid, step = server.process.pid, max(1, args.distinct // 10)
    print(f"  {0:>7} queries: {rss_mib(pid):7.1f} MiB")
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        for start in range(0, args.distinct, step):
            list(
                pool.map(
                    lambda i: http_get(f"{server.url}/articles?source=hackernews&q=m{i}", key),
                    range(start, min(start + step, args.distinct)),
                )
            )
            print(
                f"  {min(start + step, args.distinct):>7} queries: {rss_mib(pid):7.1f} MiB",
                flush=True,
            )
    server.stop()
    shutil.rmtree(work, ignore_errors=True)
    if args.archive:
        archive_bench(args.archive_args)


def archive_bench(arguments: str) -> None:
    """4. The archive at scale: bench/archive.py, which cleans up its own file and server."""
    import shlex

    sys.path.insert(0, str(ROOT / "bench"))
    import archive

    print(
        "\n4. The archive at scale, as the service leaves it (bench/archive.py;"
        " store.search timed, no HTTP)"
    )
    archive.main(shlex.split(arguments))


def hits_bench(arguments: str) -> None:
    """6. Hits under search: bench/hits_under_search.py, which cleans up after itself."""
    import shlex

    sys.path.insert(0, str(ROOT / "bench"))
    import hits_under_search

    print("\n6. Cache hits while two clients search the archive (bench/hits_under_search.py)")
    hits_under_search.main(shlex.split(arguments))


def shared_backing() -> dict[str, str]:
    """PostgreSQL and Redis, started as the test suite starts them, pinned to CPU 1 (the
    wrk side: CPU 0 is the measured server's alone), removed at exit. Their environment
    for newsagg."""
    sys.path.insert(0, str(ROOT / "tests"))
    import pg_server
    import redis_server

    postgres, redis = pg_server.new_server(), redis_server.new_server()
    for server in (postgres, redis):  # also when a measurement fails half-way
        atexit.register(server.remove)
    for pid in (postgres.pid, redis.pid):  # backends forked later inherit it
        subprocess.run(["taskset", "-a", "-p", "-c", "1", str(pid)], capture_output=True)
    env = {"NEWSAGG_DATABASE_URL": postgres.url(), "NEWSAGG_REDIS_URL": redis.url()}
    return env


if __name__ == "__main__":
    main()

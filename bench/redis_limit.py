"""The Redis limit: LPUSH/RPOP operations per second on the same server, the ceiling for any broker.

    .venv/bin/python -m bench.redis_limit [--requests 100000] [--runs 3]

``redis-benchmark`` (shipped with redis-server) runs LPUSH then RPOP on one key of the run's
namespace (on the broker's database; the key is deleted afterwards), with 50 connections (the
server's limit) and with one connection, unpipelined (what one client thread can do per
round-trip). Without ``redis-benchmark``, a redis-py equivalent runs instead: one connection,
pipelines of 100 commands (labelled as such).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BROKER_DB, BenchError, Context, fmt_rate


def _connection_args(url: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        args = ["-s", parts.path]
    else:
        args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
        if parts.scheme == "rediss":
            args.append("--tls")
    if parts.username:
        args += ["--user", unquote(parts.username)]
    if parts.password:
        args += ["-a", unquote(parts.password)]
    return args


def _redis_benchmark(executable: str, url: str, clients: int, requests: int, command: list[str]) -> float:
    argv = [executable, *_connection_args(url), "--dbnum", str(BROKER_DB), "-n", str(requests), "-c", str(clients),
            "--csv", *command]  # fmt: skip
    try:
        output = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        raise BenchError(f"redis-benchmark failed: {exc}") from exc
    rows = [row for row in csv.reader(output.splitlines()) if len(row) > 1 and row[0] != "test"]
    if not rows:
        raise BenchError(f"redis-benchmark printed no figure:\n{output[-500:]}")
    return float(rows[-1][1])


def _pipelined(ctx: Context, key: str, requests: int) -> dict[str, float]:
    client = ctx.redis()
    rates = {}
    try:
        for name in ("LPUSH", "RPOP"):
            started = time.perf_counter()
            for start in range(0, requests, 100):
                pipeline = client.pipeline(transaction=False)
                for _ in range(min(100, requests - start)):
                    pipeline.lpush(key, "x") if name == "LPUSH" else pipeline.rpop(key)
                pipeline.execute()
            rates[f"{name}, redis-py, 1 connection, pipelines of 100"] = requests / (time.perf_counter() - started)
    finally:
        client.delete(key)
        client.close()
    return rates


def measure(ctx: Context, requests: int, runs: int) -> dict[str, list[float]]:
    """Operations per second for LPUSH and RPOP, per setting, one figure per run."""
    key = f"{ctx.namespace}:redis-limit"
    executable = shutil.which("redis-benchmark")
    results: dict[str, list[float]] = {}
    client = ctx.redis()
    try:
        for _ in range(runs):
            if executable is None:
                for name, rate in _pipelined(ctx, key, requests).items():
                    results.setdefault(name, []).append(rate)
                continue
            for clients in (50, 1):
                n = requests if clients > 1 else max(1000, requests // 5)
                for name, command in (("LPUSH", ["lpush", key, "x"]), ("RPOP", ["rpop", key])):
                    rate = _redis_benchmark(executable, ctx.broker_url, clients, n, command)
                    label = f"{name}, redis-benchmark, {clients} connection{'s' if clients > 1 else ''}"
                    results.setdefault(label, []).append(rate)
                client.delete(key)
    finally:
        client.delete(key)
        client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ctx = Context(quick=False, runs=args.runs, database_url="")
    for label, rates in measure(ctx, args.requests, args.runs).items():
        print(f"{label}: {fmt_rate(rates)} ops/s")


if __name__ == "__main__":
    main()

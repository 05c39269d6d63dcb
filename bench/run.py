"""The benchmark harness: throughput, latency and scale against bare dramatiq, Celery and Redis, in one run.

    .venv/bin/python -m bench [--quick] [--runs N] [--database URL] [--only SECTION[,SECTION]] [--output PATH]

Sections, in order: redis (the Redis limit), enqueue, drain (with pick-up latency of bare dramatiq,
the full stack and Celery when ``latency`` runs too), memory, latency (document save → processing
start), knowbase, admin. Prints one Markdown report and writes it to docs/benchmarks.md (a full run
of every section) or var/bench/benchmarks-quick.md (``--quick`` or ``--only``); ``--output`` decides.

Exit status: 0 when every measurement ran (targets missed are reported, not failed), 1 when one
could not run (the report says which and why), 2 for bad arguments. Every worker subprocess is
stopped and every Redis key of the run deleted at the end, on errors and on SIGTERM/Ctrl-C too.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_DATABASE,
    PYTHON,
    ROOT,
    VAR,
    BenchError,
    Context,
    delete_namespace,
    fmt_rate,
    mask,
    median_spread,
    run_json,
    settle_database,
    setup,
    stop_all,
)

SECTIONS = ("redis", "enqueue", "drain", "memory", "latency", "knowbase", "admin")


@dataclass(frozen=True)
class Plan:
    """How much each section measures (full run, or ``--quick`` for CI)."""

    runs: int = 3
    messages: int = 10_000
    enqueue_messages: int = 3_000
    redis_requests: int = 100_000
    drain_systems: tuple[str, ...] = ("bare", "full", "dd", "dd0", "celery", "celery_prefork")
    pickup_samples: int = 200
    document_samples: int = 200
    gap_high: float = 1.5
    memory_tasks: int = 50_000
    admin_rows: int = 1_000_000
    admin_repeat: int = 5
    knowbase_docs: int = 200
    knowbase_worker_docs: int = 100
    knowbase_size_kb: float = 10.0


FULL = Plan()
QUICK = Plan(
    runs=1,
    messages=2_000,
    enqueue_messages=1_000,
    redis_requests=20_000,
    drain_systems=("bare", "full", "dd", "celery"),
    pickup_samples=15,
    document_samples=30,
    gap_high=0.3,
    memory_tasks=5_000,
    admin_rows=100_000,
    admin_repeat=3,
    knowbase_docs=20,
    knowbase_worker_docs=20,
)


@dataclass
class Results:
    redis: dict[str, list[float]] = field(default_factory=dict)
    enqueue: dict[str, list[float]] = field(default_factory=dict)
    drain: dict[str, dict] = field(default_factory=dict)
    pickup: dict[str, list[float]] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    admin: dict[str, Any] = field(default_factory=dict)
    knowbase: dict[str, Any] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts, one run: under 2 minutes (CI)")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; quick 1)")
    parser.add_argument("--database", default=DEFAULT_DATABASE,
                        help="PostgreSQL URL of a dedicated database, created if missing "
                             "(default $BENCH_DATABASE_URL or %(default)s)")  # fmt: skip
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--output", help="where to write the report (default: see above)")
    args = parser.parse_args(argv)
    if args.only:
        unknown = [name for name in args.only.split(",") if name not in SECTIONS]
        if unknown:
            parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    if not args.database.startswith(("postgres://", "postgresql://")):
        parser.error("--database must be a PostgreSQL URL (the figures are about PostgreSQL)")
    return args


# --- set-up -------------------------------------------------------------------------------------


def machine_facts(ctx: Context) -> dict[str, str]:
    """Cores, CPU, versions, date: what a figure means depends on them."""
    from importlib.metadata import PackageNotFoundError, version

    from django.db import connection

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0].split()[0]
    packages = []
    for name in ("django", "dramatiq", "django-dramatiq", "celery", "kombu", "redis", "psycopg"):
        try:
            packages.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            packages.append(f"{name} (not installed)")
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": cpu or platform.processor(),
        "redis": ctx.redis().info("server").get("redis_version", "?"),
        "postgresql": postgres,
        "python": platform.python_version(),
        "packages": ", ".join(packages),
        "commit": commit or "?",
        "load_start": " / ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


# --- sections -----------------------------------------------------------------------------------


def section_redis(ctx: Context, plan: Plan, results: Results, sections: set[str]) -> None:
    from bench import redis_limit

    results.redis = redis_limit.measure(ctx, plan.redis_requests, plan.runs)


def section_enqueue(ctx: Context, plan: Plan, results: Results, sections: set[str]) -> None:
    for system in ("bare", "full", "django_dramatiq", "celery"):
        command = [PYTHON, "-m", "bench.enqueue", system, "--count", str(plan.enqueue_messages),
                   "--runs", str(plan.runs)]  # fmt: skip
        timeout = 120 + plan.runs * plan.enqueue_messages / 50
        try:
            answer = run_json(command, ctx.env(CONN_MAX_AGE="60"), timeout, f"enqueue {system}")
        except Exception as exc:
            results.errors.append((f"enqueue {system}", _describe(exc)))
            print(f"bench: enqueue {system} failed: {_describe(exc)}", file=sys.stderr)
            continue
        results.enqueue[system] = answer["rates"]
        print(f"  enqueue {system}: {fmt_rate(answer['rates'])} msg/s", file=sys.stderr)


def _describe(exc: BaseException) -> str:
    """A BenchError says what it needs to; anything else gets its traceback."""
    return str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"


def _pickup_sender(ctx: Context, key: str):
    """How the harness sends a ``stamp`` task to each system (None: no pick-up figure for it)."""
    if key == "bare":
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=ctx.broker_url, namespace=f"{ctx.namespace}-bare")
        actor = dramatiq.Actor(
            lambda key: None, broker=broker, actor_name="stamp", queue_name="bench", priority=0, options={}
        )
        return "bare dramatiq: actor.send() → task start", actor.send
    if key == "full":
        from apps.tasks.enqueue import enqueue

        return "full stack: enqueue() → task start", lambda stamp_key: enqueue("stamp", args=(stamp_key,))
    if key == "celery":
        from bench.celery_app import stamp

        return "Celery threads: delay() → task start", stamp.delay
    return None


def section_drain(ctx: Context, plan: Plan, results: Results, sections: set[str], pickup_only: bool = False) -> None:
    from bench import drain, latency

    known = drain.systems(ctx)
    chosen = [known[key] for key in (("bare", "full", "celery") if pickup_only else plan.drain_systems)]

    def after(system, worker):
        sender = _pickup_sender(ctx, system.key) if "latency" in sections else None
        if sender is None:
            return None
        label, send = sender
        settle_database()  # the drain's records are still being vacuumed
        results.pickup[label] = latency.stamp_pickup(ctx, send, plan.pickup_samples, label, worker, plan.gap_high)
        return None

    outcomes = drain.run_systems(ctx, chosen, plan.messages, 0 if pickup_only else plan.runs, after)
    for system in chosen:
        outcome = outcomes[system.key]
        if isinstance(outcome, Exception):
            results.errors.append((f"{'pick-up' if pickup_only else 'drain'} {system.key}", _describe(outcome)))
            print(f"bench: {system.key} failed: {_describe(outcome)}", file=sys.stderr)
        elif not pickup_only:
            results.drain[system.key] = {"label": system.label, **outcome}


def section_memory(ctx: Context, plan: Plan, results: Results, sections: set[str]) -> None:
    from bench import memory

    results.memory = memory.measure(ctx, plan.memory_tasks)


_knowledge_worker = None


def _knowledge(ctx: Context):
    global _knowledge_worker
    from bench import latency

    if _knowledge_worker is None or _knowledge_worker.terminated or not _knowledge_worker.alive():
        _knowledge_worker = latency.start_knowledge_worker(ctx)
    return _knowledge_worker


def section_latency(ctx: Context, plan: Plan, results: Results, sections: set[str]) -> None:
    from bench import latency

    try:
        label = "document save → processing start (full stack)"
        worker = _knowledge(ctx)
        settle_database()  # after the memory section's 50,000 records, autovacuum is at work
        results.pickup[label] = latency.document_pickup(ctx, worker, plan.document_samples, plan.gap_high)
        results.pickup = {label: results.pickup.pop(label), **results.pickup}  # first in the table
    finally:
        if "knowbase" not in sections and _knowledge_worker is not None:
            _knowledge_worker.stop(wait=False)
    if "drain" not in sections:  # the context figures, with workers of their own
        section_drain(ctx, plan, results, sections, pickup_only=True)


def section_knowbase(ctx: Context, plan: Plan, results: Results, sections: set[str]) -> None:
    import random

    from django.conf import settings

    from apps.knowbase.config import DEFAULT_EMBEDDER
    from bench import knowbase_bench

    size = int(plan.knowbase_size_kb * 1000)
    rng = random.Random(20240601)
    original = settings.KNOWBASE_EMBEDDER
    pipeline: dict[str, Any] = {"rates": []}
    worker_rates: list[float] = []
    results.knowbase = {"pipeline": pipeline, "worker": {"docs": plan.knowbase_worker_docs, "rates": worker_rates}}
    try:
        for _ in range(plan.runs):
            texts = [knowbase_bench.make_document(rng, size) for _ in range(plan.knowbase_docs)]
            outcome = knowbase_bench.run_pipeline("hashing-384 (default)", DEFAULT_EMBEDDER, texts)
            pipeline.update(docs=outcome["docs"], chunks=outcome["chunks"])
            pipeline["rates"].append(outcome["docs_per_minute"])
        print(f"  knowbase pipeline: {fmt_rate(pipeline['rates'])} docs/min", file=sys.stderr)
        worker = _knowledge(ctx)
        knowbase_bench.end_to_end(["Warm-up document."], timeout=120, check=worker.check)  # boots the worker
        for _ in range(plan.runs):
            texts = [knowbase_bench.make_document(rng, size) for _ in range(plan.knowbase_worker_docs)]
            docs, seconds = knowbase_bench.end_to_end(texts, timeout=120 + 5 * len(texts), check=worker.check)
            worker_rates.append(docs / seconds * 60)
        print(f"  knowbase end to end: {fmt_rate(worker_rates)} docs/min", file=sys.stderr)
    finally:
        settings.KNOWBASE_EMBEDDER = original
        if _knowledge_worker is not None:
            _knowledge_worker.stop(wait=False)


def section_admin(ctx: Context, plan: Plan, results: Results, sections: set[str]) -> None:
    from bench.admin_bench import admin_database

    database = admin_database(ctx.database_url, plan.admin_rows)
    command = [PYTHON, "-m", "bench.admin_bench", "--rows", str(plan.admin_rows), "--repeat", str(plan.admin_repeat),
               "--database", database, "--json"]  # fmt: skip
    timeout = 300 + plan.admin_rows / 2_000  # generating 1 M rows the first time takes about a minute
    results.admin = {**run_json(command, ctx.env(), timeout, "admin benchmark"), "database": mask(database)}


RUNNERS = {
    "redis": section_redis,
    "enqueue": section_enqueue,
    "drain": section_drain,
    "memory": section_memory,
    "latency": section_latency,
    "knowbase": section_knowbase,
    "admin": section_admin,
}


def clean_up(ctx: Context, django_ready: bool) -> None:
    """Stop every subprocess, empty the records and documents the run made, delete its Redis keys."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # bounded (each stop is); a second SIGTERM must not cut it short
    stop_all()
    if django_ready:
        try:
            from django.db import connection

            from apps.knowbase.models import Document, DocumentChunk
            from apps.tasks import records
            from apps.tasks.models import JobRecord

            records.stop()  # before the keys go: a last flush publishes events
            tables = [JobRecord._meta.db_table, "django_dramatiq_task", DocumentChunk._meta.db_table,
                      Document._meta.db_table]  # fmt: skip
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {', '.join(tables)}")
            connection.close()
        except Exception as exc:
            print(f"bench: could not empty the benchmark tables: {exc}", file=sys.stderr)
    try:
        delete_namespace(ctx)
    except Exception as exc:
        print(f"bench: could not delete Redis keys {ctx.namespace}*: {exc}", file=sys.stderr)


# --- the report ---------------------------------------------------------------------------------


def _median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def _status(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "**not met**")


def targets(results: Results, plan: Plan) -> list[tuple[str, str, str]]:
    """(target, where the figure stands, status) for each target of the issue."""
    rows = []
    drain = {key: _median(value["rates"]) for key, value in results.drain.items()}
    full, bare, celery = drain.get("full"), drain.get("bare"), drain.get("celery")
    ratio = full / bare if full and bare else None
    rows.append(("full stack drain ≥ 85 % of bare dramatiq", f"{ratio:.0%}" if ratio else "—",
                 _status(None if ratio is None else ratio >= 0.85)))  # fmt: skip
    ratio = full / celery if full and celery else None
    rows.append(("full stack drain ≥ 2 x Celery (threads x 8)", f"{ratio:.2f} x" if ratio else "—",
                 _status(None if ratio is None else ratio >= 2)))  # fmt: skip
    enqueue = _median(results.enqueue.get("full"))
    rows.append(("enqueue with record ≥ 1,200 msg/s", f"{enqueue:,.0f} msg/s" if enqueue else "—",
                 _status(None if enqueue is None else enqueue >= 1200)))  # fmt: skip
    samples = next((value for key, value in results.pickup.items() if key.startswith("document save")), None)
    if samples:
        from bench.common import percentile

        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        rows.append(("document save → processing start p50 ≤ 4 ms", f"{p50:.1f} ms", _status(p50 <= 4)))
        rows.append(("document save → processing start p99 ≤ 10 ms", f"{p99:.1f} ms ({len(samples)} samples)",
                     _status(p99 <= 10)))  # fmt: skip
    else:
        rows.append(("document save → processing start p50 ≤ 4 ms, p99 ≤ 10 ms", "—", _status(None)))
    pages = results.admin.get("pages", {})
    if "admin list" in pages:
        value, rows_there = _median(pages["admin list"]), results.admin["rows"]
        note = "" if rows_there >= 1_000_000 else f" at {rows_there:,} rows, not 1 M"
        rows.append(("admin list ≤ 300 ms at 1 M rows", f"{value:.0f} ms{note}",
                     _status(value <= 300) + (" (at fewer rows)" if note else "")))  # fmt: skip
    else:
        rows.append(("admin list ≤ 300 ms at 1 M rows", "—", _status(None)))
    if results.memory:
        memory = results.memory
        growth = memory["end_kb"] / memory["start_kb"] - 1
        warm = memory["end_kb"] / memory["warm_kb"] - 1
        fewer = memory["tasks"] < 50_000
        note = f" over {memory['tasks']:,} tasks, not 50,000" if fewer else ""
        note += f"; {warm:+.1%} after the first {memory['tasks'] // 10:,}"
        rows.append(("worker RSS growth ≤ 10 % over 50,000 tasks", f"{growth:+.1%}{note}",
                     _status(growth <= 0.10) + (" (fewer tasks)" if fewer else "")))  # fmt: skip
    else:
        rows.append(("worker RSS growth ≤ 10 % over 50,000 tasks", "—", _status(None)))
    return rows


def render(ctx: Context, plan: Plan, results: Results, argv: list[str], total_seconds: float) -> str:
    facts = results.facts
    runs = "1 run" if plan.runs == 1 else f"median of {plan.runs} runs (min-max)"
    mode = "quick" if ctx.quick else "full"
    out = ["# Benchmarks", ""]
    command = " ".join(["python -m bench", *argv])
    out.append(f"Generated by `{command}` ({mode} mode, {runs}, {total_seconds:.0f} s) on {facts.get('date', '?')}.")
    if results.seconds:
        out += ["", "Sections took " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results.seconds.items())
                + ". The load average below says how busy the machine was with other work."]  # fmt: skip
    out += ["", "## Machine", "", "| | |", "|---|---|"]
    for key, name in (("cores", "CPU cores"), ("cpu", "CPU"), ("redis", "Redis"), ("postgresql", "PostgreSQL"),
                      ("python", "Python"), ("packages", "packages"), ("commit", "commit"),
                      ("load_start", "load average at start (1/5/15 min)"),
                      ("load_end", "load average at end")):  # fmt: skip
        out.append(f"| {name} | {facts.get(key, '?')} |")
    out.append(f"| database | {mask(ctx.database_url)} |")

    out += ["", "## Targets", "", "| target | figure | status |", "|---|---|---|"]
    out += [f"| {target} | {figure} | {status} |" for target, figure, status in targets(results, plan)]

    if results.redis:
        out += ["", "## Redis limit", "", f"ops/s, {runs}; the ceiling under every broker below.", "",
                "| operation | ops/s |", "|---|---|"]  # fmt: skip
        out += [f"| {label} | {fmt_rate(values)} |" for label, values in results.redis.items()]

    if results.enqueue:
        labels = {"bare": "bare dramatiq: actor.send()", "full": "full stack: enqueue() (record written first)",
                  "django_dramatiq": "django-dramatiq: actor.send() (AdminMiddleware Task row)",
                  "celery": "Celery: task.delay()"}  # fmt: skip
        out += ["", "## Enqueue", "", f"msg/s from one thread, {plan.enqueue_messages:,} messages per run, {runs}.",
                "", "| sender | msg/s |", "|---|---|"]  # fmt: skip
        out += [f"| {labels[key]} | {fmt_rate(values)} |" for key, values in results.enqueue.items()]

    if results.drain:
        out += ["", "## Drain", "", f"No-op messages/s (one Redis INCR each), {plan.messages:,} messages per run "
                "built aside and renamed onto the queue at once (the worker drains alone), one worker process started "
                f"once per system; rate between 10 % and 90 % done; {runs}.", "",
                "| system | msg/s | worker ready in |", "|---|---|---|"]  # fmt: skip
        for value in results.drain.values():
            out.append(f"| {value['label']} | {fmt_rate(value['rates'])} | {value['startup_s']:.1f} s |")
        medians = {key: _median(value["rates"]) for key, value in results.drain.items()}
        if "full" in medians:
            out += ["", "| ratio | value |", "|---|---|"]
            for key, name in (("bare", "full stack / bare dramatiq"), ("dd", "full stack / django-dramatiq (60)"),
                              ("dd0", "full stack / django-dramatiq (CONN_MAX_AGE=0)"),
                              ("celery", "full stack / Celery threads x 8"),
                              ("celery_prefork", "full stack / Celery prefork x 2")):  # fmt: skip
                if medians.get(key):
                    out.append(f"| {name} | {medians['full'] / medians[key]:.2f} |")

    if results.pickup:
        from bench.latency import summary

        out += ["", "## Pick-up latency (idle worker)", "",
                "ms from the hand-over to the task's start, one idle worker (1 x 8). Document save: from just before "
                "`Document.save()` (row and send included; the row is the outbox, so the job record follows "
                "through the recorder) to the timestamp of the job's lifecycle "
                "`started` event, taken by the worker in `LifecycleMiddleware.before_process_message`. The others: "
                "from just before the send to the `time.time()` the task body pushes to a list. Random idle gaps "
                f"between jobs (log-uniform, 10 ms to {plan.gap_high:g} s); nearest-rank percentiles over all "
                "samples after 3 warm-up ones. Before each series PostgreSQL is settled (VACUUM ANALYZE of the "
                "tables earlier sections filled, CHECKPOINT, no autovacuum worker running).", "",
                "| path | samples | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|"]  # fmt: skip
        for label, samples in results.pickup.items():
            if samples:
                s = summary(samples)
                out.append(
                    f"| {label} | {s['n']} | {s['p50']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | {s['max']:.1f} |"
                )

    if results.memory:
        m = results.memory
        out += ["", "## Worker memory (full stack, 1 process x 8 threads)", "",
                "VmRSS of the worker process (the dramatiq main process's child), one run.", "",
                "| after | RSS |", "|---|---|",
                f"| start-up and the first message | {m['start_kb'] / 1024:.1f} MiB |",
                f"| {m['tasks'] // 10:,} tasks | {m['warm_kb'] / 1024:.1f} MiB |",
                f"| {m['tasks']:,} tasks | {m['end_kb'] / 1024:.1f} MiB ({m['end_kb'] / m['start_kb'] - 1:+.1%} from "
                f"start-up, {m['end_kb'] / m['warm_kb'] - 1:+.1%} from {m['tasks'] // 10:,} tasks) |",
                f"| peak (VmHWM) | {m['peak_kb'] / 1024:.1f} MiB |", "",
                f"({m['rate']:,.0f} msg/s over the {m['tasks']:,} tasks.)"]  # fmt: skip

    if results.knowbase:
        out += ["", f"## Knowbase ({plan.knowbase_size_kb:g} KB documents, default hashing embedder)", "",
                f"Documents per minute, {runs}.", "", "| path | docs/min |", "|---|---|"]  # fmt: skip
        p, w = results.knowbase["pipeline"], results.knowbase["worker"]
        if p["rates"]:
            out.append(f"| process_document in one thread, {p['docs']} docs ({p['chunks']} chunks) per run, "
                       f"PostgreSQL | {fmt_rate(p['rates'])} |")  # fmt: skip
        if w["rates"]:
            out.append(f"| save → completed through Redis and one worker (1 x 8), {w['docs']} docs per run | "
                       f"{fmt_rate(w['rates'])} |")  # fmt: skip

    if results.admin:
        a = results.admin
        out += ["", f"## Admin and health with {a['rows']:,} job records (PostgreSQL)", "",
                f"ms per request through Django's test client as a superuser; median of {plan.admin_repeat} after "
                "one warm-up (min-max).", "", "| page | ms |", "|---|---|"]  # fmt: skip
        for name, times in a["pages"].items():
            middle, low, high = median_spread(times)
            out.append(f"| {name} | {middle:.0f} ({low:.0f}-{high:.0f}) |")

    if results.errors:
        out += ["", "## Measurements that did not run", ""]
        for section, message in results.errors:
            first = message.strip().splitlines()[0] if message.strip() else "?"
            out.append(f"- **{section}**: {first}")

    out += ["", "## Reference points (from the issue; 2 cores, Redis 7.0.15, PostgreSQL 15, 10,000 messages)", "",
            "| system | drain msg/s | enqueue msg/s | pick-up p50 / p99 |", "|---|---|---|---|",
            "| bare dramatiq, 1 process x 8 threads | ≈ 1,300 | ≈ 2,800 | 17 ms / 570 ms |",
            "| django-dramatiq AdminMiddleware (PostgreSQL) | ≈ 150; ≈ 260 with CONN_MAX_AGE=60 | ≈ 310 | — |",
            "| Celery 5.7, threads x 8 / prefork x 2 | ≈ 500 / ≈ 610 | ≈ 1,150 | 3 ms / 4 ms |"]  # fmt: skip
    out += ["", "## How to run", "", "```sh",
            ".venv/bin/python -m bench                  # everything, 3 runs each: 15-25 minutes; writes this file",
            ".venv/bin/python -m bench --quick          # CI: small counts, 1 run, about 1 minute",
            ".venv/bin/python -m bench --only drain,latency --runs 5",
            ".venv/bin/python -m bench --database postgresql://postgres:secret@db:5432/bench",
            "```", "",
            "`--quick` and `--only` write var/bench/benchmarks-quick.md instead of this file (`--output` decides). "
            "The exit status is 0 when every measurement ran, whether or not targets are met, and 1 when one could "
            "not run (listed under \"Measurements that did not run\"). "
            "Needs Redis (`REDIS_URL`, default redis://127.0.0.1:6379/0; `redis-benchmark` for the Redis limit) and "
            "PostgreSQL (a dedicated database, created if missing; `$BENCH_DATABASE_URL` sets the default). "
            "Workers are subprocesses in their own process groups (logs in var/bench/logs/); every key the run makes "
            "starts with its namespace (`bench-<random>`) and is deleted at the end. The 1 M admin rows are "
            "generated once in `<database>_admin` and reused. Each module also runs alone: `python -m bench.drain`, "
            "`bench.enqueue`, `bench.redis_limit`, `bench/admin_bench.py`, `bench/knowbase_bench.py`, "
            "`bench/lifecycle_bench.py`. How each figure is taken is in the docstring of its module.", ""]  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    from bench.common import install_signal_handlers

    install_signal_handlers()
    plan = QUICK if args.quick else FULL
    if args.runs:
        plan = replace(plan, runs=args.runs)
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    ctx = Context(quick=args.quick, runs=plan.runs, database_url=args.database)
    results = Results()
    started = time.monotonic()
    django_ready = False
    print(f"bench: namespace {ctx.namespace}, database {mask(ctx.database_url)}, sections "
          f"{', '.join(name for name in SECTIONS if name in sections)}", file=sys.stderr)  # fmt: skip
    try:
        try:
            setup(ctx)
            django_ready = True
            results.facts = machine_facts(ctx)
        except Exception as exc:
            results.errors.append(("set-up", f"{type(exc).__name__}: {exc}"))
            print(f"bench: set-up failed: {exc}", file=sys.stderr)
        if django_ready:
            for name in SECTIONS:
                if name not in sections:
                    continue
                section_started = time.monotonic()
                print(f"bench: {name} ...", file=sys.stderr)
                try:
                    RUNNERS[name](ctx, plan, results, sections)
                except Exception as exc:
                    results.errors.append((name, _describe(exc)))
                    print(f"bench: {name} failed: {_describe(exc)}", file=sys.stderr)
                results.seconds[name] = time.monotonic() - section_started
                print(f"bench: {name} done in {results.seconds[name]:.0f} s", file=sys.stderr)
    finally:
        clean_up(ctx, django_ready)
    results.facts["load_end"] = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    total = time.monotonic() - started
    report = render(ctx, plan, results, argv, total)
    if args.output:
        output = Path(args.output)
    elif args.quick or args.only:
        output = VAR / "benchmarks-quick.md"
    else:
        output = ROOT / "docs" / "benchmarks.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    print(report)
    print(f"bench: report written to {output} ({total:.0f} s)", file=sys.stderr)
    for section, message in results.errors:
        print(f"bench: FAILED {section}: {message}", file=sys.stderr)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())

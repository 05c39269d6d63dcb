"""Drain and enqueue rates with and without the lifecycle layer: bare dramatiq vs the full stack.

    .venv/bin/python bench/lifecycle_bench.py [--messages 10000] [--enqueue-messages 3000] [--runs 3]
                                              [--threads 8] [--database URL]

The two-system subset of ``python -m bench`` (see bench/drain.py and bench/enqueue.py for the
method): drain of N no-op messages by one worker process, bare dramatiq CLI vs ``manage.py
rundramatiq``; enqueue from one thread, ``actor.send()`` vs ``apps.tasks.enqueue.enqueue``. Each
figure is the median of the runs, with min-max. The default database is the dedicated PostgreSQL
database of the harness; ``--database ''`` uses a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DEFAULT_DATABASE, PYTHON, Context, delete_namespace, fmt_rate, run_json, setup, stop_all


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--enqueue-messages", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="DATABASE_URL ('' for a fresh SQLite file)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from bench import drain

    ctx = Context(quick=False, runs=args.runs, database_url=args.database)
    setup(ctx)
    chosen = drain.systems(ctx, args.threads)
    results: dict[str, list[float]] = {}
    try:
        outcomes = drain.run_systems(ctx, [chosen["bare"], chosen["full"]], args.messages, args.runs)
        for key in ("bare", "full"):
            if isinstance(outcomes[key], Exception):
                raise outcomes[key]
            results[f"drain {key}"] = outcomes[key]["rates"]
            command = [PYTHON, "-m", "bench.enqueue", key, "--count", str(args.enqueue_messages), "--runs",
                       str(args.runs)]  # fmt: skip
            results[f"enqueue {key}"] = run_json(command, ctx.env(), 600, f"enqueue {key}")["rates"]
    finally:
        stop_all()
        drain.empty_tables(chosen["full"].tables)
        delete_namespace(ctx)

    def ratio(name: str) -> str:
        return f"{statistics.median(results[f'{name} full']) / statistics.median(results[f'{name} bare']):.0%}"

    vendor = "PostgreSQL" if "postgres" in ctx.database_url else "SQLite"
    print(f"\nLifecycle benchmark: {args.messages:,} no-op messages, 1 process x {args.threads} threads, {vendor}")
    print(f"median of {args.runs} runs (min-max)\n")
    print("| measure | bare dramatiq | full stack (records) | ratio |")
    print("|---|---|---|---|")
    print(f"| drain | {fmt_rate(results['drain bare'])} | {fmt_rate(results['drain full'])} | {ratio('drain')} |")
    print(f"| enqueue, one thread | {fmt_rate(results['enqueue bare'])} | {fmt_rate(results['enqueue full'])} | "
          f"{ratio('enqueue')} |")  # fmt: skip
    print("\nTargets: drain >= 85 % of bare; enqueue with record >= 1,200 msg/s.")


if __name__ == "__main__":
    main()

"""The benchmark harness imports, parses its arguments, renders a report and runs one tiny section.

The real runs are ``python -m bench`` (CI runs ``--quick``); this only keeps the harness from rotting.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from bench import redis_limit
from bench.common import Context, percentile
from bench.run import FULL, QUICK, Results, parse_args, render, targets


def test_arguments():
    args = parse_args(["--quick", "--only", "redis,drain", "--runs", "2"])
    assert args.quick and args.only == "redis,drain" and args.runs == 2
    with pytest.raises(SystemExit):
        parse_args(["--only", "nonsense"])
    with pytest.raises(SystemExit):
        parse_args(["--database", "sqlite:///x.sqlite3"])
    assert QUICK.messages < FULL.messages and QUICK.runs == 1


def test_percentile_is_nearest_rank():
    samples = [float(value) for value in range(1, 201)]
    assert percentile(samples, 0.5) == 100
    assert percentile(samples, 0.99) == 198
    assert percentile([3.0], 0.99) == 3


def test_report_from_figures():
    results = Results(
        enqueue={"full": [1300.0, 1250.0, 1400.0]},
        drain={
            "bare": {"label": "bare", "rates": [1300.0], "startup_s": 0.3},
            "full": {"label": "full", "rates": [1200.0], "startup_s": 1.8},
            "celery": {"label": "celery", "rates": [500.0], "startup_s": 2.0},
        },
        pickup={"document save → processing start (full stack)": [2.0] * 98 + [50.0, 60.0]},
        memory={"tasks": 50_000, "start_kb": 100_000, "warm_kb": 104_000, "end_kb": 105_000, "peak_kb": 1, "rate": 1.0},
        facts={"cores": "2"},
    )
    status = {target: (figure, verdict) for target, figure, verdict in targets(results, FULL)}
    assert status["full stack drain ≥ 85 % of bare dramatiq"] == ("92%", "met")
    assert status["full stack drain ≥ 2 x Celery (threads x 8)"][1] == "met"
    assert status["enqueue with record ≥ 1,200 msg/s"] == ("1,300 msg/s", "met")
    assert status["document save → processing start p99 ≤ 10 ms"][1] == "**not met**"
    assert status["admin list ≤ 300 ms at 1 M rows"][1] == "not measured"
    assert status["worker RSS growth ≤ 10 % over 50,000 tasks"] == ("+5.0%; +1.0% after the first 5,000", "met")
    report = render(Context(quick=False, runs=3, database_url="postgresql://u:hunter2@h/bench"), FULL, results, [], 1.0)
    assert "| full stack / bare dramatiq | 0.92 |" in report
    assert "hunter2" not in report


def test_redis_limit_section_runs(broker_redis):
    ctx = Context(quick=True, runs=1, database_url="", redis_url=settings.TASK_CONFIG.dramatiq.redis_url,
                  namespace=f"{settings.TASK_CONFIG.dramatiq.redis_key_prefix}-bench")  # fmt: skip
    figures = redis_limit.measure(ctx, requests=2_000, runs=1)
    assert figures and all(values[0] > 0 for values in figures.values())
    assert not list(broker_redis.scan_iter(match=f"{ctx.namespace}*"))

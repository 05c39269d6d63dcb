"""Worker memory: RSS of the full stack's worker process at start and after N no-op tasks.

The worker is ``rundramatiq -p 1 -t 8 -Q bench``; its worker process is the child of the dramatiq
main process (``/proc/<pid>/status`` VmRSS). "Start" is once it has run its first message (imports,
connections and the recorder thread exist); the last figure is taken after the N-th task and one
second for the last record batch; also after 10 % (warm) and the peak (VmHWM).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

from bench.common import BenchError, Context, rss_kb, wait_for
from bench.drain import idle, stage, start_worker, systems


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(ctx: Context, tasks: int) -> dict:
    """RSS in KiB of the full stack's worker process at start, after 10 % and after ``tasks`` tasks."""
    system = systems(ctx)["full"]
    worker, _ = start_worker(ctx, system, name="memory worker")
    client = ctx.redis()
    counter = f"{ctx.namespace}:memory:{uuid.uuid4().hex}"
    try:
        children = worker.children()
        if len(children) != 1:
            raise BenchError(f"expected one worker process under {worker.pid}, found {children}")
        pid = children[0]
        start = rss_kb(pid)
        stage(ctx, system, "noop", (counter,), tasks)
        started = time.monotonic()
        wait_for(lambda: int(client.get(counter) or 0) >= tasks // 10, 60 + tasks / 20, "10 % of the tasks",
                 0.01, worker)  # fmt: skip
        warm = rss_kb(pid)
        wait_for(lambda: int(client.get(counter) or 0) >= tasks, 60 + tasks / 20, "every task", 0.05, worker)
        elapsed = time.monotonic() - started
        wait_for(lambda: idle(ctx, system), 30, "the last acknowledgements", 0.05, worker)
        time.sleep(1.0)
        end = rss_kb(pid)
        print(f"  memory: {start / 1024:.1f} -> {end / 1024:.1f} MiB over {tasks:,} tasks", file=sys.stderr)
        return {"tasks": tasks, "start_kb": start, "warm_kb": warm, "end_kb": end, "peak_kb": _hwm_kb(pid),
                "rate": tasks / elapsed}  # fmt: skip
    finally:
        client.delete(counter)
        client.close()
        worker.stop(wait=False)

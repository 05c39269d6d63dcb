#!/usr/bin/env bash
# The main job on a fresh machine: set-up, SQLite migrations, a Redis that answers, one worker and
# the web app, then a task sent through the worker end to end. Ctrl-C stops everything.
# RUN_ONCE=1 stops after the demonstration (used by the tests and CI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export DEBUG="${DEBUG:-1}"
REDIS_URL=$(.venv/bin/python scripts/ensure_redis.py)
export REDIS_URL
PORT="${PORT:-8000}"
py=.venv/bin/python

echo "run: migrating the database" >&2
$py manage.py tasks_adopt_label >/dev/null  # databases made before the app label changed
$py manage.py migrate --noinput >/dev/null

pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "run: starting a worker (logs: var/worker.log)" >&2
$py manage.py rundramatiq --processes 1 --threads 4 >var/worker.log 2>&1 &
pids+=($!)
echo "run: starting the web app on http://127.0.0.1:${PORT}/ (logs: var/web.log)" >&2
$py manage.py runserver "127.0.0.1:${PORT}" --noreload >var/web.log 2>&1 &
pids+=($!)

$py - "$PORT" <<'PY'
import sys, time, urllib.request, urllib.error
url = f"http://127.0.0.1:{sys.argv[1]}/admin/login/"
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(url, timeout=1)
        break
    except urllib.error.HTTPError:
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"run: the web app did not answer at {url}; see var/web.log")
        time.sleep(0.1)
print(f"run: web app answers at {url}", file=sys.stderr)
PY

$py manage.py task_ping --timeout 60
echo "run: saving a sample document; the worker chunks and embeds it on the knowledge queue" >&2
$py manage.py knowbase_demo --timeout 60

if [ "${RUN_ONCE:-0}" = "1" ]; then
  exit 0
fi
echo "run: worker and web app are running; Ctrl-C stops them." >&2
wait

#!/usr/bin/env bash
# The whole test suite: set-up, a Redis that answers, then pytest. Extra arguments go to pytest.
# DATABASE_URL picks the database (SQLite file by default; postgresql://... for PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# The browser test drives Debian's Chromium (never a browser download): install it where we can.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing Debian's chromium for the browser test" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "test: chromium is missing and cannot be installed here (not root): the browser test will fail" >&2
  fi
fi
REDIS_URL=$(.venv/bin/python scripts/ensure_redis.py)
export REDIS_URL
echo "test: Redis ${REDIS_URL}, database ${DATABASE_URL:-sqlite (var/)}" >&2
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"

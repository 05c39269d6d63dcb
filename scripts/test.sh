#!/usr/bin/env bash
# The whole test suite: set-up, a Redis that answers, then pytest. Extra arguments go to pytest.
# DATABASE_URL picks the database (SQLite file by default; postgresql://... for PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test_setup.sh
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

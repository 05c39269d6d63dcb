#!/usr/bin/env bash
# What the test suite needs before pytest starts: the virtualenv (scripts/bootstrap.sh) and Debian's
# Chromium for the browser test (never a browser download), installed where we can.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing Debian's chromium for the browser test" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "test: chromium is missing and cannot be installed here (not root): the browser test will fail" >&2
  fi
fi

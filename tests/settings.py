"""Test settings: the project's settings with a private Redis namespace per test run.

The namespace is put in the environment before the project settings load, so worker
subprocesses started by the tests inherit it and never touch a developer's queues. The test
database gets a name of its own too (runs never collide), and worker subprocesses are pointed at
it through TEST_WORKER_DATABASE_NAME.
"""

import os
import uuid

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
_namespace = os.environ.setdefault("TASKS_REDIS_KEY_PREFIX", f"test-{uuid.uuid4().hex[:12]}")
os.environ.setdefault("CACHE_KEY_PREFIX", _namespace)

from project.settings import *  # noqa: E402, F403
from project.settings import DATABASES, INSTALLED_APPS, VAR_DIR  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_default = DATABASES["default"]
_test_name = _namespace.replace("-", "_")
if _default["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not Django's in-memory default, so worker subprocesses share it.
    _default["TEST"] = {"NAME": str(VAR_DIR / f"{_test_name}.sqlite3")}
else:
    _default["TEST"] = {"NAME": _test_name}
if os.environ.get("TEST_WORKER_DATABASE_NAME"):
    _default["NAME"] = os.environ["TEST_WORKER_DATABASE_NAME"]

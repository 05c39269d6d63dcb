"""Test settings: the project's settings with a private Redis namespace per test run.

The namespace is put in the environment before the project settings load, so worker
subprocesses started by the tests inherit it and never touch a developer's queues.
"""

import os
import uuid

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
_namespace = os.environ.setdefault("TASKS_REDIS_KEY_PREFIX", f"test-{uuid.uuid4().hex[:12]}")
os.environ.setdefault("CACHE_KEY_PREFIX", _namespace)

from project.settings import *  # noqa: E402, F403
from project.settings import INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

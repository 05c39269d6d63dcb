"""Settings for benchmarks: the project's, plus the ``bench`` app and its queue, in a private namespace."""

import os
import uuid

os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
os.environ.setdefault("TASKS_REDIS_KEY_PREFIX", f"bench-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("TASKS_EXTRA_QUEUES", "bench")

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

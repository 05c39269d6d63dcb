"""Settings for benchmarks: the project's, plus the ``bench`` app and its queue, in a private namespace.

The namespace also prefixes cache and session keys, so a run can delete every Redis key it made.
"""

import os
import uuid

os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
_namespace = os.environ.setdefault("TASKS_REDIS_KEY_PREFIX", f"bench-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("CACHE_KEY_PREFIX", _namespace)
os.environ.setdefault("TASKS_EXTRA_QUEUES", "bench")

from project.settings import *  # noqa: E402, F403
from project.settings import INSTALLED_APPS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

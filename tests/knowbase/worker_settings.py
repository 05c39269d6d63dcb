"""Settings of the knowbase test workers: the test settings, the scripted embedder, the tests' media folder."""

import os

from tests.settings import *  # noqa: F403

KNOWBASE_EMBEDDER = "tests.knowbase.embedders.ScriptedEmbedder"
KNOWBASE_MEDIA_ROOT = os.environ.get("KNOWBASE_MEDIA_ROOT", "")

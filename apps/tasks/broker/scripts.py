"""Our Lua scripts (``lua/*.lua``), read once per process, and the one place that loads a script
again when Redis has forgotten it (a restart, SCRIPT FLUSH)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis


@cache
def source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


class Scripts:
    """SHA-1s of the scripts loaded into one Redis; ``run`` is EVALSHA that survives a script flush."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._shas: dict[str, str] = {}

    def sha(self, name: str) -> str:
        """The SHA of script ``name``, loaded into Redis on first use (for EVALSHA in a pipeline)."""
        sha = self._shas.get(name)
        if sha is None:
            sha = self._shas[name] = self.client.script_load(source(name))
        return sha

    def forget(self) -> None:
        """Redis answered NOSCRIPT: every script is loaded again on its next use."""
        self._shas.clear()

    def run(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVALSHA script ``name``; on NOSCRIPT, load it again and run it once more."""
        try:
            return self.client.evalsha(self.sha(name), len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.forget()
            return self.client.evalsha(self.sha(name), len(keys), *keys, *args)

    def pipeline_failed(self, results: Sequence[Any]) -> bool:
        """After ``pipeline.execute(raise_on_error=False)``: True (and the scripts forgotten) when a
        script in it met NOSCRIPT, so the caller runs that part again."""
        if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
            self.forget()
            return True
        return False

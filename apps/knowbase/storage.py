"""Where uploaded documents are stored."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.files.storage import FileSystemStorage
from django.utils.deconstruct import deconstructible


def media_root() -> Path:
    """``KNOWBASE_MEDIA_ROOT``, else ``MEDIA_ROOT``, else ``var/media`` beside the project (never the CWD)."""
    from django.conf import settings

    from apps.knowbase.config import get_config

    configured = get_config().media_root or getattr(settings, "MEDIA_ROOT", "")
    if configured:
        return Path(configured)
    return Path(getattr(settings, "BASE_DIR", Path.cwd())) / "var" / "media"


@deconstructible
class KnowbaseStorage(FileSystemStorage):
    """A file system storage whose location is read from settings at each use.

    Django evaluates a field's storage once, when models load; reading the location lazily lets
    tests and deployments point it elsewhere without re-importing the models.
    """

    def __init__(self) -> None:
        super().__init__()

    @property
    def base_location(self) -> str:  # type: ignore[override]
        return str(media_root())

    @property
    def location(self) -> str:  # type: ignore[override]
        return os.path.abspath(self.base_location)

    @property
    def base_url(self) -> str:  # type: ignore[override]
        from django.conf import settings

        url = getattr(settings, "MEDIA_URL", "") or "/media/"
        return url if url.endswith("/") else f"{url}/"

"""Load files from disk as documents, idempotently: a file already ingested and unchanged is left alone.

A document remembers its file's resolved path in ``source``; ingesting the same path again updates
that document when the bytes changed (which queues it again) and does nothing otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from apps.knowbase.config import get_config
from apps.knowbase.models import Document, human_bytes

from .extraction import SUPPORTED_EXTENSIONS

CREATED, UPDATED, UNCHANGED, REFUSED, FAILED = "created", "updated", "unchanged", "refused", "failed"


@dataclass(frozen=True)
class IngestResult:
    path: Path
    action: str  # created, updated, unchanged, refused (too large, invalid) or failed (unreadable)
    document_id: int | None = None
    reason: str = ""


def find_files(paths: Iterable[str | Path], extensions: Iterable[str] = SUPPORTED_EXTENSIONS) -> Iterator[Path]:
    """Files named directly, and files with a supported extension under folders (hidden ones skipped)."""
    wanted = {extension.lower() for extension in extensions}
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            yield path
        elif path.is_dir():
            for found in sorted(path.rglob("*")):
                relative = found.relative_to(path)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                if found.is_file() and found.suffix.lower() in wanted:
                    yield found
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")


def ingest_file(path: Path, title: str | None = None) -> IngestResult:
    """Create or update the document for ``path``; refuse it (with the reason) when it is too large,
    fail it (with the reason) when it cannot be read, so one bad file does not stop a folder."""
    path = path.resolve()
    limit = get_config().max_document_bytes
    try:
        size = path.stat().st_size
        if size > limit:
            return IngestResult(path, REFUSED, reason=f"{human_bytes(size)} is over the {human_bytes(limit)} limit")
        data = path.read_bytes()
    except OSError as exc:
        return IngestResult(path, FAILED, reason=f"cannot read it: {exc.strerror or exc}")
    digest = hashlib.sha256(data).hexdigest()
    document = Document.objects.filter(source=str(path)).order_by("pk").first()
    if document is not None and document.content_hash == digest and document.file:
        return IngestResult(path, UNCHANGED, document.pk)
    action = CREATED if document is None else UPDATED
    document = document or Document(source=str(path))
    document.title = title or document.title or path.stem.replace("_", " ").replace("-", " ").strip() or path.name
    old_file = document.file.name if document.file else ""
    document.file = ContentFile(data, name=path.name)
    try:
        document.save()
    except ValidationError as exc:
        return IngestResult(path, REFUSED, document.pk, reason="; ".join(exc.messages))
    if old_file and old_file != document.file.name:
        document.file.storage.delete(old_file)
    return IngestResult(path, action, document.pk)

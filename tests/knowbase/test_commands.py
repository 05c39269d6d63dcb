"""knowbase_ingest and knowbase_sweep, without a worker."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, OutputWrapper
from django.core.management.color import color_style
from django.utils import timezone

from apps.knowbase.management.commands._progress import ProgressBar
from apps.knowbase.models import Document, DocumentStatus
from apps.knowbase.services.sweeper import stale_documents

pytestmark = pytest.mark.django_db


def ingest(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("knowbase_ingest", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_ingest_folders_and_files_idempotently(tmp_path, settings):
    settings.KNOWBASE_MAX_DOCUMENT_BYTES = 1000
    (tmp_path / "docs" / "nested").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("# A\n\nAlpha.")
    (tmp_path / "docs" / "nested" / "b.html").write_text("<p>Beta</p>")
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # not a text extension: ignored
    (tmp_path / "docs" / ".hidden").mkdir()
    (tmp_path / "docs" / ".hidden" / "secret.txt").write_text("hidden")
    (tmp_path / "docs" / "big.txt").write_text("x" * 1001)
    single = tmp_path / "single.txt"
    single.write_text("Gamma.")

    out, err = ingest(str(tmp_path / "docs"), str(single))
    assert "Ingested 4 files: 3 created, 0 updated, 0 unchanged, 1 refused, 0 failed." in out
    assert f"refused {(tmp_path / 'docs' / 'big.txt').resolve()}: 1001 bytes is over the 1000 bytes limit" in out
    assert "ingesting [" in err and "4/4 100%" in err
    assert "ingesting" not in out  # the summary alone on stdout
    documents = {document.title: document for document in Document.objects.all()}
    assert set(documents) == {"a", "b", "single"}
    assert documents["b"].source == str((tmp_path / "docs" / "nested" / "b.html").resolve())
    assert documents["b"].file.read() == b"<p>Beta</p>"

    out, _ = ingest(str(tmp_path / "docs"), str(single), "--no-progress")
    assert "0 created, 0 updated, 3 unchanged, 1 refused" in out
    assert "unchanged " not in out.replace("3 unchanged", "")  # listed with -v 2 only
    out, _ = ingest(str(single), "--no-progress", "-v", "2")
    assert f"unchanged {single.resolve()}: left alone" in out
    single.write_text("Gamma, changed.")
    out, _ = ingest(str(single))
    assert "0 created, 1 updated, 0 unchanged" in out
    changed = Document.objects.get(title="single")
    assert (changed.pk, changed.status, changed.file.read()) == (
        documents["single"].pk,
        DocumentStatus.QUEUED,  # reset for processing; sent when the (test's) transaction commits
        b"Gamma, changed.",
    )


def test_ingest_names_unreadable_files_and_goes_on(tmp_path, monkeypatch):
    (tmp_path / "locked.txt").write_text("secret")
    (tmp_path / "open.txt").write_text("Readable.")
    read_bytes = Path.read_bytes

    def refuse_locked(path: Path) -> bytes:  # the tests run as root, which chmod cannot lock out
        if path.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refuse_locked)
    out, _ = ingest(str(tmp_path), "--no-progress")
    assert "Ingested 2 files: 1 created, 0 updated, 0 unchanged, 0 refused, 1 failed." in out
    assert f"failed {(tmp_path / 'locked.txt').resolve()}: cannot read it: Permission denied" in out
    assert list(Document.objects.values_list("title", flat=True)) == ["open"]


def test_ingest_wait_names_the_documents_not_processed(tmp_path):
    (tmp_path / "a.txt").write_text("Alpha.")
    with pytest.raises(CommandError, match="1 documents were not processed within 0s"):
        out = StringIO()
        call_command("knowbase_ingest", str(tmp_path), "--wait", "--timeout", "0", stdout=out, stderr=StringIO())
    assert f"not processed {(tmp_path / 'a.txt').resolve()}: still queued" in out.getvalue()


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_is_not_styled_as_an_error():
    terminal = Terminal()
    stderr = OutputWrapper(terminal)
    stderr.style_func = color_style(force_color=True).ERROR  # what BaseCommand gives its stderr
    bar = ProgressBar(stderr, 2, "ingesting")
    bar.update(1, "a-file-with-a-rather-long-name-that-will-not-fit.txt")
    bar.update(2, "b.txt")
    bar.close()
    written = terminal.getvalue()
    assert "ingesting [" in written and "2/2 100%" in written
    assert "\x1b[" not in written, written  # no colour codes
    assert "a-file-with-a-rather-long-name-that-wil…" in written


def test_ingest_errors(tmp_path):
    with pytest.raises(CommandError, match="no such file or folder"):
        ingest(str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="no files to ingest"):
        ingest(str(tmp_path))


def test_sweeper_selects_stale_documents_only(settings):
    settings.KNOWBASE_SWEEP_AGE_SECONDS = 300
    settings.KNOWBASE_PROCESSING_LEASE_SECONDS = 900
    now = timezone.now()
    ages = {
        "fresh pending": (DocumentStatus.PENDING, 10),
        "old pending": (DocumentStatus.PENDING, 400),
        "old queued": (DocumentStatus.QUEUED, 400),
        "busy processing": (DocumentStatus.PROCESSING, 400),
        "abandoned processing": (DocumentStatus.PROCESSING, 1000),
        "old completed": (DocumentStatus.COMPLETED, 5000),
        "old failed": (DocumentStatus.FAILED, 5000),
    }
    ids = {}
    for title, (status, age) in ages.items():
        document = Document.objects.create(title=title, content=title)
        Document.objects.filter(pk=document.pk).update(status=status, status_changed_at=now - timedelta(seconds=age))
        ids[document.pk] = title
    assert {ids[pk] for pk, _, _ in stale_documents()} == {"old pending", "old queued", "abandoned processing"}
    assert len(stale_documents(age_seconds=0)) == 4  # the fresh pending one too
    out = StringIO()
    call_command("knowbase_sweep", "--dry-run", stdout=out)
    assert "1 pending, 1 processing, 1 queued. Dry run: nothing sent." in out.getvalue()

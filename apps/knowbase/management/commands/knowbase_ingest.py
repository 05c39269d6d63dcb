"""Load files or folders as documents, with a progress bar and a summary."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from apps.knowbase.models import DocumentStatus
from apps.knowbase.services.extraction import SUPPORTED_EXTENSIONS
from apps.knowbase.services.ingest import (
    CREATED,
    FAILED,
    REFUSED,
    UNCHANGED,
    UPDATED,
    IngestResult,
    find_files,
    ingest_file,
)
from apps.knowbase.services.status import not_completed, wait_until_settled
from apps.tasks.management.base import OperatorCommand
from apps.tasks.text import shorten

from ._progress import ProgressBar


class Command(OperatorCommand):
    help = (
        "Ingest files (.txt, .md, .html) or folders of them as knowledge-base documents. New or changed "
        "files are queued for processing; unchanged ones are left alone (-v 2 lists them). The summary "
        "names every file refused or failed, with the reason."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="Files or folders (searched recursively).")
        parser.add_argument(
            "--extension",
            action="append",
            dest="extensions",
            metavar="EXT",
            help="File extension to pick up in folders (repeatable; default: "
            f"{' '.join(sorted(SUPPORTED_EXTENSIONS))}).",
        )
        parser.add_argument("--wait", action="store_true", help="Wait until a worker has processed every document.")
        parser.add_argument("--timeout", type=float, default=600.0, help="Seconds --wait waits at most (600).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, paths: list[str], extensions: list[str] | None, **options: Any) -> None:
        wanted = [ext if ext.startswith(".") else f".{ext}" for ext in extensions] if extensions else None
        try:
            files = list(find_files(paths, wanted or SUPPORTED_EXTENSIONS))
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        if not files:
            raise CommandError(f"no files to ingest under {', '.join(paths)}")
        # Progress on stderr keeps stdout for the summary; the bar writes itself unstyled.
        bar = ProgressBar(self.stderr, len(files), "ingesting", enabled=not options["no_progress"])
        results: list[IngestResult] = []
        for done, path in enumerate(files, start=1):
            results.append(ingest_file(Path(path)))
            bar.update(done, path.name)
        bar.close()
        self._summarize(results, list_unchanged=options["verbosity"] >= 2)
        touched = [result.document_id for result in results if result.action in (CREATED, UPDATED)]
        if options["wait"] and touched:
            self._wait(touched, options["timeout"], not options["no_progress"])

    def _summarize(self, results: list[IngestResult], list_unchanged: bool) -> None:
        counts = Counter(result.action for result in results)
        shown = ", ".join(f"{counts[action]} {action}" for action in (CREATED, UPDATED, UNCHANGED, REFUSED, FAILED))
        self.stdout.write(f"Ingested {len(results)} files: {shown}.")
        for result in results:
            if result.action in (REFUSED, FAILED):
                self.stdout.write(self.style.WARNING(f"  {result.action} {result.path}: {result.reason}"))
            elif result.action == UNCHANGED and list_unchanged:
                self.stdout.write(f"  unchanged {result.path}: left alone, its bytes are the ones already ingested")

    def _wait(self, document_ids: list[int], timeout: float, progress: bool) -> None:
        bar = ProgressBar(self.stderr, len(document_ids), "processing", enabled=progress)
        counts = wait_until_settled(document_ids, timeout, on_progress=lambda done, _total: bar.update(done))
        bar.close()
        shown = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        self.stdout.write(f"Processed: {shown}.")
        for document in not_completed(document_ids):
            where = document.source or document.title
            if document.status == DocumentStatus.FAILED:
                line = f"  failed {where}: {shorten(document.error, 200) or 'no reason recorded'}"
            else:
                line = f"  not processed {where}: still {document.status}"
            self.stdout.write(self.style.WARNING(line))
        unsettled = sum(count for status, count in counts.items() if status not in ("completed", "failed"))
        if unsettled:
            raise CommandError(
                f"{unsettled} documents were not processed within {timeout:g}s: "
                "is `manage.py rundramatiq` running on queue 'knowledge'?"
            )

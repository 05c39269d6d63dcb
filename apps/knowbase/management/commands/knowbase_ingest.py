"""Load files or folders as documents, with a progress bar and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.knowbase.services.extraction import SUPPORTED_EXTENSIONS
from apps.knowbase.services.ingest import CREATED, REFUSED, UNCHANGED, UPDATED, find_files, ingest_file
from apps.knowbase.services.status import wait_until_settled

from ._progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Ingest files (.txt, .md, .html) or folders of them as knowledge-base documents. New or changed "
        "files are queued for processing; unchanged ones are left alone."
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
        bar = ProgressBar(self.stderr, len(files), "ingesting", enabled=not options["no_progress"])
        counts: dict[str, int] = {}
        refused = []
        touched: list[int] = []
        for done, path in enumerate(files, start=1):
            result = ingest_file(Path(path))
            counts[result.action] = counts.get(result.action, 0) + 1
            if result.action == REFUSED:
                refused.append(result)
            elif result.action in (CREATED, UPDATED):
                touched.append(result.document_id)
            bar.update(done, path.name)
        bar.close()
        summary = ", ".join(f"{counts.get(action, 0)} {action}" for action in (CREATED, UPDATED, UNCHANGED, REFUSED))
        self.stdout.write(f"Ingested {len(files)} files: {summary}.")
        for result in refused:
            self.stdout.write(self.style.WARNING(f"  refused {result.path}: {result.reason}"))
        if options["wait"] and touched:
            self._wait(touched, options["timeout"], not options["no_progress"])

    def _wait(self, document_ids: list[int], timeout: float, progress: bool) -> None:
        bar = ProgressBar(self.stderr, len(document_ids), "processing", enabled=progress)
        counts = wait_until_settled(document_ids, timeout, on_progress=lambda done, _total: bar.update(done))
        bar.close()
        shown = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        self.stdout.write(f"Processed: {shown}.")
        unsettled = sum(count for status, count in counts.items() if status not in ("completed", "failed"))
        if unsettled:
            raise CommandError(
                f"{unsettled} documents were not processed within {timeout:g}s: "
                "is `manage.py rundramatiq` running on queue 'knowledge'?"
            )

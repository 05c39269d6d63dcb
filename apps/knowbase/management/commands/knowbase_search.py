"""Semantic search over the knowledge base from the command line."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import CommandError

from apps.knowbase.services.search import MAX_TOP, search
from apps.tasks.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Rank indexed chunks by cosine similarity to QUERY and print the best ones."

    def add_arguments(self, parser) -> None:
        parser.add_argument("query", help="What to look for.")
        parser.add_argument("--top", type=int, default=5, help=f"How many chunks to show (1-{MAX_TOP}; 5).")
        parser.add_argument("--json", action="store_true", help="Print the hits as JSON.")

    def handle(self, *args: Any, query: str, top: int, **options: Any) -> None:
        if not 1 <= top <= MAX_TOP:
            raise CommandError(f"--top must be between 1 and {MAX_TOP}")
        if not query.strip():
            raise CommandError("the query is empty")
        hits = search(query, top=top)
        if options["json"]:
            self.stdout.write(json.dumps([asdict(hit) for hit in hits], indent=2))
            return
        if not hits:
            self.stdout.write("No indexed chunks yet: nothing to rank (are documents completed?).")
            return
        for rank, hit in enumerate(hits, start=1):
            snippet = " ".join(hit.text.split())
            snippet = snippet if len(snippet) <= 200 else f"{snippet[:197]}..."
            self.stdout.write(
                f"{rank}. {hit.score:.3f}  {hit.document_title} (document {hit.document_id}, chunk {hit.position}, "
                f"chars {hit.start_offset}-{hit.end_offset})\n   {snippet}"
            )

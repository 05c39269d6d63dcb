"""Semantic search over a small corpus built here: the chunk holding the query's content ranks first."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.knowbase.models import Document, DocumentStatus
from apps.knowbase.services.processing import process_document
from apps.knowbase.services.search import search

pytestmark = pytest.mark.django_db

CORPUS = {
    "Astronomy": [
        "Saturn has rings made of ice and rock that orbit the planet in a thin disc.",
        "A light year measures the distance light travels in one year, about ten trillion kilometres.",
        "Neutron stars are the collapsed cores of massive stars and spin hundreds of times per second.",
    ],
    "Cooking": [
        "To make bread rise, yeast ferments the sugars in the dough and releases carbon dioxide.",
        "Risotto needs arborio rice, warm stock added slowly, and constant stirring for creaminess.",
        "Caramel forms when sugar is heated until it melts and turns amber brown.",
    ],
    "Databases": [
        "PostgreSQL row locks taken with SELECT FOR UPDATE SKIP LOCKED let workers claim jobs without waiting.",
        "An index on the status column makes the sweeper's query for stale documents fast.",
        "SQLite serialises writers with a single database lock held for each write transaction.",
    ],
    "Gardening": [
        "Tomatoes need full sun, deep watering twice a week and a stake to climb.",
        "Compost made of kitchen scraps and dry leaves feeds the soil with nitrogen and carbon.",
        "Prune roses in late winter, cutting just above an outward facing bud.",
    ],
}


@pytest.fixture
def corpus(settings) -> dict[str, Document]:
    settings.KNOWBASE_CHUNK_SIZE = 120  # one paragraph per chunk
    settings.KNOWBASE_CHUNK_OVERLAP = 0
    documents = {}
    for title, paragraphs in CORPUS.items():
        documents[title] = Document.objects.create(title=title, content="\n\n".join(paragraphs))
        assert process_document(documents[title].pk).outcome == "completed"
    return documents


@pytest.mark.parametrize(
    ("query", "title", "expected"),
    [
        ("rings of ice around Saturn", "Astronomy", "Saturn has rings"),
        ("how does yeast make dough rise", "Cooking", "To make bread rise"),
        ("skip locked row locks to claim jobs", "Databases", "PostgreSQL row locks"),
        ("when to prune roses", "Gardening", "Prune roses"),
        ("spinning neutron stars", "Astronomy", "Neutron stars"),
        ("compost kitchen scraps", "Gardening", "Compost made"),
    ],
)
def test_the_chunk_containing_the_query_ranks_first(corpus, query, title, expected):
    hits = search(query, top=5)
    assert len(hits) == 5
    assert (hits[0].document_title, hits[0].text[: len(expected)]) == (title, expected)
    assert hits[0].score > hits[1].score
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    document = corpus[title]
    assert document.content[hits[0].start_offset : hits[0].end_offset] == hits[0].text


def test_only_completed_documents_of_the_current_embedder_are_ranked(corpus):
    Document.objects.filter(pk=corpus["Cooking"].pk).update(status=DocumentStatus.QUEUED)
    Document.objects.filter(pk=corpus["Gardening"].pk).update(embedder="another-model")
    titles = {hit.document_title for hit in search("bread yeast tomatoes compost", top=100)}
    assert titles == {"Astronomy", "Databases"}
    assert search("   ") == []
    only = search("Saturn", top=3, document_ids=[corpus["Databases"].pk])
    assert {hit.document_title for hit in only} == {"Databases"}


def test_search_command(corpus):
    out = StringIO()
    call_command("knowbase_search", "rings of ice around Saturn", "--top", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("1. ") and "Astronomy (document" in lines[0]
    assert "Saturn has rings made of ice" in lines[1]
    assert sum(line[:2] in ("1.", "2.") for line in lines) == 2

    out = StringIO()
    call_command("knowbase_search", "risotto stock", "--json", stdout=out)
    hits = json.loads(out.getvalue())
    assert len(hits) == 5 and hits[0]["document_title"] == "Cooking" and "Risotto" in hits[0]["text"]
    with pytest.raises(CommandError, match="--top"):
        call_command("knowbase_search", "x", "--top", "0")


def test_search_command_on_an_empty_index():
    out = StringIO()
    call_command("knowbase_search", "anything", stdout=out)
    assert "No indexed chunks yet" in out.getvalue()

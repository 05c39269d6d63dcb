"""Which message each worker thread is running, in a memory-mapped file per worker process.

Knowing what a process was running when it died is what lets recovery spot a poison message
(one that gets its worker killed every time). Writing that to Redis would cost a round-trip
per message; a write into a shared memory map costs a microsecond and survives the process.
Worker processes on the same host read the files of processes that are gone.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path

SLOT_SIZE = 1024
_LENGTH = struct.Struct("<H")
SUFFIX = ".inflight"


class InFlightSlots:
    """One slot per worker thread; a slot holds the JSON of the message that thread is running."""

    def __init__(self, directory: Path, worker_id: str, slots: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{socket.gethostname()}_{os.getpid()}_{worker_id}{SUFFIX}"
        self._slots = slots
        with open(self.path, "wb") as handle:
            handle.truncate(slots * SLOT_SIZE)
        self._file = open(self.path, "r+b")
        self._map = mmap.mmap(self._file.fileno(), slots * SLOT_SIZE)
        self._local = threading.local()
        self._next = 0
        self._lock = threading.Lock()

    def _slot(self) -> int | None:
        slot = getattr(self._local, "slot", None)
        if slot is None:
            with self._lock:
                if self._next >= self._slots:
                    return None
                slot = self._local.slot = self._next
                self._next += 1
        return slot

    def start(
        self, *, redis_id: str, message_id: str, queue: str, actor: str, retries: int, prior_attempts: int,
        enqueued_ms: int, alone: bool = False,
    ) -> None:  # fmt: skip
        """Note the message this thread starts: the JSON object ``_read`` returns for it.

        Formatted by hand (with json's own string quoting) for a quarter of ``json.dumps``'s cost:
        this runs before every message."""
        slot = self._slot()
        if slot is None:
            return
        data = (
            f'{{"redis_id":{_quote(redis_id)},"message_id":{_quote(message_id)},"queue":{_quote(queue)},'
            f'"actor":{_quote(actor)},"retries":{int(retries)},"prior_attempts":{int(prior_attempts)},'
            f'"enqueued_ms":{int(enqueued_ms)},"alone":{"true" if alone else "false"}}}'
        ).encode()[: SLOT_SIZE - _LENGTH.size]
        offset = slot * SLOT_SIZE
        self._map[offset + _LENGTH.size : offset + _LENGTH.size + len(data)] = data
        self._map[offset : offset + _LENGTH.size] = _LENGTH.pack(len(data))

    def finish(self) -> None:
        slot = getattr(self._local, "slot", None)
        if slot is not None:
            self._map[slot * SLOT_SIZE : slot * SLOT_SIZE + _LENGTH.size] = b"\0\0"

    def close(self) -> None:
        """Clean shutdown: nothing is running any more."""
        self._map.close()
        self._file.close()
        self.path.unlink(missing_ok=True)


class ExclusiveRuns:
    """Messages of one worker process run side by side, except a suspect (redelivered after its
    worker died), which runs alone: waits for the running ones to finish and holds new ones back,
    so that if the process dies under it, the death is its own (see services.recovery)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = 0
        self._alone = False
        self._waiting_alone = 0

    def enter(self, alone: bool) -> None:
        with self._changed:
            if alone:
                self._waiting_alone += 1
                while self._running or self._alone:
                    self._changed.wait(1.0)
                self._waiting_alone -= 1
                self._alone = True
            else:
                while self._alone or self._waiting_alone:
                    self._changed.wait(1.0)
                self._running += 1

    def leave(self, alone: bool) -> None:
        with self._changed:
            if alone:
                self._alone = False
            else:
                self._running -= 1
            self._changed.notify_all()


@dataclass
class DeadProcess:
    path: Path
    pid: int
    worker_id: str
    running: list[dict]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> list[dict]:
    data = path.read_bytes()
    entries = []
    for offset in range(0, len(data) - SLOT_SIZE + 1, SLOT_SIZE):
        (length,) = _LENGTH.unpack_from(data, offset)
        if length:
            try:
                entries.append(json.loads(data[offset + _LENGTH.size : offset + _LENGTH.size + length]))
            except ValueError:
                continue
    return entries


def dead_processes(directory: Path) -> Iterator[DeadProcess]:
    """Slot files of this host's worker processes that no longer exist."""
    host = socket.gethostname()
    if not directory.is_dir():
        return
    for path in directory.glob(f"*{SUFFIX}"):
        parts = path.name[: -len(SUFFIX)].rsplit("_", 2)
        if len(parts) != 3:
            continue
        name_host, pid_text, worker_id = parts
        if name_host != host or not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        try:
            running = _read(path)
        except OSError:
            continue
        yield DeadProcess(path, int(pid_text), worker_id, running)

"""A dependency-free progress bar for management commands (redrawn on a terminal, milestones otherwise)."""

from __future__ import annotations


class ProgressBar:
    """``update(done)`` redraws ``label [#####.....] done/total``; off a terminal it prints every 10%."""

    def __init__(self, stream, total: int, label: str, enabled: bool = True, width: int = 30) -> None:
        self.stream = stream
        self.total = max(total, 0)
        self.label = label
        self.enabled = enabled and self.total > 0
        self.width = width
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self._last_step = -1

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        fraction = min(done / self.total, 1.0)
        filled = int(fraction * self.width)
        line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {fraction:4.0%}"
        if self.interactive:
            self.stream.write(f"\r{line} {note[:40]:<40}", ending="")
            self.stream.flush()
            return
        step = int(fraction * 10)
        if step != self._last_step:
            self._last_step = step
            self.stream.write(line)

    def close(self) -> None:
        if self.enabled and self.interactive:
            self.stream.write("")

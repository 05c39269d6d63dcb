"""A dependency-free progress bar for management commands (redrawn on a terminal, milestones otherwise)."""

from __future__ import annotations

from django.core.management.base import OutputWrapper

from apps.tasks.text import shorten


def _unstyled(text: str) -> str:
    return text


class ProgressBar:
    """``update(done)`` redraws ``label [#####.....] done/total``; off a terminal it prints every 10%.

    Lines are written unstyled: a command's stderr wrapper styles every line as an error (red on a
    terminal), and progress is no error.
    """

    def __init__(self, stream: OutputWrapper, total: int, label: str, enabled: bool = True, width: int = 30) -> None:
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
            self.stream.write(f"\r{line} {shorten(note, 40):<40}", ending="", style_func=_unstyled)
            self.stream.flush()
            return
        step = int(fraction * 10)
        if step != self._last_step:
            self._last_step = step
            self.stream.write(line, style_func=_unstyled)

    def close(self) -> None:
        if self.enabled and self.interactive:
            self.stream.write("", style_func=_unstyled)

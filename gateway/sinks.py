"""Append-only JSON-lines files (audit records, metrics), written off the request path.

A bounded queue feeds one writer thread, which appends each batch to the file it keeps open (a `stat` per batch
notices when log rotation renamed it). A full queue makes a request wait for room rather than
lose its record (the event loop stalls only if the disk does); a file that cannot be written keeps
the records queued, retries, and shows on `/healthz` until it recovers. Closing drains the queue:
records are flushed on shutdown.

A record is written as `json_line` makes it, or, given as a line already made (the audit record, whose
size is capped as it will be written: see `gateway.audit`), exactly as given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("aigw.sinks")
_CLOSE = object()


def json_line(record: Any) -> str:
    """One record as one line: compact JSON, ASCII only (other characters as \\u escapes), no raw newline."""
    return json.dumps(record, separators=(",", ":"), default=str)


class JsonLinesSink:
    def __init__(self, path: Path, queue_size: int, name: str) -> None:
        self.path = path
        self.name = name
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name=f"aigw-{name}-writer", daemon=True)
        self.error: str | None = None
        self.written = 0
        self._file: TextIO | None = None  # only the writer thread (and close, after it) uses it

    def start(self) -> None:
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self.error is None and self._thread.is_alive()

    def put(self, record: dict[str, Any] | str) -> None:
        """Queue a record, or a line made by `json_line`, written as it is. Only when the writer is
        `queue_size` records behind does this wait for it: losing a record would be worse. It must not
        await, so that a cancelled request still records."""
        if isinstance(record, str) and "\n" in record:
            raise ValueError("a JSON line must not contain a newline: it would be read as two records")
        self._queue.put(record)

    def room(self) -> int:
        """How many records can be queued now without waiting (only the writer thread takes them away)."""
        return self._queue.maxsize - self._queue.qsize()

    def close(self, timeout: float = 30) -> None:
        """Write everything queued, then stop."""
        if self._thread.is_alive():
            self._queue.put(_CLOSE)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._close_file()

    def _open_file(self) -> TextIO:
        """The file, kept open between batches; opened again when it was renamed or removed (logrotate renames it:
        the batch goes to a new file under the name, which the CloudWatch agent follows)."""
        if self._file is not None:
            try:
                same = self.path.stat().st_ino == os.fstat(self._file.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return self._file
            self._close_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        return self._file

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _run(self) -> None:
        pending: list[str] = []
        closing = False
        while not (closing and not pending):
            if not closing:
                closing = self._take(pending)
            if pending and self._write(pending):
                pending.clear()
            elif pending:
                time.sleep(0.5)  # the file is failing: keep the records and try again

    def _take(self, pending: list[str]) -> bool:
        """Move what is queued into `pending` (waiting a little for the first); True when asked to close."""
        try:
            item = self._queue.get(timeout=0.2)
        except queue.Empty:
            return False
        while True:
            if item is _CLOSE:
                return True
            pending.append(item if isinstance(item, str) else json_line(item))
            if len(pending) >= 1000:
                return False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False

    def _write(self, lines: list[str]) -> bool:
        try:
            file = self._open_file()
            file.write("\n".join(lines) + "\n")
            file.flush()
        except OSError as error:
            self._close_file()
            if self.error is None:
                log.error("%s file %s cannot be written: %s", self.name, self.path, error)
            self.error = f"{self.path}: {error.strerror or error}"
            return False
        if self.error is not None:
            log.warning("%s file %s is writable again", self.name, self.path)
        self.error = None
        self.written += len(lines)
        return True

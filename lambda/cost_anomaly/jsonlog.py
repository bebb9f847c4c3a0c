"""Structured logs: one JSON object per line on stdout, which Lambda sends to CloudWatch Logs as one event each."""

from __future__ import annotations

import json
from datetime import UTC, datetime


def log(event: str, /, *, level: str = "info", **fields: object) -> None:
    # print, not a logging handler: it resolves sys.stdout at each call, and the runtime's own log format
    # (a text prefix on each line) would break the JSON.
    record = {"time": datetime.now(UTC).isoformat(), "level": level, "event": event, **fields}
    print(json.dumps(record, default=str, sort_keys=False), flush=True)

"""The canary's folder is a Synthetics asset root (`python/` holds its module), not a package: it goes on sys.path
before the tests here are collected."""

from __future__ import annotations

import sys
from pathlib import Path

CANARY = Path(__file__).resolve().parents[2] / "lambda" / "availability_canary" / "python"
if str(CANARY) not in sys.path:
    sys.path.insert(0, str(CANARY))

# The running processes the gateway's own tests use: the fake vendor, the token issuer and its keys.
from tests.gateway.conftest import gateway_workdir, issuer, keys, reset_vendor, vendor  # noqa: E402, F401

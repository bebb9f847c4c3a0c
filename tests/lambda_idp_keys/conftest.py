"""The IdP-keys function's folder is a Lambda asset root, not a package (`lambda` is a keyword): its modules import
each other as top-level modules, as they do on Lambda, so the folder goes on sys.path before the tests here are
collected."""

from __future__ import annotations

import sys
from pathlib import Path

FUNCTION = Path(__file__).resolve().parents[2] / "lambda" / "idp_keys"
if str(FUNCTION) not in sys.path:
    sys.path.insert(0, str(FUNCTION))

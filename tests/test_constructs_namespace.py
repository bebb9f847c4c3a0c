"""`constructs/` must merge into the CDK's `constructs` package, never shadow it (DESIGN.md)."""

from __future__ import annotations

import importlib
from pathlib import Path

import constructs

ROOT = Path(__file__).resolve().parent.parent


def test_constructs_folder_has_no_init_and_no_jsii_module() -> None:
    assert not (ROOT / "constructs" / "__init__.py").exists()
    assert not (ROOT / "constructs" / "_jsii").exists()
    assert not (ROOT / "constructs" / "_jsii.py").exists()


def test_construct_is_the_librarys_and_our_modules_import_from_the_same_package() -> None:
    library_init = Path(constructs.__file__).resolve()
    assert library_init.parent.parent.name == "site-packages"
    assert constructs.Construct.__module__ == "constructs"
    ours = importlib.import_module("constructs.private_network")
    assert Path(ours.__file__ or "").resolve().parent == ROOT / "constructs"
    assert issubclass(ours.PrivateNetwork, constructs.Construct)

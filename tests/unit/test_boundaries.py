"""Boundaries that import-linter cannot state: Optuna's private API and Optuna's tables
are touched by one module of hone's only (the package service.optuna_tables), so an Optuna upgrade
has one place to check (tests/api/test_lease_rows.py is its gate)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "hone", "worker", "protocol", "trainer", "migrations")
OWNER = ROOT / "service" / "optuna_tables"
_OPTUNA_TABLE = r"(?:studies|trials|trial_\w+|study_\w+|version_info)"
_SQL_ON_OPTUNA = re.compile(rf"\b(?:FROM|INTO|UPDATE|JOIN)\s+{_OPTUNA_TABLE}\b", re.IGNORECASE)
_TABLE_CALL = re.compile(rf"""\btable\(\s*["']{_OPTUNA_TABLE}["']""")


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if OWNER not in p.parents)


def _private_optuna_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found += [name for name in names if name.startswith("optuna") and "._" in name]
    return found


def test_the_owner_package_exists_and_the_scan_finds_what_it_imports() -> None:
    assert any(_private_optuna_imports(path) for path in OWNER.rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_other_module_imports_optunas_private_api_or_names_its_tables(path: Path) -> None:
    text = path.read_text()
    assert not _private_optuna_imports(path), "Optuna's private API belongs in service/optuna_tables/"
    assert not _TABLE_CALL.search(text), "Optuna's tables are declared in service/optuna_tables/ only"
    assert not _SQL_ON_OPTUNA.search(text), "SQL on Optuna's tables belongs in service/optuna_tables/"

"""The tests' own layout: trees that mirror the code, shared code only in tests/support."""

from __future__ import annotations

import ast

from tests.support.paths import REPO

TESTS = REPO / "tests"
#: Code packages, as the top-level folders (and hoststream/) name them.
PACKAGES = {"api", "hoststream", "producers", "schemas", "sinks", "streams"}
#: Tests of what is not a Python package: deploy/ files, the docs, the whole pipeline.
OTHERS = {"deploy", "docs", "pipeline"}


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


def test_unit_and_integration_trees_mirror_the_code_packages() -> None:
    for tree in ("unit", "integration"):
        folders = {p.name for p in (TESTS / tree).iterdir() if p.is_dir() and p.name[0] != "_"}
        assert folders <= PACKAGES | OTHERS, tree


def test_tests_import_shared_code_only_from_tests_support() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for module in imported_modules(path):
            shared_elsewhere = module.startswith("tests.") and not module.startswith(
                "tests.support"
            )
            if shared_elsewhere or module.startswith(".") or "conftest" in module:
                offenders.append(f"{path.relative_to(REPO)}: {module}")
    assert offenders == []

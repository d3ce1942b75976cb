"""The README and docs/ point only at files of this repository, and every such link resolves."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.support.paths import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: A file of the public contract kept outside the repository would be one a reader cannot open.
OUTSIDE = ("CONTRACT" + ".md", "../" + "shared")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves_inside_the_repository(page) -> None:
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO), f"{page.name}: {target} leaves the repository"
        assert path.exists(), f"{page.name}: {target} does not exist"


def test_no_tracked_file_names_a_document_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    offenders = []
    for name in filter(None, tracked):
        path = REPO / name.decode()
        if path.is_symlink() or not path.is_file() or path.suffix in {".png", ".svg", ".json"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{name.decode()}: {word}" for word in OUTSIDE if word in text]
    assert offenders == []

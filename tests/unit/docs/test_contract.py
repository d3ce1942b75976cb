"""docs/contract.md's tables of commands and settings against the command line and Settings.

After adding or changing a setting, ``python -m tests.unit.docs.test_contract``
rewrites the settings table from :func:`hoststream.config.settings_table`.
"""

from __future__ import annotations

import re
from typing import Any

import typer

from hoststream.cli import app
from hoststream.config import settings_table
from tests.support.paths import REPO

PAGE = REPO / "docs" / "contract.md"


def find_block(text: str, name: str) -> re.Match[str]:
    """The lines between ``<!-- NAME: ... -->`` and ``<!-- end NAME -->`` (group 1)."""
    match = re.search(rf"<!-- {name}: [^>]*-->\n(.*?)<!-- end {name} -->", text, re.S)
    assert match, f"docs/contract.md has no {name} block"
    return match


def block(name: str) -> str:
    return find_block(PAGE.read_text(encoding="utf-8"), name).group(1)


def settings_rows() -> str:
    """The settings table as docs/contract.md should hold it, rendered from Settings."""
    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    section = None
    for row in settings_table():
        if row.section != section:
            section = row.section
            lines.append(f"| **{section}** | | |")
        meaning = row.description.replace("|", "\\|")
        lines.append(f"| `{row.env}` | {row.default or 'empty'} | {meaning} |")
    return "\n".join(lines) + "\n"


def commands() -> dict[str, set[str]]:
    """``hoststream <command>`` -> its long options, for every command and sub-command."""
    # Typer builds on its own copy of click, so groups and options are told by what they have.
    found: dict[str, set[str]] = {}

    def walk(group: Any, path: str) -> None:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                walk(command, f"{path} {name}")
                continue
            found[f"{path} {name}"] = {
                opt
                for param in command.params
                if param.param_type_name == "option"
                for opt in param.opts
                if opt.startswith("--") and opt != "--help"
            }

    walk(typer.main.get_command(app), "hoststream")
    return found


def documented_commands() -> dict[str, set[str]]:
    known = commands()
    documented: dict[str, set[str]] = {}
    for line in block("commands").splitlines()[2:]:
        # A cell may hold an escaped pipe: `sink victoriametrics\\|sql\\|alerts`.
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        command = cells[0].strip("`")
        words = command.split()
        path = next(
            " ".join(words[:n]) for n in range(len(words), 0, -1) if " ".join(words[:n]) in known
        )
        documented[path] = set(re.findall(r"--[a-z][a-z-]*", cells[1]))
    return documented


def test_every_command_and_option_is_in_the_contract_and_nothing_else() -> None:
    assert documented_commands() == commands()


def test_the_settings_table_is_every_setting_with_its_default_and_meaning() -> None:
    assert block("settings") == settings_rows(), (
        "regenerate the settings table of docs/contract.md:\n" + settings_rows()
    )


if __name__ == "__main__":
    page = PAGE.read_text(encoding="utf-8")
    start, end = find_block(page, "settings").span(1)
    PAGE.write_text(page[:start] + settings_rows() + page[end:], encoding="utf-8")

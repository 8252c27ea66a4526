"""The README stays a newcomer's page (at most 8 KB, #12) and every page it points to exists."""

from __future__ import annotations

import re

from tests.support.paths import REPO_ROOT

README = REPO_ROOT / "README.md"


def test_readme_is_at_most_8_kb() -> None:
    assert README.stat().st_size <= 8 * 1024, "README.md is for a newcomer: move the reference to docs/"


def test_every_linked_page_exists() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert links, "the README links to docs/"
    missing = [link for link in links if not (REPO_ROOT / link).exists()]
    assert not missing

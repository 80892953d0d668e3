"""docs/report.md documents exactly the columns of the results frame, with their units."""

from __future__ import annotations

import re

from blackwell_sim.report import COLUMNS


def test_column_reference_matches_the_code(repo_root):
    text = (repo_root / "docs" / "report.md").read_text()
    section = text.split("## The results frame", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| ([^|]+) \|", section, flags=re.MULTILINE)
    assert [(name, kind, unit.strip()) for name, kind, unit in rows] == [
        (c.name, c.kind, c.unit or "-") for c in COLUMNS]


def test_readme_image_exists_and_is_small(repo_root):
    text = (repo_root / "docs" / "report.md").read_text()
    (image,) = re.findall(r"!\[[^\]]*\]\((img/[^)]+\.png)\)", text)
    data = (repo_root / "docs" / image).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 150_000

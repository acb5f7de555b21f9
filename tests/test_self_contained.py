"""A fresh clone stands on its own: no tracked file points at documents outside the repository.

The project's behaviour reference is docs/kernel-behaviour.md; every docs/ path a file cites must
exist in the tree.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEXT = (".py", ".md", ".toml", ".sh", ".c", ".h", ".yml", ".yaml", ".txt", ".cfg", "")
# the old out-of-tree reference and the sibling directory it lived in
OUTSIDE = re.compile(r"\.\./shared|semantics\.md")
DOC_PATH = re.compile(r"\bdocs/[\w./-]+\.md\b")


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / p for p in out.splitlines()
            if Path(p).suffix in TEXT and not p.startswith("corpus/") and (REPO / p).is_file()]


def test_no_tracked_file_points_outside_the_repository():
    bad = []
    for path in _tracked():
        if path == Path(__file__):
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                bad.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not bad, "\n".join(bad)


def test_every_cited_docs_file_exists():
    missing = []
    for path in _tracked():
        for m in DOC_PATH.finditer(path.read_text(errors="replace")):
            if not (REPO / m.group(0)).exists():
                missing.append(f"{path.relative_to(REPO)}: {m.group(0)}")
    assert not missing, "\n".join(missing)

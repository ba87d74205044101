"""The Dockerfile against the rest of the repository: the torch it bakes in is the torch of
constraints.txt (and of the Makefile), and it builds offline (no BuildKit frontend to fetch)."""

from __future__ import annotations

import re

from tests.integration.processes import REPO


def pinned(text: str, pattern: str) -> str:
    found = re.findall(pattern, text, flags=re.MULTILINE)
    assert len(found) == 1, (pattern, found)
    return str(found[0])


def test_the_image_torch_is_the_torch_of_constraints_and_the_makefile() -> None:
    constraints = pinned((REPO / "constraints.txt").read_text(), r"^torch==(\S+)$")
    assert pinned((REPO / "Dockerfile").read_text(), r"^ARG TORCH_VERSION=(\S+)$") == constraints
    makefile = set(re.findall(r"torch==([0-9][^\s'\"]*)", (REPO / "Makefile").read_text()))
    assert makefile == {constraints}


def test_the_dockerfile_needs_no_frontend_image() -> None:
    # `# syntax=…` makes BuildKit fetch a frontend image first: offline builds fail.
    assert not re.search(r"^#\s*syntax\s*=", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE)

"""Shared pytest options and fixtures.

`--update-golden` rewrites the golden files under tests/golden/ from what the code prints now, instead of
comparing with them (`golden` fixture; docs/architecture.md, "Tests"). Review the rewritten files with
`git diff tests/golden` before committing them.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden files under tests/golden/ instead of comparing with them")


class Golden:
    """Compares text with a golden file under tests/golden/, or with `--update-golden` writes the file."""

    def __init__(self, update: bool, test: str) -> None:
        self.update = update
        self.test = test

    def check(self, name: str, text: str) -> None:
        """`text` must equal tests/golden/NAME; on a mismatch the test fails with a unified diff."""
        path = GOLDEN / name
        if not text.endswith("\n"):
            text += "\n"
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"no golden file tests/golden/{name}; make it with "
                        f"python -m pytest {self.test} --update-golden", pytrace=False)
        expected = path.read_text(encoding="utf-8")
        if expected != text:
            diff = difflib.unified_diff(expected.splitlines(keepends=True), text.splitlines(keepends=True),
                                        f"tests/golden/{name} (expected)", f"{name} (now)")
            pytest.fail(f"the output differs from tests/golden/{name}; if the change is intended, run "
                        f"python -m pytest {self.test} --update-golden and review the diff of the file:\n"
                        + "".join(diff), pytrace=False)

    def check_folder(self, folder: str, texts: dict[str, str]) -> None:
        """Every file of tests/golden/FOLDER/ against `texts` (file name -> text): no file missing, none extra
        (`--update-golden` deletes the extra ones)."""
        path = GOLDEN / folder
        present = {p.name for p in path.glob("*")} if path.is_dir() else set()
        extra = sorted(present - set(texts))
        for name in extra if self.update else ():
            (path / name).unlink()
        for name, text in texts.items():
            self.check(f"{folder}/{name}", text)
        if extra and not self.update:
            pytest.fail(f"tests/golden/{folder}/ has files the test no longer makes: {', '.join(extra)}; "
                        f"python -m pytest {self.test} --update-golden removes them", pytrace=False)


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    """Golden-file comparison (see `Golden`); `--update-golden` rewrites the files instead."""
    test = request.path.relative_to(Path(__file__).parent.parent).as_posix()
    return Golden(bool(request.config.getoption("--update-golden")), test)

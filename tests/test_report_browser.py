"""`leac report`'s page opened in a real headless browser (Chromium or Chrome), where one is installed.

The browser loads the page over a local HTTP server (a snap-packaged Chromium cannot read pytest's tmp_path)
and prints the DOM it built (`--dump-dom`); the test checks that the page rendered every section with its
title, the placement picture as an inline image, the hostile layer name as text and no script element, and that
the browser logged no script error and nothing the page's Content-Security-Policy refused (which would mean the
page tried to load something). Skipped, with the reason, where no browser is on PATH; CI installs one.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from lea_compiler.chip import save_chip, synth_chip
from lea_compiler.cli import main
from lea_compiler.report_html import SECTIONS
from tests.helpers import mlp_model

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name)) is not None), None)
HOSTILE_LAYER = "<script>alert(1)</script>"

pytestmark = pytest.mark.skipif(
    BROWSER is None, reason=f"no headless browser on PATH (looked for {', '.join(BROWSERS)}); CI installs Chromium")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A report page (a Program with a hostile layer name, simulated on data) served from tmp_path."""
    model = mlp_model()
    for node in model.graph.node:
        if node.name == "fc1":
            node.name = HOSTILE_LAYER
    onnx.save(model, tmp_path / "m.onnx")
    save_chip(synth_chip(arrays=6, rows=16, cols=16, stuck_high=0.05, seed=2), tmp_path / "chip.json")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((32, 4)).astype(np.float32), y=rng.integers(0, 3, 32))
    assert main(["compile", str(tmp_path / "m.onnx"), "--chip", str(tmp_path / "chip.json"), "-k", "2",
                 "--placer", "greedy", "-o", str(tmp_path / "p.leac")]) == 0
    assert main(["report", str(tmp_path / "p.leac"), "--data", str(tmp_path / "d.npz"), "--trials", "2",
                 "-o", str(tmp_path / "report.html")]) == 0
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/report.html", tmp_path
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def test_the_report_renders_in_a_headless_browser(served: tuple[str, Path]) -> None:
    pytest.importorskip("matplotlib")
    url, folder = served
    assert BROWSER is not None
    done = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", f"--user-data-dir={folder / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<body" in dom, done.stderr[-2000:]
    for key, title in SECTIONS.items():
        assert f'id="{key}"' in dom and f"{title}</h2>" in dom
    assert dom.count('src="data:image/png;base64,') == 1
    assert "<script" not in dom.lower()  # the hostile layer name did not become an element...
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # ...it is shown as text
    assert "Uncaught" not in done.stderr
    assert "Refused to" not in done.stderr  # the Content-Security-Policy blocked nothing: the page loads nothing

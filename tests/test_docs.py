"""Every code block of the docs tutorials runs, in order, in a fresh folder.

``python`` blocks of one page run in one namespace; ``sh`` blocks run with
bash (``set -e``) in the same folder, with ``mixpe-sim`` meaning this
checkout's CLI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted((DOCS / "tutorials").glob("*.md")) + [DOCS / "index.md"]
BLOCK = re.compile(r"^```(python|sh)\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[tuple[str, str]]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


#: Tutorials that take long to run (the replay of the Azure trace, the 70B model on 8 chips with its capacity
#: search): marked slow; the modules they use are covered by the default run's own tests (test_serving.py,
#: test_serving_cli.py, test_system.py, test_system_serving.py).
SLOW_PAGES = {"replay", "serve_70b", "prefill_decode", "sweep"}


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW_PAGES else p
                                  for p in PAGES if p.name != "index.md"], ids=lambda p: p.stem)
def test_tutorial_runs(page, tmp_path, monkeypatch):
    found = blocks(page)
    assert found, f"{page} has no code blocks"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "mixpe-sim"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mixpe_sys.cli "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for lang, code in found:
        if lang == "python":
            exec(compile(code, f"{page.name}", "exec"), namespace)
        else:
            proc = subprocess.run(["bash", "-e", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert proc.returncode == 0, f"{page.name} shell block failed:\n{code}\n{proc.stdout}\n{proc.stderr}"


def test_quickstart_commands_match_readme():
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    quick = blocks(DOCS / "index.md")[0][1]
    assert quick.strip() in readme


def test_reference_page_is_current():
    from mixpe_sys.config_reference import reference_markdown

    page = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert page == reference_markdown(), "regenerate: python -m mixpe_sys.config_reference > docs/reference.md"

"""The README tells the truth: the files it names exist, it shows every subcommand, its Python example
runs, and the slow tests it mentions exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mixpe_sys.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCK.findall(README) if kind == lang]


def named_paths() -> set[str]:
    """Repository paths the README names: backticked paths, paths in shell commands, the layout tree."""
    paths = {p for p in re.findall(r"`([\w.\-/]+)`", README) if "/" in p and not p.startswith("DIR/")}
    paths |= {p for p in re.findall(r"\]\(([\w.\-/]+)\)", README)}  # links
    for code in blocks("sh"):
        commands = "\n".join(line.split("#")[0] for line in code.splitlines())
        paths |= {t for t in re.findall(r"[\w.\-]+(?:/[\w.\-]+)+/?", commands) if not t.startswith("http")}
    layout = next(code for code in blocks("") if code.startswith("mixpe_sys/"))
    parent = ""
    for line in layout.splitlines():
        if not line.strip() or line.startswith("    "):
            continue
        name = line.split()[0]
        if line.startswith("  "):
            paths.add(parent + name)
        else:
            paths.add(name)
            parent = name if name.endswith("/") else ""
    return paths


@pytest.mark.parametrize("path", sorted(named_paths()))
def test_named_path_exists(path):
    assert (ROOT / path).exists(), f"README names {path}, which is not in the repository"


def test_hw_modules_named_in_the_layout_exist():
    layout = next(code for code in blocks("") if code.startswith("mixpe_sys/"))
    hw = layout[layout.index("  hw/"):layout.index("  mapping/")]
    names = re.findall(r"(?<![\w(])([a-z]+)(?= \(|,|;| and| \()", hw.split("components:", 1)[1])
    for name in set(names) - {"and"}:
        assert (ROOT / "mixpe_sys" / "hw" / f"{name}.py").exists(), name


def test_every_subcommand_is_shown():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in sub.choices:
        assert f"mixpe-sim {name}" in README, f"the README never shows `mixpe-sim {name}`"


def test_python_example_runs():
    namespace: dict = {}
    for code in blocks("python"):
        exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["r"].roofline_bound == "memory" and namespace["r"].energy_j > 0


@pytest.mark.slow
def test_slow_marker_selects_tests_when_the_readme_mentions_it():
    if "-m slow" not in README:
        return
    found = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow", str(ROOT / "tests")],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    selected = [line for line in found.stdout.splitlines() if "::" in line or re.match(r"\S+\.py: \d+$", line)]
    assert selected, "the README says `pytest -m slow` runs the slow tests, but it selects none"

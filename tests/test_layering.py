"""The layering contracts (pyproject.toml): they hold on the project, and each one breaks when
the import it forbids is added to a copy of the packages.

import-linter checks the layers (torchbridge -> sims -> theory), theory and sims without torch,
and no cycles between the modules of a package; ruff checks that no import sits inside a
function (PLC0415) and that no module takes a private name of another (PLC2701).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("theory", "sims", "torchbridge")
BIN = Path(sys.executable).parent
CONTRACTS = {
    "layers": "torchbridge uses sims and theory; sims uses theory; theory uses neither",
    "theory-torch": "theory runs without torch",
    "sims-torch": "sims runs without torch",
    "cycles": "no import cycles between the modules of a package",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the three packages and of pyproject.toml."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def lint_imports(root: Path) -> dict[str, str]:
    """Each contract's verdict (KEPT or BROKEN) from ``lint-imports`` run on the tree ``root``."""
    done = subprocess.run(
        [BIN / "lint-imports", "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(BIN)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    verdicts = {}
    for key, name in CONTRACTS.items():
        lines = [line for line in done.stdout.splitlines() if line.startswith(name + " ")]
        assert len(lines) == 1, done.stdout + done.stderr
        verdicts[key] = lines[0].rsplit(" ", 1)[1]
    assert done.returncode == (0 if set(verdicts.values()) == {"KEPT"} else 1), done.stdout
    return verdicts


def ruff_codes(root: Path, path: str) -> set[str]:
    """The rule codes ruff reports on ``root/path`` under the project's configuration."""
    done = subprocess.run(
        [BIN / "ruff", "check", "--output-format", "json", "--config", "pyproject.toml", path],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return {finding["code"] for finding in json.loads(done.stdout)}


def append(root: Path, path: str, text: str) -> None:
    with open(root / path, "a") as handle:
        handle.write(text)


def test_every_contract_holds_on_the_project(tree: Path) -> None:
    assert lint_imports(tree) == dict.fromkeys(CONTRACTS, "KEPT")
    for package in PACKAGES:
        assert ruff_codes(tree, package) == set()


@pytest.mark.parametrize(
    ("path", "line", "broken"),
    [
        ("theory/bounds.py", "import torch\n", {"theory-torch", "sims-torch"}),  # sims uses it
        ("sims/fit.py", "from torch import nn\n", {"sims-torch"}),
        ("theory/bounds.py", "import sims.plots\n", {"layers"}),
        ("sims/report.py", "from torchbridge import counting\n", {"layers", "sims-torch"}),
        ("sims/data.py", "import sims.config\n", {"cycles"}),  # config imports data
        ("torchbridge/chains.py", "from torchbridge import models\n", {"cycles"}),
        ("theory/problem.py", "from theory import geometry\n", {"cycles"}),  # the reverse exists
    ],
)
def test_a_forbidden_import_breaks_its_contract(tree: Path, path, line, broken) -> None:
    append(tree, path, "\n" + line)
    verdicts = lint_imports(tree)
    assert {key for key, verdict in verdicts.items() if verdict == "BROKEN"} == broken


def test_an_import_inside_a_function_is_refused(tree: Path) -> None:
    append(tree, "sims/fit.py", "\n\ndef later():\n    from sims import data\n\n    return data\n")
    assert ruff_codes(tree, "sims/fit.py") == {"PLC0415"}


def test_a_private_name_of_another_module_is_refused(tree: Path) -> None:
    private = "_at_least_one"  # a private helper of sims.networks
    assert f"def {private}(" in (tree / "sims/networks.py").read_text()
    append(tree, "torchbridge/counting.py", f"\nfrom sims.networks import {private}\n")
    assert "PLC2701" in ruff_codes(tree, "torchbridge/counting.py")

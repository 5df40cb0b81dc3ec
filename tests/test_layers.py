"""The package layers, checked by import-linter (contracts in pyproject.toml):

* ``adaattn_video`` (the model) imports neither ``streamer`` nor ``training``;
* ``training`` never imports ``streamer``;
* within ``streamer``, only ``streamer.cli`` imports ``training``.

grimp (import-linter's graph builder) parses every import statement, including those inside
functions; the violation tests below prove it by putting the forbidden import in a function.
Imports made by name at run time (``importlib.import_module``) are invisible to any static check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("configkit", "adaattn_video", "streamer", "training", "benchmarks")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run the venv's ``lint-imports`` on ``root``'s packages with ``root``'s pyproject.toml."""
    script = Path(sys.executable).with_name("lint-imports")
    command = str(script) if script.exists() else shutil.which("lint-imports")
    assert command, "lint-imports is missing: pip install -e '.[test]' (import-linter)"
    env = {**os.environ, "PYTHONPATH": str(root)}  # these packages, not an installed copy
    return subprocess.run(
        [command, "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layers_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    contracts = (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert contracts >= 5 and f"{contracts} kept, 0 broken" in result.stdout, result.stdout
    for contract in (CONFIGKIT, BENCHMARKS, MODEL, TRAINING, STREAMER):
        assert f"{contract} KEPT" in result.stdout


def _copy_packages(dest: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            dest / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.jpg", "*.png", "*.html"),
        )
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


CONFIGKIT = "configkit (settings machinery) imports nothing else of the project"
BENCHMARKS = "benchmarks are imported only by the command line"
MODEL = "adaattn_video (the model) imports neither streamer nor training"
TRAINING = "training never imports streamer"
STREAMER = "within streamer, only streamer.cli imports training"
# case -> (module, statement put inside a function there, the contract it breaks, the edge shown)
VIOLATIONS = {
    "model imports streamer": (
        "adaattn_video/functional.py",
        "import streamer.zeromq.wire",
        MODEL,
        "adaattn_video.functional -> streamer.zeromq.wire",
    ),
    "model imports training": (
        "adaattn_video/checkpoint.py",
        "from training import config",
        MODEL,
        "adaattn_video.checkpoint -> training",
    ),
    "training imports streamer": (
        "training/pairs.py",
        "from streamer import frames",
        TRAINING,
        "training.pairs -> streamer",
    ),
    "configkit imports the model": (
        "configkit/convert.py",
        "import adaattn_video.config",
        CONFIGKIT,
        "configkit.convert -> adaattn_video.config",
    ),
    "streamer outside cli imports a benchmark": (
        "streamer/pipeline.py",
        "import benchmarks.model_speed",
        BENCHMARKS,
        "streamer.pipeline -> benchmarks.model_speed",
    ),
    "streamer outside cli imports training": (
        "streamer/pipeline.py",
        "import training.config",
        STREAMER,
        "streamer.pipeline -> training.config",
    ),
}


@pytest.mark.parametrize("case", VIOLATIONS, ids=list(VIOLATIONS))
def test_a_forbidden_import_inside_a_function_breaks_the_contract(tmp_path, case) -> None:
    module, statement, contract, edge = VIOLATIONS[case]
    _copy_packages(tmp_path)
    with (tmp_path / module).open("a") as handle:
        handle.write(f"\n\ndef _layer_probe() -> None:\n    {statement}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"{contract} BROKEN" in result.stdout, result.stdout
    assert edge in result.stdout, result.stdout


def test_streamer_cli_may_import_training() -> None:
    """The allowed edge exists today (so the exemption is not vacuous) and is inside functions."""
    text = (ROOT / "streamer" / "cli" / "training_commands.py").read_text()
    assert "\n    from training." in text

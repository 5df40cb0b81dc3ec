"""``bench fidelity`` and the CPU clock of ``bench model`` (tiny sizes, real models)."""

from __future__ import annotations

import json
import math

import pytest

from streamer.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bench_fidelity_prints_and_writes_one_row_per_model_and_precision(tmp_path, capsys):
    report = tmp_path / "fidelity.json"
    argv = ["bench", "fidelity", "--models", "video", "--precision", "bf16", "fp32"]
    assert main([*argv, "--size", "48", "--device", "cpu", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| video | bf16 |" in out and "PSNR vs fp32" in out
    rows = json.loads(report.read_text())
    assert [(r["variant"], r["resolved"]) for r in rows] == [("video", "bf16"), ("video", "fp32")]
    bf16, fp32 = rows
    assert fp32["psnr_db"] == math.inf and fp32["max_abs"] == 0  # fp32 against itself
    assert 20.0 < bf16["psnr_db"] < math.inf and bf16["max_abs"] > 0  # bf16 rounds somewhere


@pytest.mark.slow
def test_bench_model_cpu_clock(capsys):
    argv = ["bench", "model", "--sizes", "48x32", "--style-size", "32", "--large-style-size", "0"]
    argv += ["--repeats", "1", "--warmup", "0", "--device", "cpu", "--no-reference"]
    assert main([*argv, "--clock", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "cpu clock" in out and "| ours" in out and "| conv-only" in out
    with pytest.raises(SystemExit):  # argparse refuses it
        main([*argv, "--clock", "sundial"])

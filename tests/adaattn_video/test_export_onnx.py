"""ONNX export of the video model, run with onnxruntime against PyTorch (float32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.numeric import FP32_REORDER_TOLERANCE

from adaattn_video.export_onnx import (
    OnnxVideoModel,
    export_onnx,
    style_graph_path,
)
from streamer.cli import main

pytest.importorskip("onnxruntime", reason="pip install -e '.[onnx]'")
pytest.importorskip("onnxscript", reason="pip install -e '.[onnx]'")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "video.onnx"
    files = export_onnx(model, path)
    return model, files


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 48, 64), (2, 36, 52)])
def test_onnxruntime_matches_pytorch_at_any_size(exported, batch, height, width) -> None:
    """Sizes other than the traced one (64x80) and another batch: the graph is dynamic."""
    model, files = exported
    generator = torch.Generator().manual_seed(height)
    content = torch.rand(batch, 3, height, width, generator=generator)
    style = torch.rand(1, 3, 40, 44, generator=generator)
    with torch.inference_mode():
        state = model.encode_style(style)
        reference = model.stylize(content, [state], alpha=0.7).numpy()
    session = OnnxVideoModel(files.frame)
    sums = session.encode_style(style.numpy())
    np.testing.assert_allclose(sums[0], state[0].weight.numpy(), atol=1e-5, rtol=1e-4)
    out = session.stylize(content.numpy(), sums, alpha=0.7)
    diff = float(np.abs(out - reference).max())
    print(f"onnxruntime vs PyTorch, {batch}x{height}x{width}: max abs diff {diff:.2e}")
    assert out.shape == reference.shape
    assert diff < FP32_REORDER_TOLERANCE
    # One file serves every style: another style's sums give another picture.
    other = session.encode_style(np.random.default_rng(0).random((1, 3, 32, 32), np.float32))
    assert np.abs(session.stylize(content.numpy(), other) - out).max() > 1e-2


def test_cli_exports_both_graphs_and_refuses_to_overwrite(tmp_path, capsys) -> None:
    output = tmp_path / "m.onnx"
    assert main(["export", "onnx", "--untrained", "-o", str(output)]) == 0
    assert output.is_file() and style_graph_path(output).is_file()
    assert main(["export", "onnx", "--untrained", "-o", str(output)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_missing_extra_is_one_line_with_the_install_command(monkeypatch, tmp_path, capsys) -> None:
    """A machine without onnxruntime cannot be made here: the lookup is patched to fail."""
    import adaattn_video.export_onnx as export

    monkeypatch.setattr(export, "_has", lambda module: module != "onnxscript")
    assert main(["export", "onnx", "--untrained", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "stylestream: error: ONNX export needs onnxscript, which is not installed: "
        "pip install -e '.[onnx]'"
    ]

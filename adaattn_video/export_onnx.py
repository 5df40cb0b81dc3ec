"""Export the video model to ONNX: one frame graph that serves every style, and a style graph.

* ``model.onnx``: ``content`` (B, 3, H, W) float32 RGB in [0, 1] (H, W multiples of 4, any
  size), ``style_weight`` (1, 449, 513) and ``style_center`` (1, 1, 256) (a style's
  :class:`~adaattn_video.attention.CosineStyleSums`), ``alpha`` (1,) content strength
  -> ``stylized`` (B, 3, H, W) float32, not clamped.
* ``model-style.onnx`` (beside it): ``style`` (1, 3, Hs, Ws) float32 in [0, 1] (multiples of 4)
  -> ``style_weight``, ``style_center``. Run it once per style; feed its outputs to every frame.

Because the style enters as sums, one frame graph serves every style (and a weighted mix of
styles is the same weighted mix of their sums' outputs, so mixes are a caller's loop). Float32
throughout: the reduced-precision paths are PyTorch's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from adaattn_video.attention import CosineStyleSums
from adaattn_video.errors import StylestreamError
from adaattn_video.model import StyleTransferModel, VideoAdaAttN, _key_taps

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e '.[onnx]'"
OPSET = 18


class OnnxUnavailableError(StylestreamError, ImportError):
    """onnx / onnxruntime / onnxscript are not installed."""


class OnnxExportError(StylestreamError, ValueError):
    """The model cannot be exported (a model other than the cosine video model)."""


def require_onnx(*modules: str) -> None:
    """Raise a one-line :class:`OnnxUnavailableError` naming the install command when any of
    ``modules`` (default: onnx, onnxscript, onnxruntime) is missing."""
    missing = [m for m in modules or ("onnx", "onnxscript", "onnxruntime") if not _has(m)]
    if missing:
        raise OnnxUnavailableError(
            f"ONNX export needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}"
        )


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class FrameGraph(nn.Module):
    """What ``model.onnx`` computes: :meth:`VideoAdaAttN.stylize` for one style whose sums are
    inputs (see the module docstring for shapes)."""

    def __init__(self, model: VideoAdaAttN) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, content: Tensor, style_weight: Tensor, style_center: Tensor, alpha: Tensor
    ) -> Tensor:
        model = self.model
        taps = model.encoder(content)
        sums = CosineStyleSums(
            weight=style_weight, center=style_center, count=style_weight[:, :1, :1]
        )
        stylized = model.transformer.forward_taps(
            taps["relu3_1"], _key_taps(taps, "relu3_1"), sums, torch.float32
        )
        mixed = alpha * stylized + (1.0 - alpha) * taps["relu3_1"]
        return model.decoder(mixed)


class StyleGraph(nn.Module):
    """What ``model-style.onnx`` computes: a style image -> its sums (weight, center)."""

    def __init__(self, model: VideoAdaAttN) -> None:
        super().__init__()
        self.model = model

    def forward(self, style: Tensor) -> tuple[Tensor, Tensor]:
        (sums,) = self.model.encode_style(style)
        return sums.weight, sums.center


@dataclass(frozen=True)
class OnnxFiles:
    frame: Path
    style: Path


def style_graph_path(frame_path: str | Path) -> Path:
    """``model.onnx`` -> ``model-style.onnx``."""
    path = Path(frame_path)
    return path.with_name(f"{path.stem}-style{path.suffix or '.onnx'}")


def _check_model(model: StyleTransferModel) -> VideoAdaAttN:
    if not isinstance(model, VideoAdaAttN) or model.transformer.kind != "cosine":
        raise OnnxExportError(
            "ONNX export supports the video model with cosine attention (the per-style sums "
            f"are its inputs); got {type(model).__name__} with {model.config.attention} attention"
        )
    return model


def export_onnx(model: StyleTransferModel, output: str | Path, *, size: int = 64) -> OnnxFiles:
    """Write the frame graph to ``output`` and the style graph beside it (see module docstring).

    ``size`` is the side of the example inputs used for tracing; height and width stay dynamic
    (multiples of 4) in both graphs, and so does the batch of the frame graph.
    """
    require_onnx("onnx", "onnxscript")
    video = _check_model(model)
    video = video.eval().set_compute_dtype(torch.float32)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    style = torch.rand(1, 3, size, size, generator=generator)
    content = torch.rand(2, 3, size, size + 16, generator=generator)
    with torch.no_grad():
        (sums,) = video.encode_style(style)
    dim = torch.export.Dim
    h, w = dim("height_4", min=4, max=4096), dim("width_4", min=4, max=4096)
    batch = dim("batch", min=1, max=1024)
    frame_inputs = (content, sums.weight, sums.center, torch.ones(1))
    _export(
        FrameGraph(video).eval(),
        frame_inputs,
        output,
        input_names=["content", "style_weight", "style_center", "alpha"],
        output_names=["stylized"],
        dynamic_shapes={
            "content": {0: batch, 2: 4 * h, 3: 4 * w},
            "style_weight": None,
            "style_center": None,
            "alpha": None,
        },
    )
    style_path = style_graph_path(output)
    sh, sw = dim("style_height_4", min=4, max=4096), dim("style_width_4", min=4, max=4096)
    _export(
        StyleGraph(video).eval(),
        (style,),
        style_path,
        input_names=["style"],
        output_names=["style_weight", "style_center"],
        dynamic_shapes={"style": {2: 4 * sh, 3: 4 * sw}},
    )
    return OnnxFiles(output, style_path)


def _export(
    module: nn.Module,
    inputs: tuple[Tensor, ...],
    path: Path,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: dict,
) -> None:
    tmp = path.with_name(path.name + ".partial")
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            module,
            inputs,
            dynamo=True,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    try:
        program.save(str(tmp), external_data=False)
        tmp.replace(path)  # never a half-written model under the final name
    except BaseException:
        tmp.unlink(missing_ok=True)  # nor a partial file beside it
        raise
    log.info("wrote %s", path)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's libraries log every optimisation pass at INFO: keep them to warnings."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class OnnxVideoModel:
    """The exported graphs run with onnxruntime on the CPU: ``encode_style`` once per style,
    ``stylize`` per batch of frames ((B, 3, H, W) float32 in [0, 1], numpy)."""

    def __init__(self, frame_path: str | Path, *, threads: int | None = None) -> None:
        require_onnx("onnxruntime")
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        self.frame = ort.InferenceSession(str(frame_path), options, providers=providers)
        self.style = ort.InferenceSession(
            str(style_graph_path(frame_path)), options, providers=providers
        )

    def encode_style(self, style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weight, center = self.style.run(None, {"style": style.astype(np.float32)})
        return weight, center

    def stylize(
        self, content: np.ndarray, style: tuple[np.ndarray, np.ndarray], alpha: float = 1.0
    ) -> np.ndarray:
        weight, center = style
        (out,) = self.frame.run(
            None,
            {
                "content": content.astype(np.float32),
                "style_weight": weight,
                "style_center": center,
                "alpha": np.array([alpha], np.float32),
            },
        )
        return out


@dataclass(frozen=True)
class EngineTimes:
    """Per-frame milliseconds (best of the rounds) of both engines on the same frame, fp32."""

    size: tuple[int, int]  # (height, width)
    pytorch_ms: float
    onnxruntime_ms: float
    max_abs_diff: float


def compare_engines(
    model: VideoAdaAttN,
    frame_path: str | Path,
    size: tuple[int, int] = (360, 640),
    *,
    repeats: int = 3,
    threads: int | None = None,
) -> EngineTimes:
    """Time PyTorch (float32, channels-last, as the stylizer runs it) and onnxruntime on the
    same frame and style, taking turns in every round, and give their largest difference."""
    threads = threads or torch.get_num_threads()
    session = OnnxVideoModel(frame_path, threads=threads)
    generator = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, *size, generator=generator)
    style = torch.rand(1, 3, 256, 256, generator=generator)
    model = model.eval().set_compute_dtype(torch.float32, channels_last=True)
    with torch.inference_mode():
        state = model.encode_style(style)
    ort_style = session.encode_style(style.numpy())
    content_np = content.numpy()
    best = {"pytorch": float("inf"), "onnxruntime": float("inf")}
    outputs: dict[str, np.ndarray] = {}
    for round_index in range(repeats + 1):  # the first round warms up
        for name in best:
            start = time.perf_counter()
            if name == "pytorch":
                with torch.inference_mode():
                    out = model.stylize(content, [state]).numpy()
            else:
                out = session.stylize(content_np, ort_style)
            elapsed = (time.perf_counter() - start) * 1000.0
            outputs[name] = out
            if round_index:
                best[name] = min(best[name], elapsed)
    diff = float(np.abs(outputs["pytorch"] - outputs["onnxruntime"]).max())
    return EngineTimes(size, best["pytorch"], best["onnxruntime"], diff)

"""The warping error on clips whose answer is known: synthetic pans and zooms
over a bundled photo give exact flow; DIS is checked against it; real MP4s and frame folders
are read back; and ``stylestream eval`` runs end to end on an untrained model."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers.cli import main_error

from adaattn_video.assets import DEFAULT_CONTENT, DEFAULT_STYLE
from adaattn_video.errors import StylestreamError
from adaattn_video.image_io import read_image, write_image
from streamer.cli.clips import ClipReadError, read_clip
from training.evaluate import (
    check_metric,
    estimate_motion,
    evaluate,
    synthetic_clip,
    warping_error,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return read_image(DEFAULT_CONTENT).permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def pan(photo: np.ndarray):
    """12 frames 64x64, the camera moving exactly 2 px right per frame."""
    return synthetic_clip(photo, frames=12, size=(64, 64), motion="pan", speed=2.0)


def test_static_clip_has_zero_error(photo: np.ndarray) -> None:
    frames, exact = synthetic_clip(photo, frames=6, size=(64, 64), motion="static")
    assert all(np.array_equal(f, frames[0]) for f in frames)
    assert warping_error(frames, exact) == 0.0
    estimated = estimate_motion(frames)
    assert estimated.valid_fraction == 1.0
    assert warping_error(frames, estimated) == 0.0


def test_integer_pan_is_an_exact_shift_with_exact_flow(pan) -> None:
    frames, exact = pan
    np.testing.assert_array_equal(frames[1][:, :-2], frames[0][:, 2:])
    np.testing.assert_array_equal(exact.flows[0][..., 0], np.full((64, 64), 2.0, np.float32))
    np.testing.assert_array_equal(exact.flows[0][..., 1], np.zeros((64, 64), np.float32))
    # The two columns entering on the right have no source in the previous frame.
    assert not exact.masks[0][:, -2:].any() and exact.masks[0][:, :-2].all()
    assert warping_error(frames, exact) == 0.0


def test_known_shift_gives_the_known_error(pan) -> None:
    frames, exact = pan
    step = 0.03  # every frame 0.03 brighter than the one before: E_warp must be exactly 0.03
    outputs = (
        frames.astype(np.float32) / 255.0
        + step * np.arange(12, dtype=np.float32)[:, None, None, None]
    )
    assert warping_error(outputs, exact) == pytest.approx(step, abs=1e-6)
    # With the flow DIS estimates instead: sub-pixel flow error on a textured photo moves the
    # result by well under a grey level.
    assert warping_error(outputs, estimate_motion(frames)) == pytest.approx(step, abs=2e-3)


def test_flickering_clip_scores_worse_than_a_stable_one(pan) -> None:
    frames, _ = pan
    motion = estimate_motion(frames)
    rng = np.random.default_rng(0)
    stable = frames.astype(np.float32) / 255.0
    flicker = np.clip(stable + rng.uniform(-0.08, 0.08, (12, 1, 1, 1)).astype(np.float32), 0, 1)
    assert warping_error(flicker, motion) > 5 * warping_error(stable, motion) + 0.01


@pytest.mark.parametrize(("motion", "max_epe"), [("pan", 0.25), ("zoom", 0.5)])
def test_dis_recovers_known_motion(photo: np.ndarray, motion: str, max_epe: float) -> None:
    # speed 1.5: a sub-pixel motion, where the estimator is least exact
    result = check_metric(photo, motion=motion, frames=6, size=(96, 96), speed=1.5)  # type: ignore[arg-type]
    assert result["flow_epe_px"] < max_epe
    assert result["valid_fraction_dis"] > 0.85
    # The input's own error is the floor: resampling only (sub-pixel pan, zoom), a few grey levels.
    assert result["input_error_exact"] < 0.02
    assert abs(result["input_error_dis"] - result["input_error_exact"]) < 0.005


def test_occlusion_mask_rejects_inconsistent_flow(pan) -> None:
    frames, _ = pan
    motion = estimate_motion(frames)
    mask = motion.masks[0]
    assert mask.mean() > 0.9
    assert mask[:, -1].mean() < 0.5, "pixels entering the view cannot be valid"


def test_wrong_frame_count_is_an_error(pan) -> None:
    frames, exact = pan
    with pytest.raises(ValueError, match="expected 12 frames"):
        warping_error(frames[:5], exact)


# -- reading clips ---------------------------------------------------------------------------------
def write_mp4(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "0"}  # lossless: the frames come back (up to YUV rounding)
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_read_clip_from_mp4_and_frame_folder(tmp_path: Path, pan) -> None:
    frames, _ = pan
    write_mp4(tmp_path / "clip.mp4", frames)
    decoded = read_clip(tmp_path / "clip.mp4")
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # Tolerance: RGB -> YUV -> RGB rounding of a lossless H.264 stream, a few levels at most.
    assert np.abs(decoded.astype(int) - frames).max() <= 6
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):  # natural order: 2 before 10
        write_image(folder / f"frame{i}.png", torch.from_numpy(frame).permute(2, 0, 1).contiguous())
    from_folder = read_clip(folder, max_frames=11, size=(32, 48))
    assert from_folder.shape == (11, 32, 48, 3)
    np.testing.assert_array_equal(read_clip(folder)[10], frames[10])


def test_read_clip_errors(tmp_path: Path) -> None:
    # Clips are read by the streamer's sources: their one-line errors.
    with pytest.raises(StylestreamError, match="does not exist"):
        read_clip(tmp_path / "missing.mp4")
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(StylestreamError, match=r"broken\.mp4"):
        read_clip(tmp_path / "broken.mp4")
    with pytest.raises(ClipReadError, match="single image"):
        read_clip(DEFAULT_CONTENT)
    single = tmp_path / "single"
    single.mkdir()
    write_image(single / "a.png", read_image(DEFAULT_CONTENT))
    with pytest.raises(ClipReadError, match="at least 2"):
        read_clip(single)


# -- models ----------------------------------------------------------------------------------------
def test_evaluate_reports_input_and_models(model, pan) -> None:
    frames, exact = pan
    report = evaluate(
        frames[:5], _first(exact, 4), {"untrained": model}, [str(DEFAULT_STYLE)], clip_name="pan"
    )
    assert [r.model for r in report.rows] == ["input", "untrained"]
    assert report.rows[0].warping_error == 0.0
    row = report.rows[1]
    assert row.style == DEFAULT_STYLE.name and row.fps is not None and row.fps > 0
    assert 0.0 < row.warping_error < 1.0
    assert json.loads(report.to_json())["rows"][1]["model"] == "untrained"
    table = report.table()
    assert "untrained" in table and "warp err" in table


def _first(motion, pairs: int):
    from training.evaluate import ClipMotion

    return ClipMotion(motion.flows[:pairs], motion.masks[:pairs], motion.source)


@pytest.mark.slow
def test_eval_command_on_a_synthetic_clip(tmp_path: Path, capsys) -> None:
    from streamer.cli import main

    out = tmp_path / "report.json"
    code = main(
        ["eval", "--synthetic", "pan", "--frames", "4", "--size", "64x64", "--untrained", "video",
         "--style-size", "64", "--allow-random-encoder", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "metric check" in printed and "untrained-video" in printed
    data = json.loads(out.read_text())
    assert data["flow"] == "exact" and data["frames"] == 4
    assert data["metric_check"]["flow_epe_px"] < 0.1
    model_row = data["rows"][1]
    assert model_row["style_loss"] > 0 and model_row["content_loss"] > 0


def test_eval_command_bad_clip_is_one_line(tmp_path: Path, capsys) -> None:
    assert "does not exist" in main_error(["eval", str(tmp_path / "nope.mp4")], capsys)
    main_error(["eval"], capsys)

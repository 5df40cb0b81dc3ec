"""benchmarks.temporal_modes on a tiny pan-cut clip (real architecture, untrained)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaattn_video.assets import CONTENTS_DIR
from adaattn_video.image_io import read_image
from benchmarks.temporal_modes import long_warping_error, measure_modes, pan_cut_clip, table
from streamer.temporal.options import TemporalOptions

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clip(frames_per_shot: int = 6):
    photos = [
        read_image(CONTENTS_DIR / name).permute(1, 2, 0).numpy()
        for name in ("tubingen.jpg", "bird.jpg")
    ]
    return pan_cut_clip(photos, size=(48, 64), frames_per_shot=frames_per_shot, speed=2.0)


def test_the_clip_has_exact_motion_and_excludes_the_cut() -> None:
    clip = _clip()
    assert clip.frames.shape == (12, 48, 64, 3) and clip.cut == 6
    assert not clip.motion.masks[5].any() and clip.motion.masks[4].any()  # pair (5, 6) is the cut
    # frame t+1 is frame t moved 2 px left: the input's own error is ~0 (integer shift)
    assert long_warping_error(clip.frames, clip) < 1e-6
    shuffled = clip.frames[::-1].copy()
    assert long_warping_error(shuffled, clip) > 0.02


@pytest.mark.slow
def test_rows_for_each_setting(untrained_stylizer) -> None:
    clip = _clip()
    settings = [
        TemporalOptions(),
        TemporalOptions(temporal="flow"),
        TemporalOptions(keyframe_interval=2),
    ]
    rows = measure_modes(clip, untrained_stylizer, settings, style="random")
    assert [(r.model, r.temporal, r.keyframe_interval) for r in rows] == [
        ("input", "-", 1),
        ("video", "off", 1),
        ("video", "flow", 1),
        ("video", "off", 2),
    ]
    source, off, flow, keyed = rows
    assert source.warping_error < 1e-6 and off.psnr_vs_per_frame == math.inf
    assert flow.warping_error < off.warping_error and keyed.warping_error < off.warping_error
    assert 20 < flow.psnr_vs_per_frame < math.inf
    assert keyed.stylized == 6 and keyed.warped == 6 and keyed.resets == 1
    assert all(r.fps > 0 and r.fps_cpu > 0 for r in rows[1:])
    assert all(np.isfinite(r.long_warping_error) for r in rows)
    assert table(rows).count("\n") == len(rows) + 1


@pytest.mark.slow
def test_bench_temporal_command_writes_one_row_per_setting(tmp_path, capsys) -> None:
    import json

    from streamer.cli import command_config, main

    defaults = command_config(["bench", "temporal"])  # the documented run, without flags
    assert (defaults.size, defaults.repeats, defaults.threads) == ((360, 640), 3, 2)
    report = tmp_path / "temporal.json"
    code = main(["bench", "temporal", "--size", "64x48", "--repeats", "1", "--json", str(report)])
    assert code == 0, capsys.readouterr().err
    rows = json.loads(report.read_text())
    assert rows[0]["model"] == "input" and len(rows) >= 5
    assert {"warping_error", "long_warping_error", "psnr_vs_per_frame", "fps"} <= set(rows[1])
    assert "| temporal |" in capsys.readouterr().out


def test_bench_outputs_defaults() -> None:
    from streamer.cli import command_config

    assert command_config(["bench", "outputs"]).seconds == 6.0

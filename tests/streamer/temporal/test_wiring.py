"""Temporal settings in every video path: defaults, presets, resets, serve isolation, eval rows,
bad values (one line, exit 2) and the flow overlapping the model."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.cli import main_error

from adaattn_video.assets import DEFAULT_STYLE
from streamer.cli import command_config, main
from streamer.frames import Frame
from streamer.regions.switch import RegionSwitch
from streamer.temporal.options import TemporalOptions
from streamer.temporal.stylizer import TemporalStylizer
from streamer.zeromq.control.protocol import GetStatus, SetAlpha, SetStyle
from streamer.zeromq.control.targets import get_status, set_alpha, set_style

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STYLE = str(DEFAULT_STYLE)
LIVE = ["live", "--source", "x.mp4", "--untrained", "--style", STYLE]
RENDER = ["render", "in.mp4", "-o", "out.mp4", "--untrained", "--style", STYLE]


def _levers(options: TemporalOptions) -> tuple:
    return options.temporal, options.keyframe_interval, options.work_size


# -- defaults and presets ----------------------------------------------------------------------
def test_documented_defaults_without_the_flags() -> None:
    """docs/temporal.md: flow for render and live; off for serve streams and the studio."""
    assert _levers(command_config(RENDER).render.motion) == ("flow", 1, None)
    assert _levers(command_config(LIVE).live.motion) == ("flow", 1, None)
    assert _levers(command_config(["studio", "--untrained"]).motion) == ("off", 1, None)
    assert command_config(["eval", "--synthetic", "pan"]).temporal == ("off", "flow")
    from streamer.serve.config import StreamSpec

    assert not StreamSpec(name="a", source="x.mp4").motion.active


def test_preset_fast_sets_the_three_and_an_explicit_flag_wins() -> None:
    assert _levers(command_config([*LIVE, "--preset", "fast"]).live.motion) == ("flow", 2, 384)
    explicit = command_config([*LIVE, "--preset", "fast", "--keyframe-interval", "1"])
    assert _levers(explicit.live.motion) == ("flow", 1, 384)
    fast = command_config([*LIVE, "--preset", "fast"]).live.motion
    assert (fast.temporal_flow_preset, fast.temporal_flow_size) == ("fast", 320)
    exact = command_config([*LIVE, "--preset", "fast", "--temporal-flow-preset", "medium"])
    assert exact.live.motion.temporal_flow_preset == "medium"
    steady = command_config([*LIVE, "--preset", "steady"]).live.motion
    assert (steady.temporal_flow_preset, steady.temporal_strength) == ("medium", 0.95)
    off = command_config([*LIVE, "--preset", "steady", "--temporal", "off"])
    assert _levers(off.live.motion) == ("off", 1, None)
    studio = command_config(["studio", "--untrained", "--preset", "fast", "--work-size", "256"])
    assert _levers(studio.motion) == ("flow", 2, 256)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--keyframe-interval", "0"], "keyframe_interval"),
        (["--work-size", "5"], "work_size"),
        (["--temporal", "blur"], "blur"),
    ],
)
@pytest.mark.parametrize("command", ["render", "live", "eval"])
def test_bad_temporal_values_are_one_line(command, extra, needle, capsys) -> None:
    argv = {"render": RENDER, "live": LIVE, "eval": ["eval", "--synthetic", "pan"]}[command]
    assert needle in main_error([*argv, *extra], capsys)


def test_unknown_preset_is_one_line(capsys) -> None:
    assert "unknown preset 'slow'" in main_error([*LIVE, "--preset", "slow"], capsys)


# -- render and live, run without the flag -----------------------------------------------------
def test_render_without_the_flag_runs_flow(tmp_path: Path, untrained_stylizer) -> None:
    from streamer.render import render

    config = command_config(
        ["render", "lavfi:testsrc2=size=64x48:rate=10:duration=0.5", "-o", str(tmp_path / "o/"),
         "--untrained", "--style", STYLE]
    ).render  # fmt: skip
    result = render(config, stylizer=untrained_stylizer, progress=False)
    assert result.temporal is not None and result.temporal.startswith("temporal flow: 5 stylized")
    assert "temporal flow" in result.summary()


def test_live_without_the_flag_runs_flow(tmp_path: Path, untrained_stylizer) -> None:
    from streamer.live import run_live

    config = command_config(
        ["live", "--source", "lavfi:testsrc2=size=64x48:rate=10:duration=0.5", "--untrained",
         "--style", STYLE, "--zmq", "none", "--record", str(tmp_path / "o.mp4"),
         "--status-interval-s", "0"]
    ).live  # fmt: skip
    result = run_live(config, stylizer=untrained_stylizer)
    assert result.temporal is not None and result.temporal["mode"] == "flow"
    assert result.temporal["stylized"] == result.stats.frames_out > 0
    assert "temporal flow" in result.summary()


# -- resets ------------------------------------------------------------------------------------
def _frames(clips, n: int = 3) -> list[np.ndarray]:
    frames, _ = clips.pan(frames=n)
    return list(frames)


def test_style_alpha_and_region_changes_reset_the_state(clips) -> None:
    switch = RegionSwitch(clips.stylizer())
    switch.use_temporal(TemporalOptions(temporal="flow"))
    frames = _frames(clips, 6)
    switch(frames[0])
    switch(frames[1])
    assert switch.temporal.counters.blended == 1 and switch.temporal.counters.resets == 0
    set_style(switch, SetStyle(styles=(STYLE,)))  # set-style mid-stream
    switch(frames[2])
    status = get_status(switch, None, GetStatus())["temporal"]
    assert status["resets"] == 1 and status["mode"] == "flow" and status["blended"] == 1
    set_alpha(switch, SetAlpha(alpha=0.5))
    switch(frames[3])
    switch.clear()  # clear-regions
    switch(frames[4])
    assert switch.temporal.counters.resets == 3 and switch.temporal.counters.blended == 1


def test_a_source_outage_resets_the_state(clips) -> None:
    outages = [0]
    wrapper = TemporalStylizer(
        clips.stylizer(), TemporalOptions(temporal="flow"), watch=lambda: outages[0]
    )
    frames = _frames(clips)
    wrapper(frames[0])
    wrapper(frames[1])
    outages[0] += 1  # the network source lost the stream (and came back)
    wrapper(frames[2])
    assert wrapper.counters.resets == 1 and wrapper.counters.blended == 1


def test_work_size_refuses_regions(clips, tmp_path) -> None:
    from streamer.regions.specs import RegionPlan, RegionSpec
    from streamer.temporal.options import TemporalSettingError

    switch = RegionSwitch(clips.stylizer())
    switch.use_temporal(TemporalOptions(work_size=32))
    with pytest.raises(TemporalSettingError, match="regions"):
        switch.apply(RegionPlan((RegionSpec(style=STYLE, key="green"),)))


# -- serve: one flow stream, one off stream ----------------------------------------------------
def test_serve_streams_keep_their_own_state(model) -> None:
    from adaattn_video.settings import StylizerSpec
    from adaattn_video.stylizer import open_stylizer
    from streamer.serve.config import stream_spec_from_mapping
    from streamer.serve.scheduler import Scheduler
    from streamer.serve.stream import StreamRuntime

    def runtime(name: str, mode: str) -> StreamRuntime:
        spec = stream_spec_from_mapping(
            {"name": name, "source": "lavfi:testsrc2", "style": STYLE, "temporal": mode}
        )
        stylizer_spec = StylizerSpec(styles=(STYLE,), style_size=32, device="cpu")
        return StreamRuntime(spec, RegionSwitch(open_stylizer(stylizer_spec, model=model)), None)

    flow, off = runtime("flow", "flow"), runtime("off", "off")
    assert flow.stylized_alone and not off.stylized_alone
    scheduler = Scheduler(model, torch.device("cpu"), lambda: [flow, off], max_batch=8)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)]
    got_off = []
    for index, image in enumerate(images):
        flow.inbox.put(Frame(index=index, image=image, capture_time_s=time.time()))
        off.inbox.put(Frame(index=index, image=image[::-1].copy(), capture_time_s=time.time()))
        scheduler.run_round()
        got_off.append(off.outbox.get_nowait().image)  # what its writer thread does
        assert flow.outbox.get_nowait() is not None
    reference = open_stylizer(
        StylizerSpec(styles=(STYLE,), style_size=32, device="cpu"), model=model
    )
    for image, out in zip(images, got_off, strict=True):  # no state leaks into the off stream
        assert np.abs(out.astype(int) - reference(image[::-1].copy()).astype(int)).max() <= 1
    counters = flow.status()["temporal"]
    assert counters["mode"] == "flow" and counters["frames"] == 4 and counters["blended"] == 3
    assert off.status()["temporal"]["frames"] == 0
    # the flow stream's memory holds its own last frame only
    last = flow.stylizer.temporal.flow.prepare(images[-1])
    assert np.array_equal(flow.stylizer.temporal.state.previous.gray, last)


# -- eval: one JSON row per value ---------------------------------------------------------------
def test_eval_gives_one_row_per_setting(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    code = main(
        ["eval", "--synthetic", "pan", "--frames", "7", "--size", "48x48", "--untrained", "video",
         "--style-size", "32", "--temporal", "off", "stats", "flow", "--keyframe-interval", "1",
         "2", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["model"] == "input"
    settings = [(r["temporal"], r["keyframe_interval"], r["work_size"]) for r in rows[1:]]
    assert settings == [
        ("off", 1, None), ("off", 2, None), ("stats", 1, None), ("stats", 2, None),
        ("flow", 1, None), ("flow", 2, None),
    ]  # fmt: skip
    fields = ("model", "style", "temporal", "keyframe_interval", "work_size", "warping_error",
              "long_warping_error", "psnr_vs_per_frame", "fps", "mean_abs_diff")  # fmt: skip
    assert all(set(fields) <= set(r) for r in rows[1:])
    plain, *others = rows[1:]
    assert plain["psnr_vs_per_frame"] == float("inf") and plain["mean_abs_diff"] == 0.0
    assert all(0 < r["psnr_vs_per_frame"] < float("inf") and r["fps"] > 0 for r in others)
    flow = rows[5]
    assert flow["warping_error"] < plain["warping_error"]
    assert "PSNR vs pf" in capsys.readouterr().out


# -- the flow runs beside the model ---------------------------------------------------------------
class _SlowInner:
    """A stylizer whose model call takes 50 ms; it records whether the flow ran meanwhile."""

    def __init__(self, wrapper_box: list) -> None:
        self.device = torch.device("cpu")
        self.style_id = "s"
        self.alpha = 1.0
        self.box = wrapper_box
        self.overlapped = 0

    def stylize_tensor(self, content, fit: bool = True):
        start = time.perf_counter()
        time.sleep(0.05)
        flows = [t for t in threading.enumerate() if t.name.startswith("temporal-flow")]
        if flows and self.box[0].flow_busy_since is not None:
            self.overlapped += int(self.box[0].flow_busy_since < start + 0.05)
        return content.clone()


def test_flow_overlaps_the_model_call(clips, monkeypatch) -> None:
    box: list = [None]
    inner = _SlowInner(box)
    wrapper = TemporalStylizer(inner, TemporalOptions(temporal="flow"))
    wrapper.flow_busy_since = None
    original = wrapper.flow.motion

    def timed_motion(target, reference):
        wrapper.flow_busy_since = time.perf_counter()
        assert threading.current_thread().name.startswith("temporal-flow")
        return original(target, reference)

    monkeypatch.setattr(wrapper.flow, "motion", timed_motion)
    box[0] = wrapper
    for frame in _frames(clips, 4):
        wrapper(frame)
    wrapper.close()
    assert inner.overlapped >= 2  # the flow of frames 2.. started while the model ran

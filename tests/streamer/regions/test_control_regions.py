"""Regions replaced while a stream runs: ``set-regions`` / ``clear-regions`` on ``live``'s
control endpoint (real REQ/REP and PUB/SUB on loopback, the real untrained model on tiny
frames, a paced synthetic source with a chroma-key patch) and the request checks (refused with
a reason, nothing changed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import main_error
from helpers.live_helpers import LiveRun, PatternSource, receive_until
from helpers.media import write_contrast_styles
from helpers.network import ANY_PORT
from hypothesis import given, settings
from hypothesis import strategies as st

from adaattn_video.settings import StylizerSpec
from adaattn_video.stylizer import FrameStylizer, StylizerConfig
from streamer.cli import main
from streamer.live import LiveConfig
from streamer.regions.specs import RegionSpec
from streamer.temporal.options import TemporalOptions
from streamer.zeromq.control import (
    ClearRegions,
    ControlError,
    ControlRequestError,
    SetRegions,
    parse_request,
    send_command,
)
from streamer.zeromq.publisher import PublishOptions
from streamer.zeromq.subscriber import Subscriber

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEIGHT, WIDTH = 48, 96
GREEN = (0, 177, 64)


@pytest.fixture(scope="module")
def styles(tmp_path_factory) -> dict[str, str]:
    """Two very different small styles (warm stripes, cold noise) and a left-half mask."""
    return write_contrast_styles(tmp_path_factory.mktemp("styles"), (HEIGHT, WIDTH))


def _plain(model, style: str) -> FrameStylizer:
    stylizer = FrameStylizer(model, StylizerConfig(device="cpu"))
    stylizer.set_style(style)
    return stylizer


class GreenLeftSource(PatternSource):
    """A paced live source: grey with a red ramp that shifts every frame (nowhere near the key
    colour) and a left half in the green key colour."""

    def image(self, index: int) -> np.ndarray:
        image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
        image[..., 0] = (np.linspace(60, 200, WIDTH) + 3 * (index % 16))[None, :].astype(np.uint8)
        image[:, : WIDTH // 2] = GREEN
        return image


def assert_split(frame: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
    """The left quarter looks like ``left``, the right quarter like ``right`` (and not like
    the other one): the middle is left out, it is within the decoder's reach of the edge."""
    frame = frame.astype(float)
    for part, match, other in ((slice(0, 24), left, right), (slice(72, WIDTH), right, left)):
        near = np.abs(frame[:, part] - match[:, part].astype(float)).mean()
        far = np.abs(frame[:, part] - other[:, part].astype(float)).mean()
        assert near < 3 and far > 3 * near, (near, far)


def _raw_set_regions(specs: list[RegionSpec]) -> dict:
    """A set-regions request that skips the client's checks (the server's are tested)."""
    return {"command": "set-regions", "regions": [spec.as_dict() for spec in specs]}


def test_set_regions_and_clear_regions_on_a_running_live_stream(
    model, styles: dict[str, str], tmp_path: Path, capsys
) -> None:
    source = GreenLeftSource(size=(HEIGHT, WIDTH), fps=20)
    config = LiveConfig(
        "synthetic", stylizer=StylizerSpec(styles=(styles["warm"],), device="cpu"), zmq=ANY_PORT,
        publish=PublishOptions(encoding="rgb24", send_hwm=64), control=ANY_PORT, status_interval_s=0,
        motion=TemporalOptions(temporal="off"),  # frames compared with per-frame stylizations
    )  # fmt: skip
    run = LiveRun(config, stylizer=_plain(model, styles["warm"]), source=source)
    keyed_label = "warm|regions:cold"
    try:
        control = run.endpoints["control"]
        with Subscriber(run.endpoints["zmq"], receive_timeout_s=10.0, receive_hwm=64) as sub:
            plain = receive_until(sub, lambda fs: len(fs) >= 2)
            assert send_command(control, {"command": "get-status"})["regions"] == []

            # set-regions over the command line (a run started without regions takes them)
            code = main(["control", control, "set-regions", "--region",
                         f"style={styles['cold']},key=green"])  # fmt: skip
            out = capsys.readouterr().out
            assert code == 0 and f"regions set to cold (style id {keyed_label})" in out, out
            switched = time.time()
            keyed = receive_until(
                sub, lambda fs: sum(f.header.capture_time > switched for f in fs) >= 3
            )

            # bad requests are refused with a reason; the regions stay as they were
            before = send_command(control, {"command": "get-status"})
            too_many = [RegionSpec(style=styles["cold"], key="green")] * 17
            sequence = [RegionSpec(style=styles["cold"], mask=str(tmp_path / "m.mp4"))]
            for specs, reason in ((too_many, "at most 16"), (sequence, "sequence")):
                with pytest.raises(ControlRequestError, match=reason):  # checked before sending
                    SetRegions.from_specs(specs)
            refused = [
                (SetRegions.from_specs([RegionSpec(style=styles["cold"],
                                                 mask=str(tmp_path / "no.png"))]).to_json(), "no.png"),
                (_raw_set_regions(too_many), "at most 16"),
                (_raw_set_regions(sequence), "sequence"),
                ({"command": "set-regions", "regions": "style=a.png,key=green"}, "a list"),
                ({"command": "set-regions", "regions": [{"style": styles["cold"],
                                                         "colour": "red"}]}, "unknown key"),
                ({"command": "set-regions", "regions": [{"style": "cold.png", "key": "green"}]},
                 "absolute path"),
                ({"command": "set-regions", "regions": [{"style": styles["cold"],
                                                         "key": "green"}], "uncovered": "x"},
                 "uncovered"),
            ]  # fmt: skip
            for request, reason in refused:
                with pytest.raises(ControlError, match=reason):
                    send_command(control, request)
            after = send_command(control, {"command": "get-status"})
            assert (
                after["regions"] == before["regions"] == [{"style": styles["cold"], "key": "green"}]
            )
            assert after["style_id"] == keyed_label and after["uncovered"] == "style"
            refused_at = time.time()
            still = receive_until(
                sub, lambda fs: sum(f.header.capture_time > refused_at for f in fs) >= 2
            )

            reply = send_command(control, {"command": "clear-regions"})
            assert reply["regions"] == [] and reply["style_id"] == "warm"
            cleared = time.time()
            back = receive_until(
                sub, lambda fs: sum(f.header.capture_time > cleared for f in fs) >= 3
            )
    finally:
        result = run.stop()

    labels = [f.header.style_id for f in plain + keyed + still + back]
    assert labels[0] == "warm" and keyed_label in labels
    assert all(f.header.style_id == keyed_label for f in keyed if f.header.capture_time > switched)
    assert all(
        f.header.style_id == keyed_label for f in still if f.header.capture_time > refused_at
    )
    assert all(f.header.style_id == "warm" for f in back if f.header.capture_time > cleared)
    assert result.stats.frames_out >= len(labels)

    # Every label is the truth: keyed frames show the cold style where the key is (left) and
    # the warm default elsewhere; plain frames are warm everywhere.
    warm, cold = _plain(model, styles["warm"]), _plain(model, styles["cold"])
    checked = {"keyed": 0, "plain": 0}
    for frame in plain + keyed + still + back:
        image = source.image(frame.header.index)
        if frame.header.style_id == keyed_label:
            assert_split(frame.image, cold(image), warm(image))
            checked["keyed"] += 1
        else:
            assert np.abs(frame.image.astype(int) - warm(image).astype(int)).max() <= 1
            checked["plain"] += 1
    assert checked["keyed"] >= 3 and checked["plain"] >= 4, checked


def test_set_regions_requests_are_checked_before_anything_is_read(tmp_path: Path) -> None:
    ok = parse_request(
        json.dumps(
            {"command": "set-regions", "uncovered": "content",
             "regions": [{"style": "/s/a.png", "key": "#00ff00", "tolerance": 12},
                         "style=/s/b.png,mask=/m/p.png,invert=1"]}
        )
    )  # fmt: skip
    assert isinstance(ok, SetRegions) and ok.plan.uncovered == "content"
    assert ok.plan.regions[0].tolerance == 12.0 and ok.plan.regions[1].invert is True
    assert parse_request({"command": "clear-regions"}) == ClearRegions()
    for request, reason in (
        ({"command": "set-regions", "regions": []}, "needs 'regions'"),
        ({"command": "set-regions", "regions": [{"mask": "/m.png"}]}, "has no style"),
        ({"command": "set-regions", "regions": [{"style": "/a.png", "key": "purple"}]},
         "key colour"),
        ({"command": "set-regions", "regions": [{"style": "/a.png", "mask": "/f/%04d.png"}]},
         "sequence"),
        ({"command": "set-regions", "regions": [{"style": "/a\x00.png", "key": "green"}]},
         "must not contain control characters"),
        ({"command": "set-regions", "regions": [{"style": "/a.png", "key": "green",
                                                 "invert": "maybe"}]}, "invert"),
    ):  # fmt: skip
        with pytest.raises(ControlRequestError, match=reason):
            parse_request(request)


def test_control_set_regions_mistakes_are_one_line_before_sending(
    styles: dict[str, str], tmp_path: Path, capsys
) -> None:
    # no server at this endpoint: the mistakes are found before anything is sent
    endpoint = "tcp://127.0.0.1:9"
    for argv, reason in (
        (["--region", f"style={styles['cold']},mask={tmp_path / 'no.png'}"], "no.png"),
        (["--region", f"style={styles['cold']},mask={tmp_path / 'clip.mp4'}"], "sequence"),
        (["--region", f"style={styles['cold']},colour=red"], "unknown key"),
    ):
        assert reason in main_error(["control", endpoint, "set-regions", *argv], capsys)


def test_a_change_landing_during_a_call_restylizes_so_the_label_is_exact(
    model, styles: dict[str, str]
) -> None:
    import dataclasses

    import torch

    from streamer.regions.specs import RegionPlan
    from streamer.regions.switch import RegionSwitch

    switch = RegionSwitch(
        _plain(model, styles["warm"]), RegionPlan((RegionSpec(style=styles["cold"], key="green"),))
    )
    regional, _ = switch._regional
    calls = []

    def mask(content: torch.Tensor, first_index: int) -> torch.Tensor:
        calls.append(first_index)
        if len(calls) == 1:  # clear-regions arrives while the first call runs
            switch.clear()
        return torch.ones_like(content[:, :1])

    regional.set_regions([dataclasses.replace(regional.regions[0], mask=mask)])
    image = GreenLeftSource(size=(HEIGHT, WIDTH)).image(0)
    out, label, retries = switch.stylize_labelled(torch.from_numpy(image)[None])
    assert (label, retries, len(calls)) == ("warm", 1, 1)
    expected = _plain(model, styles["warm"])(image)
    assert np.abs(out[0].numpy().astype(int) - expected.astype(int)).max() <= 1
    assert switch.regions_status() == {"regions": [], "uncovered": None}


_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.lists(st.integers(), max_size=3)
)


def _mostly(good: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` 3 times in 4, else any JSON-ish value."""
    return st.integers(0, 3).flatmap(lambda i: good if i else _values)


_region = st.fixed_dictionaries(
    {"style": _mostly(st.sampled_from(["/s/a.png", "/s/b.png", "a.png", ""]))},
    optional={
        "mask": _mostly(st.sampled_from(["/m/p.png", "/m/%04d.png", "/m/clip.mp4", "p.png"])),
        "key": _mostly(st.sampled_from(["green", "#00ff00", "purple"])),
        "tolerance": _mostly(st.floats(0, 100)),
        "invert": _mostly(st.sampled_from([True, "1", "maybe"])),
        "style_mask": _mostly(st.sampled_from(["/s/m.png", "m.png"])),
        "colour": _values,
    },
)
_regions = st.lists(_mostly(_region), max_size=18)


@settings(max_examples=300, deadline=None)
@given(_regions, _mostly(st.sampled_from(["style", "content", None])))
def test_set_regions_parser_on_random_regions(regions, uncovered) -> None:
    """Whatever arrives: ControlRequestError or a plan within the limits (absolute paths, at
    most 16 regions, no mask sequence)."""
    request = {"command": "set-regions", "regions": regions, "uncovered": uncovered}
    try:
        parsed = parse_request(json.dumps(request, allow_nan=True))
    except ControlRequestError:
        return
    assert isinstance(parsed, SetRegions) and 1 <= len(parsed.plan.regions) <= 16
    for spec in parsed.plan.regions:
        assert all(Path(path).is_absolute() for path in spec.paths)
        assert not spec.is_sequence
    assert parse_request(json.dumps(parsed.to_json())) == parsed  # the wire keeps the plan

"""Regions end to end: mask sources, ``--region`` parsing, a mask video driving a real render
frame by frame (checked on the decoded output), chroma keys, and bad masks as one error line
with nothing written. Real files, the real (untrained, tiny) model."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers.cli import main_error
from helpers.media import frame_arrays, write_contrast_styles
from PIL import Image

from adaattn_video.masked_attention import RegionError
from adaattn_video.region_stylizer import RegionStylizer
from adaattn_video.settings import StylizerSpec
from adaattn_video.stylizer import FrameStylizer, StylizerConfig
from streamer.cli import main
from streamer.cli.region_options import parse_region, parse_regions
from streamer.cli.values import OptionValueError
from streamer.frames import Frame, FrameSource, SourceCounters, SourceInfo
from streamer.regions.masks import ChromaKeyMask, MaskError, StillMask, count_frames
from streamer.regions.specs import RegionPlan, RegionSpec
from streamer.render import RenderConfig, render
from streamer.temporal.options import TemporalOptions

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEIGHT, WIDTH = 48, 96


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 12) -> Path:
    """H.264 (yuv444p, near-lossless) from (H, W, 3) uint8 RGB frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "1"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def _write_png(path: Path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def _split_mask(boundary: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """White left of ``boundary`` (RGB)."""
    mask = np.zeros((height, width, 3), np.uint8)
    mask[:, :boundary] = 255
    return mask


@pytest.fixture(scope="module")
def styles(tmp_path_factory) -> tuple[str, str]:
    """Two very different small styles: warm smooth stripes and cold noise."""
    paths = write_contrast_styles(tmp_path_factory.mktemp("styles"))
    return paths["warm"], paths["cold"]


@pytest.fixture(scope="module")
def stylizer(model, styles) -> FrameStylizer:
    stylizer = FrameStylizer(model, StylizerConfig(device="cpu"))
    stylizer.set_style(styles[0])
    return stylizer


# -- parsing ----------------------------------------------------------------------------------
def test_region_strings_and_yaml_mappings_parse_the_same() -> None:
    flag = parse_region("style=wave.jpg,mask=person.png,invert=1")
    (mapping,) = parse_regions([{"style": "wave.jpg", "mask": "person.png", "invert": True}])
    assert flag == mapping == RegionSpec(style="wave.jpg", mask="person.png", invert=True)
    keyed = parse_region("style=a.jpg,key=#00FF00,tolerance=12.5,style-mask=part.png")
    assert (keyed.key, keyed.tolerance, keyed.style_mask) == ("#00FF00", 12.5, "part.png")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("style=a.jpg,mask=m.png,colour=red", "unknown key 'colour'"),
        ("style=a.jpg,mask", "expected KEY=VALUE"),
        ("style=a.jpg,mask=m.png,invert=maybe", "invert must be 1/0"),
        ("style=a.jpg,key=green,tolerance=x", "tolerance must be a number"),
        ("style=a.jpg", "exactly one of mask=FILE"),
        ("style=a.jpg,mask=m.png,key=green", "exactly one of mask=FILE"),
        ("mask=m.png", "has no style"),
        ("style=a.jpg,key=purple", "key colour 'purple'"),
        ([["style", "a.jpg"]], "expected style=...,mask=... or a mapping"),
    ],
)
def test_bad_region_values_are_one_clear_error(value, message) -> None:
    with pytest.raises((OptionValueError, RegionError, MaskError), match=message):
        parse_regions(value if isinstance(value, list) else [value])


# -- mask sources -----------------------------------------------------------------------------
def test_still_mask_is_resized_to_the_frame_and_inverted(tmp_path) -> None:
    path = _write_png(tmp_path / "m.png", _split_mask(8, 12, 16)[..., 0])
    content = torch.zeros(2, 3, 24, 32)
    mask = StillMask(path)(content, 0)
    assert mask.shape == (1, 1, 24, 32)
    assert float(mask[..., :, :15].min()) == 1.0 and float(mask[..., :, 17:].max()) == 0.0
    inverted = StillMask(path, invert=True)(content, 0)
    torch.testing.assert_close(inverted, 1.0 - mask)


def test_chroma_key_finds_the_key_colour_on_the_device() -> None:
    content = torch.full((1, 3, 8, 8), 0.5)
    content[..., :, :4] = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)  # pure green left
    content[..., :4, :4] *= 0.6  # a shadow on the green: still keyed (chroma, not lightness)
    mask = ChromaKeyMask((0, 255, 0))(content, 0)
    assert float(mask[..., :4].min()) == 1.0 and float(mask[..., 4:].max()) == 0.0
    assert float(ChromaKeyMask((0, 255, 0), invert=True)(content, 0)[..., 4:].min()) == 1.0


# -- a render driven by a mask video ----------------------------------------------------------
def _boundary(frame: np.ndarray, left: np.ndarray, right: np.ndarray) -> int:
    """The column where the output stops looking like ``left`` and starts looking like
    ``right`` (per-column mean absolute differences, the best split)."""
    d_left = np.abs(frame.astype(float) - left).mean(axis=(0, 2))
    d_right = np.abs(frame.astype(float) - right).mean(axis=(0, 2))
    costs = [d_left[:x].sum() + d_right[x:].sum() for x in range(len(d_left) + 1)]
    return int(np.argmin(costs))


def test_a_mask_video_moves_the_boundary_frame_by_frame(tmp_path, styles, stylizer) -> None:
    content = np.asarray(Image.open(str(_content_png(tmp_path))).convert("RGB"))
    clip = _write_video(tmp_path / "in.mp4", [content] * 5)
    boundaries = [24, 36, 48, 60, 72]
    masks = _write_video(tmp_path / "mask.mp4", [_split_mask(b) for b in boundaries])
    plan = RegionPlan(
        (
            RegionSpec(style=styles[0], mask=str(masks)),
            RegionSpec(style=styles[1], mask=str(masks), invert=True),
        )
    )
    plan.check(input_uri=str(clip))
    out = tmp_path / "out.mp4"
    config = RenderConfig(
        input=str(clip), output=str(out),
        stylizer=StylizerSpec(styles=(styles[0],), style_size=None),
        motion=TemporalOptions(temporal="off"),  # compared with per-frame stylization
    )  # fmt: skip
    result = render(config, stylizer=stylizer, regions=plan, progress=False)
    assert result.stats.frames_out == 5
    decoded_in = frame_arrays(clip)
    warm = FrameStylizer(stylizer.model, stylizer.config)
    warm.set_style(styles[0])
    cold = FrameStylizer(stylizer.model, stylizer.config)
    cold.set_style(styles[1])
    found = []
    for frame, source in zip(frame_arrays(out), decoded_in, strict=True):
        found.append(_boundary(frame, warm(source), cold(source)))
    # each frame's split follows its own mask frame (to a few pixels: the decoder blurs the
    # edge over its receptive field), so the boundary moves with the mask
    assert all(abs(f - b) <= 6 for f, b in zip(found, boundaries, strict=True)), found
    assert found == sorted(found) and found[-1] - found[0] >= 36


def _content_png(tmp_path: Path) -> Path:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.stack([x * 2, y * 4, (x + y) % 256], axis=-1).astype(np.uint8)
    path = tmp_path / "content.png"
    Image.fromarray(image).save(path)
    return path


def test_region_stylizer_keeps_mask_sequences_in_step(tmp_path, styles, stylizer) -> None:
    frames = tmp_path / "masks"
    frames.mkdir()
    for i in range(3):
        _write_png(frames / f"m_{i:03d}.png", _split_mask(30 + 10 * i))
    plan = RegionPlan((RegionSpec(style=styles[1], mask=str(frames / "m_%03d.png")),))
    assert count_frames(str(frames)) == 3
    region_stylizer = plan.attach(stylizer)
    assert isinstance(region_stylizer, RegionStylizer)
    batch = np.zeros((2, HEIGHT, WIDTH, 3), np.uint8)
    region_stylizer(batch)
    region_stylizer(batch[:1])
    with pytest.raises(MaskError, match="has 3 frames but the input has more"):
        region_stylizer(batch[:1])


# -- bad masks: one line, nothing written -----------------------------------------------------
def test_bad_masks_are_one_line_and_nothing_is_written(tmp_path, styles, capsys) -> None:
    clip = _write_video(tmp_path / "in.mp4", [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * 4)
    short = _write_video(tmp_path / "short.mp4", [_split_mask(40)] * 3)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    empty = _write_png(tmp_path / "empty.png", np.zeros((8, 8), np.uint8))
    full = _write_png(tmp_path / "full.png", np.full((8, 8), 255, np.uint8))
    cases = [
        (f"style={styles[0]},mask={tmp_path / 'missing.png'}", "does not exist"),
        (f"style={styles[0]},mask={tmp_path / 'broken.png'}", "could not be read"),
        (f"style={styles[0]},mask={empty}", "has no white pixel"),
        (f"style={styles[0]},mask={full},invert=1", "inverted it is empty"),
        (f"style={styles[0]},mask={short}", "has 3 frames but the input"),
        (f"mask={full}", "has no style"),
        (f"style={tmp_path / 'nostyle.png'},mask={full}", "does not exist"),
    ]
    out = tmp_path / "out.mp4"
    for region, message in cases:
        args = ["render", str(clip), "-o", str(out), "--untrained", "--no-progress"]
        assert message in main_error([*args, "--region", region], capsys)
        assert not out.exists()
    image_out = tmp_path / "out.png"
    args = ["image", _write_png(tmp_path / "c.png", np.zeros((32, 32, 3), np.uint8))]
    args += ["-o", str(image_out), "--untrained"]
    assert "has no white pixel" in main_error([*args, "--region", cases[2][0]], capsys)
    line = main_error([*args, "--region", cases[4][0]], capsys)
    assert "takes a still picture or a chroma key" in line
    assert not image_out.exists()


def test_image_command_with_regions_from_yaml(tmp_path, styles, capsys) -> None:
    content = _write_png(tmp_path / "c.png", np.full((32, 48, 3), 128, np.uint8))
    mask = _write_png(tmp_path / "m.png", _split_mask(24, 32, 48)[..., 0])
    config = tmp_path / "regions.yaml"
    config.write_text(
        f"region:\n  - {{style: {styles[0]}, mask: {mask}}}\n"
        f"  - style={styles[1]},mask={mask},invert=1\nuncovered: content\n"
    )
    out = tmp_path / "out.png"
    args = ["image", content, "--config", str(config), "--untrained", "-o", str(out)]
    assert main([*args, "--device", "cpu"]) == 0, capsys.readouterr().err
    assert np.asarray(Image.open(out)).shape == (32, 48, 3)
    config.write_text('uncovered: nothing\nregion: ["style=a.png,key=green"]\n')
    assert "uncovered: expected one of 'style', 'content', got 'nothing'" in main_error(
        args, capsys
    )


# -- live: a chroma key switches regions where the key colour is ------------------------------
class _GreenPatchSource(FrameSource):
    """A non-live source (every frame is stylized) whose green patch jumps from the left half
    to the right half after three frames."""

    def __init__(self, frames: int = 6) -> None:
        self.frames = frames
        self.read = 0

    @property
    def live(self) -> bool:
        return False

    def image(self, index: int) -> np.ndarray:
        image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
        image[:, :, 0] = np.linspace(60, 200, WIDTH, dtype=np.uint8)[None, :]
        patch = slice(0, WIDTH // 2) if index < self.frames // 2 else slice(WIDTH // 2, WIDTH)
        image[:, patch] = (0, 177, 64)
        return image

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def info(self) -> SourceInfo:
        rate = Fraction(12)
        return SourceInfo(frame_rate=rate, expected_frames=self.frames, width=WIDTH,
                          height=HEIGHT, time_base=1 / rate)  # fmt: skip

    def counters(self) -> SourceCounters:
        return SourceCounters(read=self.read)

    def __iter__(self) -> Iterator[Frame]:
        for index in range(self.frames):
            self.read = index + 1
            yield Frame(index, self.image(index), pts=index, time_base=Fraction(1, 12))


def test_a_chroma_keyed_live_stream_switches_regions_where_the_key_is(
    tmp_path, styles, stylizer
) -> None:
    from streamer.live import LiveConfig, run_live

    source = _GreenPatchSource()
    record = tmp_path / "live.mp4"
    config = LiveConfig(
        source="synthetic", stylizer=StylizerSpec(styles=(styles[0],), device="cpu"), zmq=None,
        record=str(record), control=None, status_interval_s=0,
        motion=TemporalOptions(temporal="off"),  # compared with per-frame stylization
    )  # fmt: skip
    plan = RegionPlan((RegionSpec(style=styles[1], key="green"),))
    result = run_live(config, stylizer=stylizer, source=source, regions=plan)
    assert result.stats.frames_out == source.frames
    warm = FrameStylizer(stylizer.model, stylizer.config)
    warm.set_style(styles[0])
    cold = FrameStylizer(stylizer.model, stylizer.config)
    cold.set_style(styles[1])
    for index, frame in enumerate(frame_arrays(record)):
        image = source.image(index)
        keyed_left = index < source.frames // 2
        # the keyed half looks like the region's (cold) style, the rest like the default (warm)
        first, second = (cold(image), warm(image)) if keyed_left else (warm(image), cold(image))
        frame = frame.astype(float)
        for part, match, other in (
            (slice(0, 24), first, second),
            (slice(72, WIDTH), second, first),
        ):
            near = np.abs(frame[:, part] - match[:, part]).mean()
            far = np.abs(frame[:, part] - other[:, part]).mean()
            assert near < 3 and far > 3 * near, (index, near, far)


def test_bench_regions_prints_both_forms_and_the_ratio(capsys) -> None:
    args = ["bench", "regions", "--size", "64x32", "--style-size", "32", "--repeats", "1"]
    assert main([*args, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| plain") and rows[2].startswith("| 2 regions")
    plain, regions = (float(row.split("|")[2]) for row in rows[1:3])
    ratio = float(rows[2].split("|")[3].strip().rstrip("x"))
    assert plain > 0 and regions > 0
    # the times are printed to 0.05 ms and the ratio to 0.005: the printed ratio agrees with
    # the printed times up to those roundings
    slack = regions / plain * (0.05 / plain + 0.05 / regions) + 0.005
    assert ratio == pytest.approx(regions / plain, abs=slack)

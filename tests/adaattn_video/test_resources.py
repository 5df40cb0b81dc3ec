"""The resource guard: the memory estimate follows the real peak (measured in a fresh process),
and a size that cannot fit is refused with one line, before anything is allocated."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.media import write_clip

from adaattn_video.assets import DEFAULT_STYLE
from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL
from adaattn_video.resources import (
    MemoryLimitError,
    MemorySizeError,
    available_memory,
    check_stylize_memory,
    estimate_stylize_memory,
    parse_memory,
)
from streamer.cli import main

STYLE = str(DEFAULT_STYLE)

# Peak resident set of ONE stylize call (or one style encode) in a fresh process: the kernel's
# high-water mark is reset (/proc/self/clear_refs = 5) after a warm-up call at a tiny size.
_MEASURE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from adaattn_video.checkpoint import open_model
    from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL
    from adaattn_video.stylizer import FrameStylizer, StylizerConfig

    def kib(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    variant, what, h, w, batch, precision = sys.argv[1:7]
    h, w, batch = int(h), int(w), int(batch)
    config = VIDEO_MODEL if variant == "video" else IMAGE_MODEL
    model = open_model(None, untrained=True, config=config)
    stylizer = FrameStylizer(model, StylizerConfig(device="cpu", precision=precision))
    rng = np.random.default_rng(0)
    stylizer.set_style(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    stylizer(np.zeros((1, 32, 32, 3), np.uint8))  # warm-up
    data = rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = kib("VmRSS:")
    if what == "frames":
        stylizer(data)
    else:
        stylizer.set_style(data[0])
    print(json.dumps({"peak": kib("VmHWM:") - before}))
    """
)


def measured_peak(variant: str, what: str, size: tuple[int, int], batch: int, precision: str):
    args = [variant, what, str(size[0]), str(size[1]), str(batch), precision]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])["peak"]


def can_reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not can_reset_peak(), reason="needs /proc/self/clear_refs (Linux)")
@pytest.mark.parametrize(
    ("variant", "what", "size", "batch", "precision"),
    [
        ("video", "frames", (384, 384), 1, "fp32"),
        ("video", "frames", (256, 320), 2, "bf16"),
        ("video", "style", (512, 512), 1, "fp32"),
        ("image", "frames", (256, 256), 1, "fp32"),
    ],
)
def test_estimate_is_within_2x_of_the_measured_peak(variant, what, size, batch, precision):
    config = VIDEO_MODEL if variant == "video" else IMAGE_MODEL
    real = measured_peak(variant, what, size, batch, precision)
    if what == "frames":
        estimate = estimate_stylize_memory(config, size, batch=batch, precision=precision).frames
    else:
        e = estimate_stylize_memory(config, (16, 16), precision=precision, style_sizes=[size])
        estimate = e.style + e.resident
    assert real / 2 <= estimate <= real * 2, (estimate / 2**20, real / 2**20)


def test_estimate_grows_with_pixels_batch_and_precision():
    base = estimate_stylize_memory(VIDEO_MODEL, (256, 256)).frames
    assert 3.5 < estimate_stylize_memory(VIDEO_MODEL, (512, 512)).frames / base < 4.5
    assert 1.8 < estimate_stylize_memory(VIDEO_MODEL, (256, 256), batch=2).frames / base < 2.2
    assert estimate_stylize_memory(VIDEO_MODEL, (256, 256), precision="fp16").frames < base
    # the image model goes to relu5_1 and attends at three levels: more than the video model
    assert estimate_stylize_memory(IMAGE_MODEL, (256, 256)).frames > base
    # the cosine style state does not depend on the style's size; softmax keys and values do
    small = estimate_stylize_memory(VIDEO_MODEL, (64, 64), style_sizes=[(256, 256)])
    large = estimate_stylize_memory(VIDEO_MODEL, (64, 64), style_sizes=[(1024, 1024)])
    assert small.resident == large.resident and large.style > small.style
    small = estimate_stylize_memory(IMAGE_MODEL, (64, 64), style_sizes=[(256, 256)])
    large = estimate_stylize_memory(IMAGE_MODEL, (64, 64), style_sizes=[(1024, 1024)])
    assert large.resident > 10 * small.resident


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8G", 8 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", 3 * 2**29), ("64kb", 65536),
     ("1000", 1000), (2e9, 2_000_000_000), (None, None)],
)  # fmt: skip
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "8X", "nan", ""])
def test_parse_memory_refuses(text):
    with pytest.raises(MemorySizeError):
        parse_memory(text)


def test_available_memory_reads_meminfo_with_a_fallback(monkeypatch):
    value, source = available_memory("cpu")
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        line = next(x for x in meminfo.read_text().splitlines() if x.startswith("MemAvailable"))
        assert abs(value - int(line.split()[1]) * 1024) < 2**30 and "MemAvailable" in source
    # no /proc (another OS, a sandbox): the sysconf fallback still gives a positive number
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    value, source = available_memory("cpu")
    assert value is None or (value > 0 and "sysconf" in source)


def test_check_refuses_with_the_need_and_the_limit():
    with pytest.raises(
        MemoryLimitError, match=r"needs about .* GiB.*8\.0 GiB limit \(--max-memory\)"
    ):
        check_stylize_memory(VIDEO_MODEL, (8000, 8000), max_memory=8 * 2**30)
    estimate = check_stylize_memory(VIDEO_MODEL, (64, 64), max_memory=8 * 2**30)
    assert estimate is not None and estimate.peak < 2**30


def test_a_huge_style_counts_at_its_native_size(tmp_path):
    """A style is decoded (and made float) at its native size before it is resized: a
    4000x3000 picture needs its pixels' worth of memory even with --style-size 64."""
    from PIL import Image

    path = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000)).save(path)
    estimate = check_stylize_memory(VIDEO_MODEL, None, styles=[path], style_size=64)
    assert estimate is not None and estimate.style >= 4000 * 3000 * 15
    with pytest.raises(MemoryLimitError, match="style of 4000x3000"):
        check_stylize_memory(VIDEO_MODEL, None, styles=[path], style_size=64, max_memory=2**27)


# -- the commands ------------------------------------------------------------------------------
def one_error(capsys, argv: list[str]) -> str:
    start = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("stylestream: error:")]
    assert code == 2 and len(lines) == 1, err
    assert elapsed < 1.0, f"the refusal took {elapsed:.2f} s"
    return lines[0]


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_clip(tmp_path / "in.mp4", frames=4, audio=False).path


def test_render_refuses_a_size_that_cannot_fit(clip, tmp_path, capsys):
    base = ["render", str(clip), "--style", STYLE, "--untrained", "--no-progress", "--device",
            "cpu", "-o", str(tmp_path / "o.mp4")]  # fmt: skip
    before = clip.read_bytes()
    line = one_error(capsys, [*base, "--size", "20000x20000"])
    assert "20000x20000" in line and "needs about" in line and "limit" in line
    line = one_error(capsys, [*base, "--style-size", "20000"])
    assert "style of 20000x" in line and "needs about" in line
    line = one_error(capsys, [*base, "--max-memory", "1M"])
    assert "1.0 MiB limit (--max-memory)" in line
    assert "expected an amount" in one_error(capsys, [*base, "--max-memory", "lots"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert clip.read_bytes() == before


def test_image_refuses_a_size_that_cannot_fit(tmp_path, capsys):
    out = tmp_path / "o.png"
    base = ["image", STYLE, "--style", STYLE, "--untrained", "--device", "cpu", "-o", str(out)]
    line = one_error(capsys, [*base, "--size", "20000x20000"])
    assert "20000x20000" in line and "needs about" in line
    line = one_error(capsys, [*base, "--size", "64", "--max-memory", "2M"])
    assert "2.0 MiB limit" in line
    assert not out.exists()


def test_live_refuses_a_size_that_cannot_fit(clip, tmp_path, capsys):
    argv = ["live", "--source", str(clip), "--style", STYLE, "--untrained", "--device", "cpu",
            "--zmq", "none", "--control", "none", "--record", str(tmp_path / "r.mp4"),
            "--size", "20000x20000"]  # fmt: skip
    assert "needs about" in one_error(capsys, argv)
    assert not (tmp_path / "r.mp4").exists()

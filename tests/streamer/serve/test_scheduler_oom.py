"""Out of memory in ``serve``: the cache is freed, the other streams keep their frames, and the
stream that lost frames says so once (log) and in its status. CPU, with the error injected."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch
from PIL import Image

from adaattn_video.checkpoint import open_model
from adaattn_video.settings import StylizerSpec
from adaattn_video.stylizer import open_stylizer
from streamer.frames import Frame
from streamer.regions.switch import RegionSwitch
from streamer.serve import scheduler as scheduler_module
from streamer.serve.config import StreamSpec
from streamer.serve.scheduler import Scheduler
from streamer.serve.stream import StreamRuntime


@pytest.fixture(scope="module")
def model():
    return open_model(None, untrained=True)


def _runtime(model, tmp_path, name: str, color: tuple[int, int, int]) -> StreamRuntime:
    style = tmp_path / f"{name}.png"
    Image.fromarray(np.full((32, 32, 3), color, np.uint8)).save(style)
    spec = StreamSpec(name=name, source="lavfi:testsrc2", styles=(str(style),))
    stylizer_spec = StylizerSpec(
        styles=(str(style),), style_size=32, device="cpu", precision="fp32"
    )
    return StreamRuntime(spec, RegionSwitch(open_stylizer(stylizer_spec, model=model)), None)


def test_one_stream_out_of_memory_leaves_the_other_running(
    model, tmp_path, monkeypatch, caplog
) -> None:
    good, bad = (
        _runtime(model, tmp_path, "good", (200, 0, 0)),
        _runtime(model, tmp_path, "bad", (0, 0, 200)),
    )
    bad_features = bad.stylizer.style.features
    real = scheduler_module.stylize_per_frame
    freed: list[object] = []

    def stylize(model, content, styles):
        if any(style.features is bad_features for style in styles):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, content, styles)

    monkeypatch.setattr(scheduler_module, "stylize_per_frame", stylize)
    monkeypatch.setattr(scheduler_module, "free_cached_memory", freed.append)
    scheduler = Scheduler(model, torch.device("cpu"), lambda: [good, bad], max_batch=8)
    caplog.set_level(logging.WARNING, logger=scheduler_module.__name__)
    delivered: dict[str, list[int]] = {"good": [], "bad": []}
    for index in range(3):
        for stream in (good, bad):
            image = np.full((24, 32, 3), index, np.uint8)
            stream.inbox.put(Frame(index=index, image=image, capture_time_s=time.time()))
        scheduler.run_round()
        for stream in (good, bad):  # what the writer threads do (the outbox holds one frame)
            while (frame := stream.outbox.get_nowait()) is not None:
                delivered[stream.name].append(frame.index)
    assert delivered == {"good": [0, 1, 2], "bad": []}
    assert freed, "the allocator's cache was never freed"
    assert bad.status()["error"] == "out of memory on cpu: 3 frame(s) lost"
    assert good.status()["error"] is None
    reports = [r for r in caplog.records if r.levelno >= logging.ERROR and "bad" in r.getMessage()]
    assert len(reports) == 1  # once per stream, not once per round
    assert scheduler.stats.frames == 3 and scheduler.stats.out_of_memory >= 3

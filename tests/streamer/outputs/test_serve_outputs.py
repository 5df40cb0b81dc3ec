"""Standard outputs of ``serve`` streams: each stream its own outputs (YAML ``output:`` /
``outputs:``, ``control add-stream --output``), independent of the others; ``list-streams`` and
``get-status`` show each output; ``remove-stream`` closes them; they carry the source's audio
and the stream's ``output_option`` encoder settings. Real lavfi sources and files, the real
(untrained) model, a real nginx-rtmp server, HLS folders read back with PyAV."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from helpers.cli import main_error
from helpers.live_helpers import serving
from helpers.media import write_clip
from helpers.network import ANY_PORT
from helpers.output_readers import SHORT_PROBE, StreamReader
from helpers.rtmp_server import RtmpServer

from adaattn_video.assets import style_images
from streamer.cli import main
from streamer.outputs.av_connection import EncoderSettings
from streamer.serve.config import ServeConfigError, serve_config_from_mapping
from streamer.serve.stream import StreamRuntime
from streamer.serve.stream_requests import AddStream
from streamer.zeromq.control import ControlError, ControlRequestError, send_command

STYLE = str(style_images()[0])
SOURCE = "lavfi:testsrc2=size=64x48:rate=15"
SECRET = "serveKEY9876"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(streams: list[dict[str, Any]]):
    data = dict(
        untrained=True, device="cpu", precision="fp32", style_size=32, style=[STYLE],
        zmq=ANY_PORT, control=ANY_PORT, status_interval_s=0, streams=streams,
    )  # fmt: skip
    return serve_config_from_mapping(data)


def _segments(folder: Path) -> int:
    playlist = folder / "index.m3u8"
    if not playlist.exists():
        return 0
    return int(playlist.read_text().split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0]) + sum(
        1 for line in playlist.read_text().splitlines() if line.endswith(".ts")
    )


def _wait(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def _outputs(control: str, command: str = "list-streams") -> dict[str, dict[str, dict]]:
    reply = send_command(control, {"command": command})
    return {s["name"]: {o["kind"]: o for o in s["outputs"]} for s in reply["streams"]}


@pytest.mark.slow
def test_two_streams_with_their_own_outputs_stay_independent(
    model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_dir, b_dir, c_dir = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    with RtmpServer() as server:
        url = server.url(SECRET)
        config = _config(
            [
                {"name": "a", "source": SOURCE, "output": [f"hls:{a_dir}", url]},
                {"name": "b", "source": SOURCE, "outputs": [f"hls:{b_dir}"]},
            ]
        )
        with serving(config, model) as info:
            control = info["control"]
            reader = StreamReader(url).start()
            assert reader.wait(10, 60), reader.errors
            reader.stop()
            assert _wait(lambda: _segments(a_dir) >= 2 and _segments(b_dir) >= 2)
            listed = _outputs(control)
            assert set(listed["a"]) == {"zmq", "hls", "rtmp"} and set(listed["b"]) == {"zmq", "hls"}
            assert listed["a"]["rtmp"]["state"] == "running" and listed["a"]["rtmp"]["frames"] > 0
            streams = send_command(control, {"command": "list-streams"})["streams"]
            assert SECRET not in json.dumps(streams)  # list-streams masks the stream key
            assert streams[0]["output"][1].endswith("/live/***")

            server.stop()  # a's RTMP server dies: a's other output and stream b go on
            b_before, a_before = _segments(b_dir), _segments(a_dir)
            assert _wait(lambda: _outputs(control)["a"]["rtmp"]["state"] == "reconnecting", 20)
            assert _wait(
                lambda: _segments(b_dir) >= b_before + 2 and _segments(a_dir) >= a_before + 2
            )
            status = _outputs(control, "get-status")
            assert status["b"]["hls"]["drops"] <= 3 and status["a"]["hls"]["error"] is None
            server.start()
            assert _wait(lambda: _outputs(control)["a"]["rtmp"]["state"] == "running", 30)
            assert _outputs(control)["a"]["rtmp"]["reconnects"] == 1

            # add-stream --output from the command line; remove-stream closes its outputs
            code = main(["control", control, "add-stream", "c", SOURCE, "--style", STYLE,
                         "--output", f"hls:{c_dir}"])  # fmt: skip
            out = capsys.readouterr().out
            assert code == 0 and f"outputs: hls:{c_dir}" in out
            assert _wait(lambda: _segments(c_dir) >= 2)
            removed = send_command(control, {"command": "remove-stream", "stream": "c"})
            assert [o["state"] for o in removed["outputs"]] == ["closed", "closed"]
            assert (c_dir / "index.m3u8").read_text().rstrip().endswith("#EXT-X-ENDLIST")
            assert "c" not in _outputs(control)
    with av.open(str(b_dir / "index.m3u8")) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 10  # b's playlist plays
    assert (a_dir / "index.m3u8").read_text().rstrip().endswith("#EXT-X-ENDLIST")


def test_a_bad_stream_output_is_one_line_naming_the_stream_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ServeConfigError) as info:
        _config([{"name": "door", "source": SOURCE, "output": [f"rtmp://u:{SECRET}@h/app"]}])
    text = str(info.value)
    assert "stream door: " in text and "stream key" in text and SECRET not in text
    assert "\n" not in text
    code = main(["control", "tcp://127.0.0.1:9", "add-stream", "x", SOURCE, "--style", STYLE,
                 "--output", f"srt://h?passphrase={SECRET}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "needs a port" in err and SECRET not in err and err.count("\n") == 1


def test_outputs_alone_are_something_to_do_and_listed_masked(tmp_path: Path) -> None:
    url = f"rtmp://127.0.0.1/live/{SECRET}"
    config = serve_config_from_mapping(
        {"untrained": True, "style": [STYLE], "zmq": "none", "control": "none",
         "streams": [{"name": "a", "source": SOURCE, "output": url}]}
    )  # fmt: skip
    spec = config.streams[0]
    assert spec.outputs == (url,)
    assert spec.as_dict()["output"] == ["rtmp://127.0.0.1/live/***"]
    assert spec.to_request()["output"] == [url]  # add-stream sends the real URL
    with pytest.raises(ServeConfigError, match="nothing to do"):
        serve_config_from_mapping(
            {"untrained": True, "style": [STYLE], "zmq": "none", "control": "none",
             "streams": [{"name": "a", "source": SOURCE}]}
        )  # fmt: skip


class _Stylizer:
    """What a :class:`StreamRuntime` asks of its stylizer before it starts."""

    temporal = None

    def use_temporal(self, *args: object, **kwargs: object) -> None:
        pass


def _encoders(stream: dict[str, Any]) -> list[EncoderSettings]:
    """The encoder settings of the standard outputs a serve stream builds for ``stream``."""
    runtime = StreamRuntime(_config([stream]).streams[0], _Stylizer(), None)  # type: ignore[arg-type]
    try:
        return [output.encoder for output in runtime.standard_outputs.outputs]
    finally:
        runtime.standard_outputs.close()


def test_a_stream_output_option_reaches_its_outputs_and_the_defaults_hold_without() -> None:
    url = f"rtmp://127.0.0.1:9/live/{SECRET}"  # never connected: nothing is written
    stream = {"name": "a", "source": SOURCE, "output": [url]}
    tuned = _encoders({**stream, "output_option": ["preset=fast", "bitrate=6M"]})
    assert tuned == [replace(EncoderSettings(), preset="fast", bitrate=6_000_000)]
    assert _encoders({**stream, "output_option": {"gop": 2}})[0].gop_s == 2.0
    assert _encoders(stream) == [EncoderSettings()]  # no key: the documented defaults


def test_a_bad_stream_output_option_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(
        f"style: [{STYLE}]\nzmq: none\ncontrol: none\nstreams:\n"
        f"  - {{name: door, source: '{SOURCE}', output: [hls:{tmp_path}/h], "
        "output_option: [speed=9]}\n"
    )
    line = main_error(["serve", "--config", str(path)], capsys)
    assert "stream door: output_option: unknown key 'speed'" in line
    line = main_error(["control", "tcp://127.0.0.1:9", "add-stream", "x", SOURCE, "--style",
                       STYLE, "--output", f"hls:{tmp_path}/h", "--output-option", "gop=0"],
                      capsys)  # fmt: skip
    assert "gop=0: expected seconds in (0, 60]" in line  # checked here: nothing sent
    entry = {"name": "x", "source": SOURCE, "style": [STYLE], "output_option": ["crf=99"]}
    with pytest.raises(ControlRequestError, match="output_option: crf=99: expected 0-51"):
        AddStream.from_json({"stream": entry})  # what the server refuses


def _audio_peaks(url: str, peaks: list[float], stop: threading.Event) -> None:
    """Decode ``url``'s audio (retrying until a publisher is there) until it ends."""
    while not stop.is_set():
        try:
            with av.open(url, options=SHORT_PROBE, timeout=(5, 5)) as container:
                if not container.streams.video or not container.streams.audio:
                    time.sleep(0.1)
                    continue
                for frame in container.decode(audio=0):
                    peaks.append(float(np.abs(frame.to_ndarray()).max()))
                return
        except (av.error.FFmpegError, OSError):
            time.sleep(0.2)


@pytest.mark.slow
def test_a_stream_sends_its_file_audio_to_rtmp_and_a_bad_add_stream_is_refused(
    model, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "in.mp4", frames=60, size=(48, 64), fps=15, audio=True)
    with RtmpServer() as server:
        url = server.url(SECRET)
        peaks: list[float] = []
        stop = threading.Event()
        reader = threading.Thread(target=_audio_peaks, args=(url, peaks, stop), daemon=True)
        reader.start()
        stream = {"name": "a", "source": str(clip.path), "output": [url],
                  "output_option": ["preset=ultrafast"]}  # fmt: skip
        with serving(_config([stream]), model) as info:
            control = info["control"]
            bad = {"name": "b", "source": SOURCE, "style": [STYLE], "output_option": ["x=1"]}
            with pytest.raises(ControlError, match="output_option: unknown key 'x'"):
                send_command(control, {"command": "add-stream", "stream": bad})
            assert [s["name"] for s in _outputs_list(control)] == ["a"]  # it runs on
            reader.join(30)
        stop.set()
    assert peaks and max(peaks) > 0.1, peaks[:5]  # the file's sine, not the silent track


def _outputs_list(control: str) -> list[dict[str, Any]]:
    return send_command(control, {"command": "list-streams"})["streams"]

"""Output URLs: parsed, validated before anything starts, and never shown with their secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from configkit.errors import StylestreamError
from streamer.outputs import spec as spec_module
from streamer.outputs.spec import OutputUrlError, parse_output, redact


@pytest.mark.parametrize(
    ("url", "kind", "host", "port"),
    [
        ("rtmp://live.example.com/app/abc123", "rtmp", "live.example.com", 1935),
        ("rtmp://127.0.0.1:1936/live/key", "rtmp", "127.0.0.1", 1936),
        ("rtsp://127.0.0.1:8554/cam", "rtsp", "127.0.0.1", 8554),
        ("rtsp://h/cam", "rtsp", "h", 554),
        ("srt://127.0.0.1:9000?latency=200", "srt", "127.0.0.1", 9000),
    ],
)
def test_network_urls_parse_to_typed_specs(url: str, kind: str, host: str, port: int) -> None:
    spec = parse_output(url)
    assert (spec.kind, spec.host, spec.port, spec.network) == (kind, host, port, True)


def test_local_kinds(tmp_path: Path) -> None:
    hls = parse_output(f"hls:{tmp_path / 'out'}")
    assert hls.kind == "hls" and hls.path == str(tmp_path / "out" / "index.m3u8")
    assert parse_output(f"hls:{tmp_path}/live.m3u8").hls_dir == tmp_path
    assert parse_output("ndi:Stylized Cam").name == "Stylized Cam"
    assert parse_output("virtualcam").name == ""
    assert parse_output("virtualcam:/dev/video7").name == "/dev/video7"
    assert not parse_output("ndi:x").network


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty output URL"),
        ("http://x/y", "unknown output"),
        ("rtmp:///app/key", "has no host"),
        ("rtmp://h:70000/app/key", "1-65535"),
        ("rtmp://h:0/app/key", "1-65535"),
        ("rtmp://h:abc/app/key", "1-65535"),
        ("rtmp://h/onlyapp", "application and a stream key"),
        ("rtsp://h:8554/", "needs a path"),
        ("rtsp://h:8554/x?transport=sctp", "transport must be"),
        ("srt://h?latency=1", "needs a port"),
        ("srt://h:9000/path", "takes no path"),
        ("srt://h:9000?mode=server", "mode must be"),
        ("hls:", "needs a folder"),
        ("hls:/no/such/parent/dir", "does not exist"),
        ("ndi:", "an NDI name"),
        ("ndi:bad/name", "an NDI name"),
        ("virtualcam:video0", "/dev/video10"),
    ],
)
def test_bad_urls_are_one_line_user_errors(url: str, message: str) -> None:
    with pytest.raises(OutputUrlError) as caught:
        parse_output(url)
    assert isinstance(caught.value, StylestreamError)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_file_where_the_hls_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputUrlError, match="not a folder"):
        parse_output(f"hls:{tmp_path / 'f'}/index.m3u8")


@pytest.mark.parametrize(
    ("url", "secrets", "shown"),
    [
        (
            "rtmp://a.rtmp.example/live2/sk_live_9f8e7d",
            ["sk_live_9f8e7d"],
            "rtmp://a.rtmp.example/live2/***",
        ),
        (
            "rtmp://user:hunter22@h:1935/app/key99",
            ["hunter22", "key99", "user"],
            "rtmp://***@h:1935/app/***",
        ),
        (
            "rtsp://bob:pw1234@cam:8554/s?token=abcd",
            ["pw1234", "abcd"],
            "rtsp://***@cam:8554/s?token=***",
        ),
        (
            "srt://h:9000?latency=200&passphrase=longsecret1&streamid=pub:x",
            ["longsecret1", "pub:x"],
            "srt://h:9000?latency=200&passphrase=***&streamid=***",
        ),
    ],
)
def test_redaction_masks_every_credential(url: str, secrets: list[str], shown: str) -> None:
    assert redact(url) == shown
    spec = parse_output(url)
    for text in (spec.redacted(), str(spec), repr(spec)):
        assert all(secret not in text for secret in secrets), text
    scrubbed = spec.scrub(f"Broken pipe: '{url}' while sending to {secrets[0]}")
    assert all(secret not in scrubbed for secret in secrets)


def test_errors_about_a_bad_url_never_show_its_key() -> None:
    with pytest.raises(OutputUrlError) as caught:
        parse_output("rtmp://h:99999/app/topsecretkey")
    assert "topsecretkey" not in str(caught.value)


def test_rtmps_without_tls_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "protocol_available", lambda name: False)
    with pytest.raises(OutputUrlError, match="no TLS") as caught:
        parse_output("rtmps://h/app/secretkey1")
    assert "secretkey1" not in str(caught.value)
    monkeypatch.setattr(spec_module, "protocol_available", lambda name: True)
    assert parse_output("rtmps://h/app/k").port == 443


def test_protocol_probe_tells_missing_from_present() -> None:
    assert spec_module.protocol_available("rtmp") is True
    assert spec_module.protocol_available("nosuchproto") is False

"""Importing the published weights: layouts, refusals, encoder weights and downloads.

The published files are stood in for by state dicts with the exact published key names and
shapes and random values (tests/published.py), saved as real ``.pth`` files and zips. No
internet here: downloads are tested with the network call mocked (said at each test).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import urllib.error
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from helpers.published import (
    image_package,
    model_from_state_dicts,
    save_files,
    save_zip,
    video_package,
)

from adaattn_video.checkpoint import load_checkpoint
from adaattn_video.encoder import VGGEncoder
from adaattn_video.errors import CheckpointError, MissingWeightsError
from adaattn_video.model import ImageAdaAttN, VideoAdaAttN
from adaattn_video.weights import (
    DRIVE_IDS,
    WeightsDownloadError,
    download_published,
    import_published,
    import_weights,
    load_encoder_weights,
)

VGG = "vgg_normalised.pth"
TRANSFORMER = "latest_net_transformer.pth"
DECODER = "latest_net_decoder.pth"


def _outputs(model, seed: int = 0) -> torch.Tensor:
    """Stylized output of a fixed 64x80 content with a 48x64 style (the attention path with
    every layer involved; sides multiples of 16 for the image model)."""
    generator = torch.Generator().manual_seed(seed)
    content = torch.rand(1, 3, 64, 80, generator=generator)
    style = torch.rand(1, 3, 48, 64, generator=generator)
    return model.stylize(content, [model.encode_style(style)])


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, f"message is not one line: {message!r}"
    return message


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def video_files() -> dict:
    # vgg_normalised.pth cut after idx 25: layers past relu3_1 that import must drop, at a
    # ninth of the full file's size (the full 53-module file has its own test).
    return video_package(seed=0, vgg_last_index=25)


@pytest.fixture(scope="module")
def image_files() -> dict:
    return image_package(seed=1, vgg_last_index=43)


def _video_tree(root: Path, files: dict) -> Path:
    """The layout the published README suggests: vgg beside the package's folder."""
    save_files(root, {VGG: files[VGG]})
    save_files(root / "attn_adain_video", {k: v for k, v in files.items() if k != VGG})
    return root


# -- importing ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_video_directory_import_round_trips_through_safetensors(tmp_path) -> None:
    video_files = video_package(seed=2)
    assert len(video_files[VGG]) == 2 * 17, "the full 53-module VGG file (17 convs)"
    src = _video_tree(tmp_path / "checkpoints", video_files)
    result = import_weights(src, tmp_path / "video.safetensors")
    loaded = load_checkpoint(result.path)
    assert isinstance(loaded, VideoAdaAttN)
    assert loaded.config.attention == "cosine"
    expected = _outputs(model_from_state_dicts("video", video_files))
    # Same weights, same code, fp32 stored losslessly: the outputs are bit-identical.
    assert torch.equal(_outputs(loaded), expected)
    assert expected.std() > 0.01, "degenerate output would make the comparison meaningless"
    sources = json.loads(result.metadata["source_files"])
    assert result.metadata["variant"] == "video"
    assert [s["name"] for s in sources] == [VGG, TRANSFORMER, DECODER]
    by_name = {s["name"]: s for s in sources}
    assert by_name[VGG]["sha256"] == _sha(src / VGG)
    assert by_name[DECODER]["sha256"] == _sha(src / "attn_adain_video" / DECODER)
    # Only the layers the video model needs (idx 0..17) were kept.
    assert max(int(k.split(".")[1]) for k in loaded.state_dict() if k.startswith("encoder.")) == 16


def test_video_zip_import_reads_members_in_place(tmp_path, video_files) -> None:
    package = save_zip(
        tmp_path / "attn_adain_video.zip",
        {f"attn_adain_video/{name}": state for name, state in video_files.items()},
        tmp_path / "scratch",
    )
    model = import_published(package)
    assert torch.equal(_outputs(model), _outputs(model_from_state_dicts("video", video_files)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attn_adain_video.zip", "scratch"]
    assert not list((tmp_path / "scratch").iterdir()), "nothing extracted to disk"


def test_directory_with_a_zip_and_a_loose_vgg_file(tmp_path, video_files) -> None:
    """What a user has after downloading both files into one folder."""
    save_files(tmp_path / "downloads", {VGG: video_files[VGG]})
    save_zip(
        tmp_path / "downloads" / "package.zip",
        {f"attn_adain_video/{k}": v for k, v in video_files.items() if k != VGG},
        tmp_path / "scratch",
    )
    model = import_published(tmp_path / "downloads")
    assert torch.equal(_outputs(model), _outputs(model_from_state_dicts("video", video_files)))


def test_module_prefix_is_stripped(tmp_path, video_files) -> None:
    prefixed = {
        name: {f"module.{k}": v for k, v in state.items()} for name, state in video_files.items()
    }
    model = import_published(save_files(tmp_path, prefixed))
    assert torch.equal(_outputs(model), _outputs(model_from_state_dicts("video", video_files)))


def test_vgg_file_cut_at_relu3_1_is_enough_for_the_video_model(tmp_path) -> None:
    files = video_package(seed=3, vgg_last_index=17)
    model = import_published(save_files(tmp_path, files))
    assert torch.equal(_outputs(model), _outputs(model_from_state_dicts("video", files)))


@pytest.fixture(scope="module")
def both_packages(tmp_path_factory, video_files, image_files) -> tuple[Path, dict, dict]:
    """Both packages extracted side by side, sharing one vgg_normalised.pth (as published)."""
    root = tmp_path_factory.mktemp("both")
    save_files(root, {VGG: image_files[VGG]})  # deep enough for both models
    save_files(root / "attn_adain_video", {k: v for k, v in video_files.items() if k != VGG})
    save_files(root / "AdaAttN", {k: v for k, v in image_files.items() if k != VGG})
    video_with_shared_vgg = {**video_files, VGG: image_files[VGG]}
    return root, video_with_shared_vgg, image_files


def test_both_packages_need_a_variant(both_packages) -> None:
    root, _, _ = both_packages
    with pytest.raises(CheckpointError) as err:
        import_published(root)
    message = _one_line(err)
    assert "found 2 model sets" in message
    assert "video model in" in message and "attn_adain_video" in message
    assert "image model in" in message and "AdaAttN" in message
    assert "--variant" in message


@pytest.mark.slow
def test_image_package_import_round_trips(tmp_path, both_packages) -> None:
    root, _, image_files = both_packages
    result = import_weights(root, tmp_path / "image.safetensors", variant="image")
    loaded = load_checkpoint(result.path)
    assert isinstance(loaded, ImageAdaAttN)
    assert loaded.config.attention == "softmax"
    assert result.metadata["variant"] == "image"
    names = [s["name"] for s in json.loads(result.metadata["source_files"])]
    assert names == [VGG, "latest_net_adaattn_3.pth", TRANSFORMER, DECODER]
    expected = _outputs(model_from_state_dicts("image", image_files))
    assert torch.equal(_outputs(loaded), expected)
    assert expected.std() > 0.01


def test_variant_picks_the_video_package(both_packages) -> None:
    root, video_files, _ = both_packages
    model = import_published(root, variant="video")
    assert isinstance(model, VideoAdaAttN)
    assert torch.equal(_outputs(model), _outputs(model_from_state_dicts("video", video_files)))


def test_two_copies_of_one_variant_need_a_narrower_source(tmp_path, video_files) -> None:
    save_files(tmp_path, {VGG: video_files[VGG]})
    for copy in ("a", "b"):
        save_files(tmp_path / copy, {k: v for k, v in video_files.items() if k != VGG})
    with pytest.raises(CheckpointError, match="narrower SRC") as err:
        import_published(tmp_path, variant="video")
    _one_line(err)


def test_video_variant_requested_but_only_the_image_package_present(tmp_path, image_files) -> None:
    with pytest.raises(MissingWeightsError, match="no video model found") as err:
        import_published(save_files(tmp_path, image_files), variant="video")
    assert "image model in" in _one_line(err)


# -- refusals ----------------------------------------------------------------------------------
def test_missing_decoder_file_names_what_was_searched(tmp_path, video_files) -> None:
    save_files(tmp_path, {k: v for k, v in video_files.items() if k != DECODER})
    with pytest.raises(MissingWeightsError) as err:
        import_published(tmp_path)
    message = _one_line(err)
    assert f"{DECODER} not found beside" in message
    assert f"searched {tmp_path}" in message


def test_missing_vgg_file(tmp_path, video_files) -> None:
    save_files(tmp_path, {k: v for k, v in video_files.items() if k != VGG})
    with pytest.raises(MissingWeightsError) as err:
        import_published(tmp_path)
    message = _one_line(err)
    assert f"no {VGG} found" in message and str(tmp_path) in message
    assert DRIVE_IDS["vgg_normalised"] in message


def test_empty_directory(tmp_path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        import_published(tmp_path)
    message = _one_line(err)
    assert f"no {TRANSFORMER} found" in message and VGG in message and DECODER in message


def test_nonexistent_source(tmp_path) -> None:
    with pytest.raises(MissingWeightsError, match="does not exist"):
        import_published(tmp_path / "nope")


def test_vgg_with_too_few_layers_is_refused(tmp_path) -> None:
    files = video_package(seed=4, vgg_last_index=12)  # relu2_1 block only
    save_files(tmp_path, files)
    with pytest.raises(CheckpointError) as err:
        import_published(tmp_path)
    message = _one_line(err)
    assert str(tmp_path / VGG) in message
    assert "layers up to idx 12" in message and "needs idx 0..17" in message


def test_vgg_deep_enough_for_video_but_not_for_image(tmp_path, image_files) -> None:
    files = {**image_files, VGG: video_package(seed=5, vgg_last_index=29)[VGG]}
    save_files(tmp_path, files)
    with pytest.raises(CheckpointError, match=r"needs idx 0\.\.43") as err:
        import_published(tmp_path)
    assert "layers up to idx 29" in _one_line(err)


class _RunsCode:
    """A pickle payload that would create a marker file if it were ever unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _drop(key):
    def corrupt(state, path):
        torch.save({k: v for k, v in state.items() if k != key}, path)

    return corrupt


def _extra(state, path):
    torch.save({**state, "extra.weight": torch.zeros(3)}, path)


def _misshaped(state, path):
    torch.save({**state, "h.weight": torch.zeros(256, 255, 1, 1)}, path)


def _integer(state, path):
    torch.save({**state, "h.bias": torch.zeros(256, dtype=torch.int64)}, path)


def _nan(state, path):
    bad = state["f.bias"].clone()
    bad[0] = float("nan")
    torch.save({**state, "f.bias": bad}, path)


def _a_list(state, path):
    torch.save(list(state.values()), path)


def _a_tensor(state, path):
    torch.save(state["f.weight"], path)


def _non_tensors(state, path):
    torch.save({"epoch": 3, "note": "not weights"}, path)


def _truncated(state, path):
    torch.save(state, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(state, path):
    path.write_bytes(b"")


REFUSALS = {
    "missing key": (_drop("g.bias"), "missing 1 key(s)", "'g.bias'"),
    "extra key": (_extra, "1 unexpected key(s)", "'extra.weight'"),
    "misshaped key": (
        _misshaped,
        "h.weight has shape (256, 255, 1, 1)",
        "expects (256, 256, 1, 1)",
    ),
    "integer tensor": (_integer, "h.bias has dtype torch.int64", "expected float"),
    "nan values": (_nan, "f.bias holds NaN", ""),
    "a list": (_a_list, "holds a list, not a state dict", ""),
    "a tensor": (_a_tensor, "holds a single tensor, not a state dict", ""),
    "dict of non-tensors": (_non_tensors, "holds a int, not a tensor", "not a state dict"),
    "truncated": (_truncated, "truncated or corrupt", "download it again"),
    "empty": (_empty, "the file is empty (0 bytes)", ""),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_bad_transformer_file_is_refused(tmp_path, video_files, case) -> None:
    corrupt, *fragments = REFUSALS[case]
    save_files(tmp_path, {k: v for k, v in video_files.items() if k != TRANSFORMER})
    corrupt(video_files[TRANSFORMER], tmp_path / TRANSFORMER)
    with pytest.raises(CheckpointError) as err:
        import_published(tmp_path)
    message = _one_line(err)
    assert message.startswith(str(tmp_path / TRANSFORMER) + ":"), message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickle_carrying_code_is_refused_and_never_run(tmp_path, video_files, writer) -> None:
    marker = tmp_path / "MARKER"
    save_files(tmp_path, {k: v for k, v in video_files.items() if k != DECODER})
    payload = {"decoder.1.weight": _RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, tmp_path / DECODER)
    else:
        with open(tmp_path / DECODER, "wb") as handle:
            pickle.dump(payload, handle, protocol=2)
    with pytest.raises(CheckpointError) as err:
        import_published(tmp_path)
    message = _one_line(err)
    assert message.startswith(str(tmp_path / DECODER) + ": refused")
    assert "system" in message and "run code" in message
    assert not marker.exists(), "the malicious pickle was executed"


def test_zip_that_is_not_a_zip(tmp_path) -> None:
    fake = tmp_path / "attn_adain_video.zip"
    fake.write_bytes(b"<html>quota exceeded</html>" * 10)
    with pytest.raises(CheckpointError) as err:
        import_published(fake)
    assert _one_line(err).startswith(f"{fake}: not a zip")


def test_corrupt_zip_member_is_refused(tmp_path, video_files) -> None:
    package = save_zip(
        tmp_path / "p.zip",
        {f"v/{name}": state for name, state in video_files.items()},
        tmp_path / "scratch",
    )
    with zipfile.ZipFile(package) as archive:
        info = archive.getinfo(f"v/{TRANSFORMER}")
    data = bytearray(package.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    data[start : start + 64] = bytes(64)  # damage the member's bytes: its CRC no longer matches
    package.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as err:
        import_published(package)
    assert f"{package}:v/{TRANSFORMER}" in _one_line(err)


# -- encoder weights (training) ----------------------------------------------------------------
def test_normalised_encoder_from_a_deeper_vgg_file(tmp_path, image_files) -> None:
    save_files(tmp_path, {VGG: image_files[VGG]})  # layers to idx 43: 31..43 are dropped
    encoder = VGGEncoder("vgg_normalised", deepest="relu4_1")
    load_encoder_weights(encoder, tmp_path / VGG)
    assert len(encoder.state_dict()) == 2 * 10  # 10 convs: idx 0, 2, ..., 29
    for key, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, image_files[VGG][key]), key
    assert not any(p.requires_grad for p in encoder.parameters())


def test_normalised_encoder_needs_a_file() -> None:
    with pytest.raises(MissingWeightsError, match=DRIVE_IDS["vgg_normalised"]):
        load_encoder_weights(VGGEncoder("vgg_normalised"), None)


def test_torchvision_encoder_from_features_only_file(tmp_path) -> None:
    features = torchvision.models.vgg19().features.state_dict()  # random init, no download
    torch.save(features, tmp_path / "features.pth")
    encoder = VGGEncoder("torchvision_vgg19", deepest="relu3_1")
    load_encoder_weights(encoder, tmp_path / "features.pth")
    assert encoder.state_dict().keys() <= features.keys()
    for key, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, features[key]), key


@pytest.mark.slow
def test_torchvision_encoder_from_a_full_vgg19_state_dict(tmp_path) -> None:
    """A real torchvision vgg19() state dict (random init; 548 MB with the classifier)."""
    full = torchvision.models.vgg19().state_dict()
    torch.save(full, tmp_path / "vgg19.pth")
    encoder = VGGEncoder("torchvision_vgg19", deepest="relu5_1")
    load_encoder_weights(encoder, tmp_path / "vgg19.pth")
    for key, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, full[f"features.{key}"]), key


def test_torchvision_encoder_refuses_a_normalised_vgg_file(tmp_path, video_files) -> None:
    save_files(tmp_path, {VGG: video_files[VGG]})
    with pytest.raises(CheckpointError, match="not interchangeable") as err:
        load_encoder_weights(VGGEncoder("torchvision_vgg19"), tmp_path / VGG)
    message = _one_line(err)
    assert str(tmp_path / VGG) in message and "holds the normalised VGG" in message


def test_normalised_encoder_refuses_a_torchvision_file(tmp_path) -> None:
    torch.save(torchvision.models.vgg19().features.state_dict(), tmp_path / "features.pth")
    with pytest.raises(CheckpointError, match="holds the torchvision vgg19 encoder") as err:
        load_encoder_weights(VGGEncoder("vgg_normalised"), tmp_path / "features.pth")
    _one_line(err)


def test_torchvision_download_offline_gives_one_line(tmp_path, monkeypatch) -> None:
    """No internet here: only the download call (torch.hub.download_url_to_file, which
    torchvision's weights API uses) is mocked to fail as it does offline; the hub cache is an
    empty temp dir so nothing cached is found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []

    def offline(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsDownloadError) as err:
        load_encoder_weights(VGGEncoder("torchvision_vgg19"), None)
    message = _one_line(err)
    assert "could not download torchvision's VGG19" in message
    assert "pass a local file" in message
    assert calls == [torchvision.models.VGG19_Weights.IMAGENET1K_V1.url]


# -- downloads ---------------------------------------------------------------------------------
@pytest.fixture
def drive_files(tmp_path, video_files) -> dict[str, bytes]:
    """What Google Drive would send for each id: the vgg file and the video package zip."""
    scratch = tmp_path / "drive"
    save_files(scratch, {VGG: video_files[VGG]})
    save_zip(
        scratch / "package.zip",
        {f"attn_adain_video/{k}": v for k, v in video_files.items() if k != VGG},
        scratch / "tmp",
    )
    return {
        DRIVE_IDS["vgg_normalised"]: (scratch / VGG).read_bytes(),
        DRIVE_IDS["video"]: (scratch / "package.zip").read_bytes(),
    }


def test_download_imports_into_the_cache(tmp_path, monkeypatch, drive_files, video_files) -> None:
    """No internet here: gdown.download (the network call) is mocked to write the bytes Google
    Drive would send, in chunks, into the file object it is given."""
    import gdown

    requested = []

    def fake_download(*, id, output, quiet=False, timeout=None):  # gdown >= 6 signature
        requested.append(id)
        assert timeout, "a stalled connection must time out, not hang"
        data = drive_files[id]
        for start in range(0, len(data), 1 << 20):
            output.write(data[start : start + (1 << 20)])
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    cache = tmp_path / "cache"
    path = download_published("video", cache)
    assert path == cache / "video.safetensors"
    assert sorted(requested) == sorted([DRIVE_IDS["video"], DRIVE_IDS["vgg_normalised"]])
    model = load_checkpoint(path)
    assert torch.equal(_outputs(model), _outputs(model_from_state_dicts("video", video_files)))
    assert not [p for p in cache.rglob("*") if p.name.endswith(".part")]
    # A second call finds the complete downloads and fetches nothing again.
    download_published("video", cache)
    assert len(requested) == 2


def test_download_failing_midway_leaves_no_partial_file(tmp_path, monkeypatch, drive_files) -> None:
    """No internet here: gdown.download is mocked to write half the package, then lose the
    connection the way requests reports it."""
    import gdown
    import requests

    def flaky(*, id, output, **options):
        data = drive_files[id]
        if id == DRIVE_IDS["video"]:
            output.write(data[: len(data) // 2])
            raise requests.exceptions.ConnectionError("Connection reset by peer")
        output.write(data)
        return output

    monkeypatch.setattr(gdown, "download", flaky)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsDownloadError) as err:
        download_published("video", cache)
    message = _one_line(err)
    assert message.startswith("could not reach Google Drive")
    assert DRIVE_IDS["video"] in message and DRIVE_IDS["vgg_normalised"] in message
    assert "stylestream weights import" in message
    files = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())
    assert files == [f"published/{VGG}"], "only the complete file may remain"
    assert not (cache / "video.safetensors").exists()


def test_download_offline(tmp_path, monkeypatch) -> None:
    """No internet here: gdown.download is mocked to fail on the first request as it does
    without a network."""
    import gdown
    import requests

    def offline(*, id, output, **options):
        raise requests.exceptions.ConnectionError("Failed to resolve 'drive.google.com'")

    monkeypatch.setattr(gdown, "download", offline)
    with pytest.raises(WeightsDownloadError) as err:
        download_published("image", tmp_path)
    message = _one_line(err)
    assert "could not reach Google Drive" in message and DRIVE_IDS["image"] in message
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]

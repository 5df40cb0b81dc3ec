"""The project's own safetensors checkpoints and the model every command opens."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from adaattn_video import (
    CheckpointError,
    MissingWeightsError,
    ModelConfig,
    load_checkpoint,
    open_model,
    save_checkpoint,
)
from adaattn_video.checkpoint import CACHE_ENV, FORMAT, default_checkpoint


@pytest.mark.parametrize(
    "config", [ModelConfig(), ModelConfig(attention="softmax", encoder_family="torchvision_vgg19")]
)
def test_round_trip_rebuilds_the_same_model(tmp_path, config: ModelConfig) -> None:
    model = open_model(None, untrained=True, config=config)
    path = save_checkpoint(model, tmp_path / "model.safetensors", {"source": "test"})
    loaded = load_checkpoint(path)
    assert loaded.config == config
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[key]), key
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_untrained_model_is_deterministic() -> None:
    first, second = open_model(None, untrained=True), open_model(None, untrained=True)
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )


def test_refuses_foreign_or_broken_files(tmp_path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a stylestream checkpoint"):
        load_checkpoint(foreign)
    future = tmp_path / "future.safetensors"
    save_file(
        {"x": torch.zeros(2)}, str(future), metadata={"format": FORMAT, "format_version": "99"}
    )
    with pytest.raises(CheckpointError, match="version"):
        load_checkpoint(future)
    truncated = tmp_path / "truncated.safetensors"
    good = save_checkpoint(open_model(None, untrained=True), tmp_path / "good.safetensors")
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"truncated\.safetensors"):
        load_checkpoint(truncated)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_refuses_unknown_encoder_family_and_misshaped_tensors(tmp_path) -> None:
    model = open_model(None, untrained=True)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    bad_config = tmp_path / "family.safetensors"
    meta = {"format": FORMAT, "format_version": "1"}
    save_file(
        tensors,
        str(bad_config),
        metadata={**meta, "model_config": '{"encoder_family": "resnet50"}'},
    )
    with pytest.raises(CheckpointError, match="cannot build"):
        load_checkpoint(bad_config)
    tensors["transformer.f.weight"] = torch.zeros(448, 448, 3, 3)
    misshaped = tmp_path / "shape.safetensors"
    save_file(tensors, str(misshaped), metadata={**meta, "model_config": ModelConfig().to_json()})
    with pytest.raises(CheckpointError, match=r"transformer.f.weight has shape \(448, 448, 3, 3\)"):
        load_checkpoint(misshaped)


def test_open_model_uses_the_cache_and_explains_how_to_get_weights(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(MissingWeightsError, match="stylestream weights download"):
        open_model(None)
    save_checkpoint(open_model(None, untrained=True), default_checkpoint())
    assert open_model(None).config == ModelConfig()
    with pytest.raises(ValueError, match="not both"):
        open_model(default_checkpoint(), untrained=True)

"""Frozen VGG weights for the training loss encoder (normalised VGG or torchvision's VGG19)."""

from __future__ import annotations

import logging
import urllib.error
from pathlib import Path

from torch import Tensor

from adaattn_video.encoder import VGGEncoder
from adaattn_video.errors import CheckpointError, MissingWeightsError, WeightsDownloadError
from adaattn_video.published.catalog import DRIVE_IDS, VGG_FILE, drive_url
from adaattn_video.published.layouts import check_file_state, drop_deeper_vgg_layers
from adaattn_video.published.safe_load import load_state_dict_safe
from adaattn_video.published.text import first_line

log = logging.getLogger(__name__)


def _torchvision_vgg19_state() -> dict[str, Tensor]:
    """torchvision's ImageNet VGG19 through its weights API and cache (needs internet once)."""
    from torchvision.models import VGG19_Weights

    weights = VGG19_Weights.IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
        raise WeightsDownloadError(
            f"could not download torchvision's VGG19 ImageNet weights from {weights.url} "
            f"({first_line(err)}); offline, pass a local file instead (a torchvision vgg19 "
            "state dict .pth, e.g. copied from ~/.cache/torch/hub/checkpoints on a machine "
            "that has it)"
        ) from err


def load_encoder_weights(encoder: VGGEncoder, source: str | Path | None) -> None:
    """Load frozen VGG weights into ``encoder`` (only the layers it has are kept).

    * ``vgg_normalised``: ``source`` is a ``vgg_normalised.pth`` (the full 53-module file or a
      prefix deep enough).
    * ``torchvision_vgg19``: ``source=None`` downloads ``VGG19_Weights.IMAGENET1K_V1`` through
      torchvision's cache (online only); or a local file, either a full ``vgg19`` state dict
      (``features.N.*`` and ``classifier.*`` keys) or the features alone (``N.*``).

    Raises:
        MissingWeightsError / CheckpointError / WeightsDownloadError with one-line messages.
    """
    family = encoder.family
    expected = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    what = f"the {family} encoder up to {encoder.deepest}"
    if source is None:
        if family == "vgg_normalised":
            raise MissingWeightsError(
                f"the vgg_normalised encoder needs a {VGG_FILE} file: download it from "
                f"{drive_url(DRIVE_IDS['vgg_normalised'])} and pass its path"
            )
        location = "torchvision VGG19_Weights.IMAGENET1K_V1"
        state = {k.removeprefix("module."): v for k, v in _torchvision_vgg19_state().items()}
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"encoder weights file {path} does not exist")
        location = str(path)
        state = load_state_dict_safe(path, location)
    if family == "torchvision_vgg19" and any(k.startswith("features.") for k in state):
        others = [k for k in state if not k.startswith(("features.", "classifier."))]
        if others:
            raise CheckpointError(
                f"{location}: {len(others)} unexpected key(s) for a torchvision vgg19 state "
                f"dict, e.g. {others[:3]}"
            )
        state = {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
    first = state.get("0.weight")
    if first is not None and tuple(first.shape) != expected["0.weight"]:
        found = (
            "normalised VGG (vgg_normalised.pth)" if first.shape[-1] == 1 else "torchvision vgg19"
        )
        raise CheckpointError(
            f"{location}: holds the {found} encoder, not {family}; the two encoder families "
            "are not interchangeable (a decoder trained with one does not work with the other)"
        )
    state = drop_deeper_vgg_layers(state, expected, family)
    check_file_state(state, expected, location, what=what)
    encoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    encoder.requires_grad_(False)
    log.info("loaded %s weights from %s", family, location)

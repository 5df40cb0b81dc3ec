"""Importing the published files into one stylestream safetensors file.

The published files are pickled PyTorch state dicts. They are only ever opened with
``torch.load(weights_only=True)`` (:mod:`adaattn_video.published.safe_load`), checked key by key
and shape by shape against the architecture (:mod:`adaattn_video.published.layouts`), and turned
into one safetensors file that every command can load without pickle.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from adaattn_video.checkpoint import cache_dir, load_state_strict, save_checkpoint
from adaattn_video.config import VARIANTS, ModelConfig, Variant
from adaattn_video.errors import CheckpointError, MissingWeightsError
from adaattn_video.model import StyleTransferModel, build_model
from adaattn_video.published.catalog import (
    ADAATTN_3_FILE,
    DECODER_FILE,
    DRIVE_IDS,
    TRANSFORMER_FILE,
    VGG_FILE,
    drive_url,
    manual_download_hint,
)
from adaattn_video.published.files import FoundFile, find_published_files, searched_text
from adaattn_video.published.layouts import (
    LAYOUTS,
    check_file_state,
    drop_deeper_vgg_layers,
    expected_file_keys,
    transformer_variant,
)
from adaattn_video.published.safe_load import load_state_dict_safe, sha256_of

log = logging.getLogger(__name__)


def cached_checkpoint(variant: Variant = "video") -> Path:
    """Where the imported model of ``variant`` lives in the cache (``video.safetensors`` is the
    default every command looks for)."""
    return cache_dir() / f"{variant}.safetensors"


@dataclass(frozen=True)
class ModelFiles:
    """The published files of one model, as found."""

    variant: Variant
    files: dict[str, FoundFile]  # published name -> file


def _select_model_files(
    found: list[FoundFile],
    states: dict[str, dict[str, Tensor]],
    sources: Sequence[Path],
    variant: str | None,
) -> ModelFiles:
    """Group the found files into model sets and pick exactly one (``variant`` may narrow)."""
    transformers = [f for f in found if f.name == TRANSFORMER_FILE]
    if not transformers:
        raise MissingWeightsError(
            f"no {TRANSFORMER_FILE} found: {searched_text(sources, variant)}; "
            f"{manual_download_hint(variant or 'video')}"
        )
    sets: list[tuple[Variant, FoundFile]] = []
    for file in transformers:
        states[file.location] = load_state_dict_safe(file.source(), file.location)
        sets.append((transformer_variant(states[file.location], file.location), file))
    found_text = "; ".join(f"{v} model in {f.folder_text}" for v, f in sets)
    matching = [(v, f) for v, f in sets if variant is None or v == variant]
    if not matching:
        raise MissingWeightsError(
            f"no {variant} model found (found: {found_text}); "
            f"{manual_download_hint(variant or 'video')}"
        )
    if len(matching) > 1:
        advice = (
            "pass --variant video or --variant image"
            if variant is None and len({v for v, _ in matching}) > 1
            else "pass a narrower SRC (one of those directories)"
        )
        raise CheckpointError(f"found {len(matching)} model sets ({found_text}): {advice}")
    chosen_variant, transformer = matching[0]
    files = {TRANSFORMER_FILE: transformer}
    needed = [DECODER_FILE] + ([ADAATTN_3_FILE] if chosen_variant == "image" else [])
    for name in needed:
        beside = [f for f in found if f.name == name and f.folder == transformer.folder]
        if not beside:
            raise MissingWeightsError(
                f"{name} not found beside {transformer.location} (the {chosen_variant} model "
                f"needs {TRANSFORMER_FILE}, {', '.join(needed)} in one directory); "
                f"{searched_text(sources, chosen_variant)}"
            )
        files[name] = beside[0]
    files[VGG_FILE] = _nearest_vgg(found, transformer, sources, chosen_variant)
    return ModelFiles(chosen_variant, files)


def _nearest_vgg(
    found: list[FoundFile], transformer: FoundFile, sources: Sequence[Path], variant: str
) -> FoundFile:
    """The ``vgg_normalised.pth`` in the model's directory or the closest one above it; else the
    only one found."""
    vggs = [f for f in found if f.name == VGG_FILE]
    if not vggs:
        raise MissingWeightsError(
            f"no {VGG_FILE} found: {searched_text(sources, variant)}; download it from "
            f"{drive_url(DRIVE_IDS['vgg_normalised'])} and put it beside the other files"
        )
    above = [f for f in vggs if transformer.folder[: len(f.folder)] == f.folder]
    if above:
        return max(above, key=lambda f: len(f.folder))
    if len(vggs) == 1:
        return vggs[0]
    raise CheckpointError(
        f"found {len(vggs)} {VGG_FILE} files ({', '.join(f.location for f in vggs)}) and none "
        f"beside or above {transformer.location}: pass a narrower SRC"
    )


def _import(
    sources: Sequence[str | Path], variant: str | None
) -> tuple[StyleTransferModel, dict[str, str]]:
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS} or None, got {variant!r}")
    paths = [Path(s).expanduser() for s in sources]
    found = find_published_files(paths)
    states: dict[str, dict[str, Tensor]] = {}
    chosen = _select_model_files(found, states, paths, variant)
    config = ModelConfig(
        variant=chosen.variant,
        encoder_family="vgg_normalised",
        attention="cosine" if chosen.variant == "video" else "softmax",
    )
    model = build_model(config)
    model_state = model.state_dict()
    what = f"the {chosen.variant} model"
    combined: dict[str, Tensor] = {}
    provenance = []
    for layout in LAYOUTS[chosen.variant]:
        file = chosen.files[layout.name]
        data = file.source()
        state = states.get(file.location) or load_state_dict_safe(data, file.location)
        expected = expected_file_keys(model_state, layout)
        if layout.name == VGG_FILE:
            state = drop_deeper_vgg_layers(state, expected, "vgg_normalised")
        check_file_state(state, expected, file.location, what=what)
        for key, value in state.items():
            combined[layout.model_prefix + key[len(layout.file_prefix) :]] = value
        provenance.append(
            {"name": layout.name, "location": file.location, "sha256": sha256_of(data)}
        )
        log.debug("%s: %d tensors checked", file.location, len(state))
    load_state_strict(model, combined, ", ".join(p["location"] for p in provenance))
    metadata = {
        "source": "published AdaAttN weights (stylestream weights import)",
        "variant": chosen.variant,
        "source_files": json.dumps(provenance),
    }
    return model.eval(), metadata


def import_published(
    src: str | Path | Sequence[str | Path], *, variant: Variant | None = None
) -> StyleTransferModel:
    """Build the model the published files under ``src`` describe.

    Args:
        src: a directory (searched recursively), a downloaded ``.zip``/``.tar`` package, or
            several of them (e.g. the package and ``vgg_normalised.pth``).
        variant: ``"video"`` or ``"image"`` when ``src`` holds both packages.

    Raises:
        MissingWeightsError: a file is missing (the message says which names were searched where).
        CheckpointError: a file is refused (not a state dict, code in the pickle, truncated,
            missing/extra/misshaped key, an archive member over the size limits) or the choice
            of model is ambiguous.
    """
    sources = [src] if isinstance(src, (str, Path)) else list(src)
    return _import(sources, variant)[0]


@dataclass(frozen=True)
class ImportResult:
    """Attributes: path (the safetensors file written), model, metadata (as written)."""

    path: Path
    model: StyleTransferModel
    metadata: dict[str, str]


def import_weights(
    src: str | Path | Sequence[str | Path],
    out: str | Path | None = None,
    *,
    variant: Variant | None = None,
) -> ImportResult:
    """Import the published files under ``src`` into one safetensors file.

    ``out`` defaults to the cache (``video.safetensors`` / ``image.safetensors``), where every
    command looks when no ``--weights`` is given. The metadata records the variant and each
    source file's name, location and sha256.
    """
    sources = [src] if isinstance(src, (str, Path)) else list(src)
    model, metadata = _import(sources, variant)
    path = Path(out) if out is not None else cached_checkpoint(model.config.variant)
    if path.suffix != ".safetensors":
        raise ValueError(f"output must be a .safetensors file, got {path}")
    save_checkpoint(model, path, metadata)
    log.debug("wrote %s (%s model)", path, model.config.variant)
    return ImportResult(path, model, metadata)

"""Getting weights: the published AdaAttN files (SPEC section 4) and torchvision's VGG19.

The published files are pickled PyTorch state dicts. They are only ever opened with
``torch.load(..., map_location="cpu", weights_only=True)`` (which refuses any pickle that
would import code), checked key by key and shape by shape against the architecture, and turned
into one stylestream safetensors file (:func:`import_weights`) that every command can load
without pickle.

Where the files come from (Google Drive ids from the reference repository's README): the video
package, the image package and ``vgg_normalised.pth``. The packages' archive layout could not be
checked from here, so files are found by name (searched recursively, also inside ``.zip`` and
``.tar`` archives) and the two packages, which share file names, are told apart by their keys.

Key mapping (published file -> model):

===========================  =========================================  =========================
file                          file keys                                  model keys
===========================  =========================================  =========================
vgg_normalised.pth            ``N.weight`` (53-module Sequential)         ``encoder.N.weight``
video latest_net_transformer  ``f.*``, ``g.*``, ``h.*``                   ``transformer.*``
video latest_net_decoder      ``decoder.N.*``                             ``decoder.N.*``
image latest_net_adaattn_3    ``f.*``, ``g.*``, ``h.*``                   ``adaattn_3.*``
image latest_net_transformer  ``attn_adain_4_1.*``, ``attn_adain_5_1.*``,  ``transformer.*``
                              ``merge_conv.*``
image latest_net_decoder      ``decoder_layer_1.*``, ``decoder_layer_2.*``  ``decoder.*``
===========================  =========================================  =========================
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import os
import pickle
import re
import tarfile
import tempfile
import urllib.error
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from adaattn_video.checkpoint import cache_dir, load_state_strict, save_checkpoint
from adaattn_video.config import VARIANTS, ModelConfig, Variant
from adaattn_video.encoder import VGGEncoder
from adaattn_video.errors import CheckpointError, MissingWeightsError, StylestreamError
from adaattn_video.model import StyleTransferModel, build_model

log = logging.getLogger(__name__)

VGG_FILE = "vgg_normalised.pth"
TRANSFORMER_FILE = "latest_net_transformer.pth"
DECODER_FILE = "latest_net_decoder.pth"
ADAATTN_3_FILE = "latest_net_adaattn_3.pth"
PUBLISHED_FILES: tuple[str, ...] = (VGG_FILE, TRANSFORMER_FILE, DECODER_FILE, ADAATTN_3_FILE)

# Google Drive file ids (SPEC section 4).
DRIVE_IDS: dict[str, str] = {
    "video": "1ZrFPrbSR56WXL2l62Jh7qjmuaWugJtvL",
    "image": "1XvpD1eI4JeCBIaW5uwMT6ojF_qlzM_lo",
    "vgg_normalised": "1BinnwM5AmIcVubr16tPTqxMjUCE8iu5M",
}

DOWNLOAD_TIMEOUT_S = 60.0  # seconds without a byte before a download gives up

_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
# The last module index of each VGG family (53 modules for the normalised VGG, 37 for
# torchvision's ``features``): layers past what a model needs but within these are dropped.
_VGG_LAST_INDEX = {"vgg_normalised": 52, "torchvision_vgg19": 36}
_VGG_KEY = re.compile(r"(\d+)\.(weight|bias)")


class WeightsDownloadError(StylestreamError, ConnectionError):
    """The published weights (or torchvision's VGG19) could not be downloaded."""


def drive_url(file_id: str) -> str:
    return f"https://drive.google.com/uc?id={file_id}"


def cached_checkpoint(variant: Variant = "video") -> Path:
    """Where the imported model of ``variant`` lives in the cache (``video.safetensors`` is the
    default every command looks for)."""
    return cache_dir() / f"{variant}.safetensors"


def _manual_download_hint(variant: str) -> str:
    return (
        f"download {drive_url(DRIVE_IDS[variant])} (the {variant} package) and "
        f"{drive_url(DRIVE_IDS['vgg_normalised'])} ({VGG_FILE}) by hand and run "
        "`stylestream weights import DIR_OR_ZIP`"
    )


# -- finding files ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FoundFile:
    """A published file found on disk or inside an archive.

    Attributes:
        name: its base name (``latest_net_decoder.pth``).
        location: what messages show (``/x/a.zip:attn_adain_video/latest_net_decoder.pth``).
        folder: the directory it sits in, an archive counting as a directory (used to group the
            files of one model and to find the VGG file nearest to them).
    """

    name: str
    location: str
    folder: tuple[str, ...]
    # The file's bytes (archive member) or its path (loose file, loaded without a copy).
    source: Callable[[], bytes | Path] = field(repr=False, compare=False)

    @property
    def folder_text(self) -> str:
        return "/".join(self.folder).replace("//", "/") or "."


def _is_archive_name(path: Path) -> bool:
    return path.name.lower().endswith(_ARCHIVE_SUFFIXES)


def _archive_files(archive: Path) -> list[FoundFile]:
    """The published files inside a zip or tar archive (read lazily, never extracted to disk)."""
    base = archive.resolve().parts
    found: list[FoundFile] = []
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as handle:
                names = [info.filename for info in handle.infolist() if not info.is_dir()]
        except (zipfile.BadZipFile, OSError) as err:
            raise CheckpointError(f"{archive}: not a readable zip archive ({err})") from err
        for member in names:
            member_path = Path(member)
            if member_path.name not in PUBLISHED_FILES:
                continue

            def read_zip(member: str = member) -> bytes:
                try:
                    with zipfile.ZipFile(archive) as handle:
                        return handle.read(member)
                except (zipfile.BadZipFile, OSError, EOFError) as err:
                    raise CheckpointError(
                        f"{archive}:{member}: cannot be read from the zip ({_first_line(err)}); "
                        "download the package again"
                    ) from err

            found.append(
                FoundFile(
                    member_path.name,
                    f"{archive}:{member}",
                    (*base, *member_path.parent.parts),
                    read_zip,
                )
            )
        return found
    if tarfile.is_tarfile(archive):
        try:
            with tarfile.open(archive) as handle:
                names = [m.name for m in handle.getmembers() if m.isfile()]
        except (tarfile.TarError, OSError, EOFError) as err:
            raise CheckpointError(f"{archive}: not a readable tar archive ({err})") from err
        for member in names:
            member_path = Path(member)
            if member_path.name not in PUBLISHED_FILES:
                continue

            def read_tar(member: str = member) -> bytes:
                try:
                    with tarfile.open(archive) as handle:
                        extracted = handle.extractfile(member)
                        if extracted is None:
                            raise CheckpointError(f"{archive}:{member}: not a regular file")
                        return extracted.read()
                except (tarfile.TarError, OSError, EOFError) as err:
                    raise CheckpointError(
                        f"{archive}:{member}: cannot be read from the tar archive "
                        f"({_first_line(err)}); download the package again"
                    ) from err

            found.append(
                FoundFile(
                    member_path.name,
                    f"{archive}:{member}",
                    (*base, *member_path.parent.parts),
                    read_tar,
                )
            )
        return found
    raise CheckpointError(
        f"{archive}: not a zip (or tar) archive; give the downloaded package as it is, "
        "or a directory holding the extracted .pth files"
    )


def find_published_files(sources: Iterable[str | Path]) -> list[FoundFile]:
    """Every published file under ``sources`` (directories searched recursively, archives read
    in place, loose ``.pth`` files taken by name)."""
    found: list[FoundFile] = []
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise MissingWeightsError(
                f"{path} does not exist; give the directory or the .zip holding the published files"
            )
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if not file.is_file():
                    continue
                if file.name in PUBLISHED_FILES:
                    found.append(
                        FoundFile(
                            file.name, str(file), file.resolve().parent.parts, partial(Path, file)
                        )
                    )
                elif _is_archive_name(file):
                    found += _archive_files(file)
        elif _is_archive_name(path):
            found += _archive_files(path)
        elif path.name in PUBLISHED_FILES:
            found.append(
                FoundFile(path.name, str(path), path.resolve().parent.parts, partial(Path, path))
            )
        else:
            raise CheckpointError(
                f"{path}: expected a directory, a .zip/.tar package or one of {list(PUBLISHED_FILES)}"
            )
    return found


# -- loading one file safely -------------------------------------------------------------------
def _unpickling_reason(err: Exception) -> str:
    text = str(err)
    match = re.search(r"GLOBAL ([\w.]+)", text)
    if match:
        return (
            f"it is a pickle that imports {match.group(1)} (it would run code when loaded), "
            "not a plain state dict of tensors"
        )
    match = re.search(r"(Unsupported [^\n.]*)", text)
    detail = f" ({match.group(1).strip()})" if match else ""
    return f"not a PyTorch state-dict file: the safe loader rejected it{detail}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def load_state_dict_safe(data: bytes | Path, location: str) -> dict[str, Tensor]:
    """Unpickle ``data`` (bytes or a file path) with ``torch.load(weights_only=True)`` and check
    it is a state dict.

    Returns a plain dict of name -> tensor with any ``module.`` prefix stripped.

    Raises:
        CheckpointError: empty, truncated or corrupt file; a pickle that carries code; anything
            that is not a mapping of string keys to tensors.
    """
    size = data.stat().st_size if isinstance(data, Path) else len(data)
    if size == 0:
        raise CheckpointError(f"{location}: the file is empty (0 bytes); download it again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notices from the safe unpickler
            source = data if isinstance(data, Path) else io.BytesIO(data)
            obj = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{location}: refused: {_unpickling_reason(err)}") from err
    except Exception as err:  # untrusted bytes: torch raises many types for a torn file
        raise CheckpointError(
            f"{location}: cannot be read, the file is truncated or corrupt "
            f"({type(err).__name__}: {_first_line(err)}); download it again"
        ) from err
    if isinstance(obj, Tensor):
        raise CheckpointError(f"{location}: holds a single tensor, not a state dict")
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{location}: holds a {type(obj).__name__}, not a state dict (a mapping of names "
            "to tensors)"
        )
    if not obj:
        raise CheckpointError(f"{location}: holds an empty dict, not a state dict")
    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{location}: key {key!r} is not a string: not a state dict")
        if not isinstance(value, Tensor):
            raise CheckpointError(
                f"{location}: key {key!r} holds a {type(value).__name__}, not a tensor: "
                "not a state dict"
            )
        state[key.removeprefix("module.")] = value
    return state


# -- checking one file against the architecture ------------------------------------------------
@dataclass(frozen=True)
class _FileLayout:
    """How one published file's keys map into the model."""

    name: str
    file_prefix: str  # every key of the file starts with this
    model_prefix: str  # ... which becomes this in the model


_LAYOUTS: dict[str, tuple[_FileLayout, ...]] = {
    "video": (
        _FileLayout(VGG_FILE, "", "encoder."),
        _FileLayout(TRANSFORMER_FILE, "", "transformer."),
        _FileLayout(DECODER_FILE, "decoder.", "decoder."),
    ),
    "image": (
        _FileLayout(VGG_FILE, "", "encoder."),
        _FileLayout(ADAATTN_3_FILE, "", "adaattn_3."),
        _FileLayout(TRANSFORMER_FILE, "", "transformer."),
        _FileLayout(DECODER_FILE, "", "decoder."),
    ),
}


def _expected_file_keys(
    model_state: Mapping[str, Tensor], layout: _FileLayout
) -> dict[str, tuple[int, ...]]:
    return {
        layout.file_prefix + key[len(layout.model_prefix) :]: tuple(value.shape)
        for key, value in model_state.items()
        if key.startswith(layout.model_prefix)
    }


def _drop_deeper_vgg_layers(
    state: dict[str, Tensor], expected: Mapping[str, tuple[int, ...]], family: str
) -> dict[str, Tensor]:
    """Keep the VGG layers the model needs; drop deeper layers of a complete VGG file."""
    needed_last = max(int(_VGG_KEY.fullmatch(k).group(1)) for k in expected)  # type: ignore[union-attr]
    kept = {}
    for key, value in state.items():
        match = _VGG_KEY.fullmatch(key)
        if (
            key not in expected
            and match
            and needed_last < int(match.group(1)) <= _VGG_LAST_INDEX[family]
        ):
            continue
        kept[key] = value
    return kept


def _check_file_state(
    state: Mapping[str, Tensor],
    expected: Mapping[str, tuple[int, ...]],
    location: str,
    *,
    what: str,
) -> None:
    """Every key and shape of one file, with messages in the file's own key names."""
    missing = sorted(set(expected) - set(state), key=_natural)
    extra = sorted(set(state) - set(expected), key=_natural)
    if missing:
        hint = ""
        if all(_VGG_KEY.fullmatch(k) for k in expected):
            present = [int(m.group(1)) for k in state if (m := _VGG_KEY.fullmatch(k))]
            needed = max(int(_VGG_KEY.fullmatch(k).group(1)) for k in expected)  # type: ignore[union-attr]
            hint = (
                f" (it has layers up to idx {max(present) if present else 'none'}; "
                f"{what} needs idx 0..{needed + 1})"
            )
        raise CheckpointError(
            f"{location}: missing {len(missing)} key(s) {what} needs, e.g. {missing[:3]}{hint}"
        )
    if extra:
        raise CheckpointError(
            f"{location}: {len(extra)} unexpected key(s) for {what}, e.g. {extra[:3]}; "
            "is it the right file?"
        )
    for key in sorted(expected, key=_natural):
        tensor = state[key]
        if tuple(tensor.shape) != expected[key]:
            raise CheckpointError(
                f"{location}: {key} has shape {tuple(tensor.shape)}, {what} expects {expected[key]}"
            )
        if not tensor.is_floating_point():
            raise CheckpointError(f"{location}: {key} has dtype {tensor.dtype}, expected float")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{location}: {key} holds NaN or infinite values")


def _natural(key: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def transformer_variant(state: Mapping[str, Tensor], location: str) -> Variant:
    """Which package a ``latest_net_transformer.pth`` belongs to, from its keys."""
    weight = state.get("f.weight")
    if weight is not None and tuple(weight.shape) == (448, 448, 1, 1):
        return "video"
    if any(key.startswith("attn_adain_4_1.") for key in state):
        return "image"
    raise CheckpointError(
        f"{location}: neither the video transformer (f.weight of shape (448, 448, 1, 1)) nor "
        f"the image transformer (attn_adain_4_1.*); its keys start with {sorted(state)[:3]}"
    )


# -- importing a model -------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFiles:
    """The published files of one model, as found."""

    variant: Variant
    files: dict[str, FoundFile]  # published name -> file


def _sha256(data: bytes | Path) -> str:
    if isinstance(data, Path):
        digest = hashlib.sha256()
        with data.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return hashlib.sha256(data).hexdigest()


def _searched(sources: Sequence[Path], variant: str | None) -> str:
    names = [VGG_FILE, TRANSFORMER_FILE, DECODER_FILE]
    if variant != "video":
        names.append(ADAATTN_3_FILE + (" (image model)" if variant is None else ""))
    where = ", ".join(str(s) for s in sources)
    return f"searched {where} recursively (directories, .zip and .tar files) for {', '.join(names)}"


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
            f"no {TRANSFORMER_FILE} found: {_searched(sources, variant)}; "
            f"{_manual_download_hint(variant or 'video')}"
        )
    sets: list[tuple[Variant, FoundFile]] = []
    for file in transformers:
        states[file.location] = load_state_dict_safe(file.source(), file.location)
        sets.append((transformer_variant(states[file.location], file.location), file))
    found_text = "; ".join(f"{v} model in {f.folder_text}" for v, f in sets)
    matching = [(v, f) for v, f in sets if variant is None or v == variant]
    if not matching:
        raise MissingWeightsError(
            f"no {variant} model found (found: {found_text}); {_manual_download_hint(variant or 'video')}"
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
                f"{_searched(sources, chosen_variant)}"
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
            f"no {VGG_FILE} found: {_searched(sources, variant)}; download it from "
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
    for layout in _LAYOUTS[chosen.variant]:
        file = chosen.files[layout.name]
        data = file.source()
        state = states.get(file.location) or load_state_dict_safe(data, file.location)
        expected = _expected_file_keys(model_state, layout)
        if layout.name == VGG_FILE:
            state = _drop_deeper_vgg_layers(state, expected, "vgg_normalised")
        _check_file_state(state, expected, file.location, what=what)
        for key, value in state.items():
            combined[layout.model_prefix + key[len(layout.file_prefix) :]] = value
        provenance.append({"name": layout.name, "location": file.location, "sha256": _sha256(data)})
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
            missing/extra/misshaped key) or the choice of model is ambiguous.
    """
    sources = [src] if isinstance(src, (str, Path)) else list(src)
    return _import(sources, variant)[0]


@dataclass(frozen=True)
class ImportResult:
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


# -- encoders for training ---------------------------------------------------------------------
def _torchvision_vgg19_state() -> dict[str, Tensor]:
    """torchvision's ImageNet VGG19 through its weights API and cache (needs internet once)."""
    from torchvision.models import VGG19_Weights

    weights = VGG19_Weights.IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
        raise WeightsDownloadError(
            f"could not download torchvision's VGG19 ImageNet weights from {weights.url} "
            f"({_first_line(err)}); offline, pass a local file instead (a torchvision vgg19 "
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
    state = _drop_deeper_vgg_layers(state, expected, family)
    _check_file_state(state, expected, location, what=what)
    encoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    encoder.requires_grad_(False)
    log.info("loaded %s weights from %s", family, location)


# -- downloading -------------------------------------------------------------------------------
def _network_reason(err: BaseException) -> str:
    """A short reason for a failed request (requests' own messages run to several hundred
    characters)."""
    text = str(err)
    if "NameResolution" in text or "name resolution" in text.lower():
        return "cannot resolve drive.google.com: no internet connection?"
    import requests

    if isinstance(err, requests.Timeout):
        return f"no answer within {DOWNLOAD_TIMEOUT_S:.0f} s"
    if isinstance(err, requests.ConnectionError):
        return f"connection failed: {_first_line(err)[:120]}"
    return f"{type(err).__name__}: {_first_line(err)[:160]}"


def _download_file(file_id: str, final: Path, *, quiet: bool = False) -> Path:
    """Download one Google Drive file to ``final`` atomically.

    The bytes go to a hidden temp file beside ``final`` which is renamed only when complete,
    so ``final`` never exists half-written; on any failure the temp file is removed.
    """
    import gdown  # the published files sit behind Google Drive's confirm pages
    import requests

    gdown_errors = tuple(
        getattr(gdown.exceptions, name)
        for name in ("DownloadError", "FileURLRetrievalError")
        if hasattr(gdown.exceptions, name)
    )
    options: dict[str, object] = {"quiet": quiet}
    if "timeout" in inspect.signature(gdown.download).parameters:  # gdown >= 6
        options["timeout"] = DOWNLOAD_TIMEOUT_S  # a stalled connection fails instead of hanging
    final.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 -- closed below, renamed on success
        dir=final.parent, prefix=f".{final.name}.", suffix=".part", delete=False
    )
    tmp = Path(handle.name)
    try:
        try:
            with handle:
                gdown.download(id=file_id, output=handle, **options)
                handle.flush()
                os.fsync(handle.fileno())
        except (requests.RequestException, *gdown_errors, OSError) as err:
            raise WeightsDownloadError(
                f"could not reach Google Drive for {drive_url(file_id)} ({_network_reason(err)})"
            ) from err
        if tmp.stat().st_size == 0:
            raise WeightsDownloadError(f"Google Drive sent an empty file for {drive_url(file_id)}")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _package_name(variant: str) -> str:
    return f"adaattn_{variant}_package"


def download_published(
    variant: Variant = "video",
    cache: str | Path | None = None,
    *,
    force: bool = False,
    quiet: bool = False,
) -> Path:
    """Download the published ``variant`` model and import it into the cache.

    Files land in ``CACHE/published/`` (``vgg_normalised.pth`` and the package archive; a file
    already there is complete, thanks to the atomic rename, and is not fetched again unless
    ``force``), then are imported into ``CACHE/<variant>.safetensors``. Returns that path.

    Raises:
        WeightsDownloadError: Google Drive unreachable (one line saying how to do it by hand).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    cache = Path(cache).expanduser() if cache is not None else cache_dir()
    folder = cache / "published"
    targets = {
        "vgg_normalised": folder / VGG_FILE,
        variant: folder / f"{_package_name(variant)}.zip",
    }
    # A package that turned out to be a tar archive was saved under a .tar name.
    tar_name = folder / f"{_package_name(variant)}.tar"
    if tar_name.is_file() and not force:
        targets[variant] = tar_name
    try:
        for key, target in targets.items():
            if target.is_file() and not force:
                log.info("using %s (already downloaded)", target)
                continue
            log.info("downloading %s from %s", target.name, drive_url(DRIVE_IDS[key]))
            _download_file(DRIVE_IDS[key], target, quiet=quiet)
            if key == variant and not zipfile.is_zipfile(target) and tarfile.is_tarfile(target):
                target = target.replace(tar_name)
                targets[key] = target
    except WeightsDownloadError as err:
        raise WeightsDownloadError(f"{err}; {_manual_download_hint(variant)}") from err
    result = import_weights(
        list(targets.values()), cache / f"{variant}.safetensors", variant=variant
    )
    return result.path

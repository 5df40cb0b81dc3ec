"""Training data: content photos, style paintings and (optionally) video frames.

Every random choice a sample makes (which crop, whether to flip) comes from a
``torch.Generator`` seeded with that sample's own seed, and the sampler decides which content
and style image each step uses from ``(seed, step, rank)`` alone. Batch ``k`` of a run is
therefore a pure function of the config and ``k``: a resumed run sees exactly the data the
uninterrupted run would have, whatever the number of DataLoader workers.

Shapes: images are (3, crop, crop) float32 in [0, 1]; a DataLoader batch stacks them to
(B, 3, crop, crop).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler, Sampler

from adaattn_video.errors import ImageReadError, StylestreamError
from adaattn_video.image_io import read_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})
_MAX_CONSECUTIVE_FAILURES = 50


class DataFolderError(StylestreamError, FileNotFoundError):
    """A data folder is missing, is not a folder, or holds no usable images."""


# -- finding and decoding images ----------------------------------------------------------------
def _natural_key(path: Path) -> list[int | str]:
    """Sort ``frame2.png`` before ``frame10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def find_images(root: str | Path, what: str = "image") -> list[Path]:
    """Every image file under ``root`` (any depth), in natural order.

    Raises:
        DataFolderError: ``root`` is missing, not a folder, or holds no image files.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataFolderError(f"{what} folder {root} does not exist")
    if not root.is_dir():
        raise DataFolderError(f"{what} folder {root} is not a folder")
    paths = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=_natural_key,
    )
    if not paths:
        raise DataFolderError(
            f"{what} folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}, "
            "searched at any depth)"
        )
    return paths


def decode_file(path: Path) -> Tensor | None:
    """(3, H, W) uint8 RGB, or None when the file cannot be read or decoded (logged once)."""
    try:
        image = read_image(path)  # Pillow: the first frame of an animated GIF
    except ImageReadError as err:
        log.warning("skipping unreadable image %s (%s)", path, str(err).splitlines()[0][:200])
        return None
    if image.shape[-1] < 2 or image.shape[-2] < 2:
        log.warning("skipping image %s: too small (%s)", path, tuple(image.shape))
        return None
    return image


def resize_shorter_side(image: Tensor, size: int) -> Tensor:
    """(3, H, W) uint8 -> (3, H', W') float32 in [0, 1] with min(H', W') = ``size``,
    aspect ratio kept (bilinear, antialiased when shrinking)."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    target = (max(size, round(h * scale)), max(size, round(w * scale)))
    x = image.unsqueeze(0).float().div_(255.0)
    if target != (h, w):
        x = F.interpolate(x, size=target, mode="bilinear", antialias=True, align_corners=False)
    return x[0].clamp_(0.0, 1.0)


@dataclass(frozen=True)
class CropParams:
    """Where to crop and whether to flip; drawn once and applied to every frame of a sample."""

    top: int
    left: int
    flip: bool


def random_crop_params(
    height: int, width: int, crop: int, generator: torch.Generator, *, flip: bool = True
) -> CropParams:
    top = int(torch.randint(0, height - crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - crop + 1, (1,), generator=generator))
    do_flip = bool(torch.rand((), generator=generator) < 0.5) if flip else False
    return CropParams(top, left, do_flip)


def apply_crop(image: Tensor, crop: int, params: CropParams) -> Tensor:
    out = image[:, params.top : params.top + crop, params.left : params.left + crop]
    return out.flip(-1).contiguous() if params.flip else out.contiguous()


# -- datasets ----------------------------------------------------------------------------------
class ImageFolder:
    """The images under a folder, loaded at ``load_size`` (shorter side) and random-cropped.

    Not a torch Dataset itself: :class:`TrainingSet` composes several of these.
    """

    def __init__(self, root: str | Path, load_size: int, crop_size: int, what: str) -> None:
        self.root = Path(root)
        self.paths = find_images(root, what)
        self.load_size = load_size
        self.crop_size = crop_size
        self.what = what

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int, generator: torch.Generator) -> tuple[Tensor, int]:
        """A random crop of image ``index`` (or of the next readable one).

        Returns:
            (3, crop, crop) float32 in [0, 1], and how many unreadable files were skipped.
        """
        skipped = 0
        for attempt in range(min(len(self.paths), _MAX_CONSECUTIVE_FAILURES)):
            image = decode_file(self.paths[(index + attempt) % len(self.paths)])
            if image is None:
                skipped += 1
                continue
            image = resize_shorter_side(image, self.load_size)
            params = random_crop_params(*image.shape[-2:], self.crop_size, generator)
            return apply_crop(image, self.crop_size, params), skipped
        raise DataFolderError(
            f"{self.what} folder {self.root}: {skipped} images in a row could not be decoded "
            f"(from {self.paths[index]}); check the files"
        )


class VideoFramePairs:
    """Pairs of frames ``gap`` apart from clips: every folder under ``root`` that directly holds
    at least ``gap + 1`` images is one clip, its frames in natural name order."""

    def __init__(self, root: str | Path, load_size: int, crop_size: int, gap: int = 1) -> None:
        self.root = Path(root)
        images = find_images(root, "video")
        clips: dict[Path, list[Path]] = {}
        for path in images:
            clips.setdefault(path.parent, []).append(path)
        self.pairs: list[tuple[Path, Path]] = [
            (frames[i], frames[i + gap])
            for frames in clips.values()
            for i in range(len(frames) - gap)
        ]
        if not self.pairs:
            raise DataFolderError(
                f"video folder {root}: no clip folder holds {gap + 1} or more frames "
                "(each clip is a folder of consecutive frames)"
            )
        self.clip_count = sum(len(f) > gap for f in clips.values())
        self.load_size = load_size
        self.crop_size = crop_size

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int, generator: torch.Generator) -> tuple[Tensor, Tensor, int]:
        """Frames t and t + gap with the same crop and flip: two (3, crop, crop), skipped count."""
        skipped = 0
        for attempt in range(min(len(self.pairs), _MAX_CONSECUTIVE_FAILURES)):
            first_path, second_path = self.pairs[(index + attempt) % len(self.pairs)]
            first, second = decode_file(first_path), decode_file(second_path)
            if first is None or second is None or first.shape != second.shape:
                skipped += 1
                continue
            first = resize_shorter_side(first, self.load_size)
            second = resize_shorter_side(second, self.load_size)
            params = random_crop_params(*first.shape[-2:], self.crop_size, generator)
            return (
                apply_crop(first, self.crop_size, params),
                apply_crop(second, self.crop_size, params),
                skipped,
            )
        raise DataFolderError(
            f"video folder {self.root}: {skipped} frame pairs in a row could not be decoded"
        )


SampleKey = tuple[int, int, int]  # (content index, style index, sample seed)


class TrainingSet(Dataset):
    """Samples for one training step: a content crop (or a video frame pair) and a style crop.

    Indexed by :data:`SampleKey` tuples from :class:`StepSampler`. Each item is a dict:
    ``content`` (3, crop, crop), ``style`` (3, crop, crop), ``content_next`` (only with video
    pairs) and ``skipped`` (unreadable files passed over, for the run's count).
    """

    def __init__(self, contents: ImageFolder | VideoFramePairs, styles: ImageFolder) -> None:
        self.contents = contents
        self.styles = styles

    @property
    def is_video(self) -> bool:
        return isinstance(self.contents, VideoFramePairs)

    def __len__(self) -> int:
        return len(self.contents)

    def __getitem__(self, key: SampleKey) -> dict[str, Tensor | int]:  # type: ignore[override]
        content_index, style_index, seed = key
        generator = torch.Generator().manual_seed(seed)
        item: dict[str, Tensor | int] = {}
        if isinstance(self.contents, VideoFramePairs):
            first, second, skipped = self.contents.load(content_index, generator)
            item["content"], item["content_next"] = first, second
        else:
            item["content"], skipped = self.contents.load(content_index, generator)
        item["style"], style_skipped = self.styles.load(style_index, generator)
        item["skipped"] = skipped + style_skipped
        return item


# -- sampling ----------------------------------------------------------------------------------
def mix_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy's SeedSequence; no global state)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(
        2, dtype=np.uint32
    )
    return (int(state[0]) << 31) ^ int(state[1])


class _EpochStream:
    """Position ``p`` of an endless stream of epochs over ``length`` items, as torch's
    :class:`DistributedSampler` would order them for this rank (shuffled per epoch, padded so
    every rank gets the same count)."""

    def __init__(self, length: int, *, rank: int, world_size: int, seed: int) -> None:
        self.sampler = DistributedSampler(
            range(length), num_replicas=world_size, rank=rank, shuffle=True, seed=seed
        )
        self.per_epoch = self.sampler.num_samples
        self._epoch = -1
        self._indices: list[int] = []

    def __getitem__(self, position: int) -> int:
        epoch, offset = divmod(position, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._indices = list(self.sampler)
            self._epoch = epoch
        return self._indices[offset]


class StepSampler(Sampler[SampleKey]):
    """Keys for steps ``start_step .. max_steps - 1``, ``batch_size`` per step, on this rank.

    Contents and styles are drawn from two independent shuffled epoch streams (different
    sizes, different seeds); the per-sample seed mixes (seed, step, rank, slot). Nothing here
    keeps state between runs, so resuming at ``start_step`` reproduces the uninterrupted run.
    """

    def __init__(
        self,
        content_count: int,
        style_count: int,
        batch_size: int,
        *,
        seed: int,
        start_step: int,
        max_steps: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.max_steps = max_steps
        self.rank = rank
        self.world_size = world_size
        self.content_count = content_count
        self.style_count = style_count

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step) * self.batch_size

    def __iter__(self) -> Iterator[SampleKey]:
        contents = _EpochStream(
            self.content_count, rank=self.rank, world_size=self.world_size, seed=self.seed
        )
        styles = _EpochStream(
            self.style_count, rank=self.rank, world_size=self.world_size, seed=self.seed + 1
        )
        for step in range(self.start_step, self.max_steps):
            for slot in range(self.batch_size):
                position = step * self.batch_size + slot
                yield (
                    contents[position],
                    styles[position],
                    mix_seed(self.seed, step, self.rank, slot),
                )

    def epochs_per_step(self) -> float:
        """Fraction of a content epoch one step covers on this rank."""
        return self.batch_size / max(1, math.ceil(self.content_count / self.world_size))


def build_training_set(
    content_dir: str | Path,
    style_dir: str | Path,
    *,
    load_size: int,
    crop_size: int,
    video_dir: str | Path | None = None,
    video_frame_gap: int = 1,
) -> TrainingSet:
    """The :class:`TrainingSet` of a run (folders checked now, files decoded lazily)."""
    styles = ImageFolder(style_dir, load_size, crop_size, "style")
    contents: ImageFolder | VideoFramePairs
    if video_dir is not None:
        contents = VideoFramePairs(video_dir, load_size, crop_size, video_frame_gap)
    else:
        contents = ImageFolder(content_dir, load_size, crop_size, "content")
    return TrainingSet(contents, styles)

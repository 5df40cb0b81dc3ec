"""The per-layer walk behind :func:`adaattn_video.resources.estimate_stylize_memory`: bytes
alive at each module of the encoder, the attention keys, the attention itself and the decoder,
for (B, 3, H, W) input with ``e`` bytes per element of the convolution precision.

A module holds its input and output at once (``x = module(x)``): the peak of a walk is the
largest ``kept + input + output`` over its modules, where ``kept`` is what stays alive to the
end of the call (the encoder's taps, a frame's keys). See :mod:`adaattn_video.resources` for
what each part counts and how the walk is calibrated against measured peaks.
"""

from __future__ import annotations

from adaattn_video.config import TAPS
from adaattn_video.cosine_attention import block_positions

MAX_SCORES_PER_CALL = 2**26  # as in adaattn_video.attention
# VGG-19 (see adaattn_video.encoder): widths per block, 4 convolutions in blocks 3-5
_BLOCK_WIDTHS = (64, 128, 256, 512, 512)
_BLOCK_CONVS = (2, 2, 4, 4, 4)
# decoder from relu3_1 (see adaattn_video.decoder): conv widths, "U" = nearest x2 upsample
_DECODER = (256, 256, 256, 128, "U", 128, 64, "U", 64, 3)
# attention levels: tap -> (value channels C, key channels d, scale divisor)
LEVELS = {"relu3_1": (256, 448, 4), "relu4_1": (512, 960, 8), "relu5_1": (512, 1472, 16)}


def padded(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """(H, W) rounded up to the model's size multiple, at least two multiples a side."""
    h, w = size
    return max(-(-h // multiple) * multiple, 2 * multiple), max(
        -(-w // multiple) * multiple, 2 * multiple
    )


def encoder_walk(
    batch: int, size: tuple[int, int], e: int, deepest: str, normalised: bool
) -> tuple[int, dict[str, tuple[int, int, int]]]:
    """Peak bytes of the encoder and the taps it returns: name -> (channels, h, w)."""
    h, w = size
    channels = 3
    taps: dict[str, tuple[int, int, int]] = {}
    saved = 0  # taps kept alive
    peak = 0
    x = batch * 3 * h * w * e  # the compute-dtype input

    def step(new: int) -> None:
        nonlocal x, peak
        peak = max(peak, saved + x + new)
        x = new

    if normalised:
        step(batch * 3 * h * w * e)  # 1x1 colour conv
    last = TAPS.index(deepest)
    for block, (width, convs) in enumerate(zip(_BLOCK_WIDTHS, _BLOCK_CONVS, strict=True)):
        if block > last:
            break
        if block > 0:
            h, w = (-(-h // 2), -(-w // 2)) if normalised else (h // 2, w // 2)
            step(batch * channels * h * w * e)  # max-pool
        for conv in range(convs):
            if normalised:
                step(batch * channels * (h + 2) * (w + 2) * e)  # reflection pad
            step(batch * width * h * w * e)  # conv
            step(batch * width * h * w * e)  # relu (not in place)
            channels = width
            if conv == 0:
                taps[TAPS[block]] = (width, h, w)
                saved += x
                x = 0  # now counted in ``saved``
                if block == last:
                    return peak, taps
    return peak, taps


def _keys_bytes(batch: int, taps: dict[str, tuple[int, int, int]], level: str) -> tuple[int, int]:
    """(peak while building, size) of one level's float32 keys."""
    _c, _d, _div = LEVELS[level]
    _, h, w = taps[level]
    names = TAPS[: TAPS.index(level) + 1]
    size = sum(taps[n][0] for n in names) * batch * h * w * 4
    biggest = max(taps[n][0] for n in names) * batch * h * w * 4
    return size * 2 + biggest * 3, size  # parts + concatenation, plus resize/cast/subtract


def _resized_taps_bytes(
    batch: int, taps: dict[str, tuple[int, int, int]], level: str, e: int
) -> int:
    """The shallower taps resized to ``level``'s scale (compute dtype): all a frame's keys are
    at inference, since the per-channel normalisation is folded into the key projection."""
    _, h, w = taps[level]
    names = TAPS[: TAPS.index(level)]
    return sum(taps[n][0] for n in names) * batch * h * w * e


def _cosine_blocked_bytes(batch: int, level: str, positions: int, device: str) -> int:
    """Cosine AdaAttN of a frame at inference (``cosine_attention.cosine_adaattn_blocked``):
    float32 temporaries of one block of positions (about 4 KiB each; blocks are larger on
    GPUs) and the (B, N, C) result."""
    c, _, _ = LEVELS[level]
    block = min(positions, block_positions(device))
    return batch * block * 4096 + batch * positions * c * 4


def _attention_bytes(
    batch: int, level: str, positions: int, style_positions: int, kind: str, *, style: bool
) -> int:
    c, d, _ = LEVELS[level]
    if style:  # projected key and value; cosine: unit keys and the [1, V, V^2] columns too
        extra = d + 1 + 2 * c if kind == "cosine" else 0
        return batch * positions * 4 * (d + c + extra)
    if kind == "cosine":
        return batch * positions * 4 * (2 * d + (1 + 2 * c) + 2 * c + 6 * c)
    width = max(d, 2 * c)
    scores = min(batch * positions * style_positions, MAX_SCORES_PER_CALL)
    return batch * positions * 4 * (3 * width + 6 * c) + scores * 4


def decoder_walk(batch: int, size: tuple[int, int], e: int, resident: int) -> int:
    """Peak bytes of the relu3_1 decoder from (B, 256, H/4, W/4) to (B, 3, H, W)."""
    h, w = size[0] // 4, size[1] // 4
    channels = 256
    x = batch * channels * h * w * e
    peak = 0
    for item in _DECODER:
        if item == "U":
            h, w = 2 * h, 2 * w
            new = batch * channels * h * w * e
            peak, x = max(peak, resident + x + new), new
            continue
        pad = batch * channels * (h + 2) * (w + 2) * e
        peak, x = max(peak, resident + x + pad), pad
        channels = int(item)
        new = batch * channels * h * w * e
        peak, x = max(peak, resident + x + new), new
        if channels != 3:  # relu
            peak = max(peak, resident + 2 * x)
    return peak


def encode_walk(
    batch: int,
    size: tuple[int, int],
    e: int,
    levels: list[str],
    *,
    normalised: bool,
    attention: str,
    style_positions: int,
    style: bool,
    device: str = "cpu",
) -> tuple[int, int, int]:
    """Encoding a (batch, 3, *size) frame or style: (encoder peak, keys + attention peak, bytes
    kept for the decoder). A style keeps one level's keys at a time (its encoded states are
    counted as resident by the caller); a frame's keys all stay alive to the end of the call."""
    enc_peak, taps = encoder_walk(batch, size, e, levels[-1], normalised)
    taps_bytes = sum(batch * c * th * tw * e for c, th, tw in taps.values())
    peak = kept = 0
    for level in levels:
        _, th, tw = taps[level]
        if attention == "cosine" and not style:
            building = keys = _resized_taps_bytes(batch, taps, level, e)
            attn = _cosine_blocked_bytes(batch, level, th * tw, device)
        else:
            building, keys = _keys_bytes(batch, taps, level)
            attn = _attention_bytes(batch, level, th * tw, style_positions, attention, style=style)
        peak = max(peak, kept + building, kept + keys + attn)
        if not style:
            kept += keys
    return enc_peak, taps_bytes + peak, taps_bytes + kept

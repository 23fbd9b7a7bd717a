"""Translating images too large for one generator call in overlapping tiles.

A generator's activations grow with the image (CycleGAN: 1.8 GB at 1024 x 1024 px,
5.2 GB at 2048 x 2048, tens of GB at 8000 x 8000 on CPU), so `translate` cuts large
images into tiles of the same size, translates each, and blends them back:

- the image is first padded (symmetric, as the serving module pads) to the generator's
  size multiple, and tiles start on that multiple, so each tile sees the stride-2 grid
  the whole image would;
- in the overlap of two tiles, the outer quarter of each tile's side is discarded
  (there the tile's own padding replaces real neighbours) and the middle half is a
  linear cross-fade; the weights form a partition of unity, so a network whose
  receptive field fits in that discarded quarter gives exactly the whole-image output.

Caveat: instance normalization (CycleGAN, U-GAT-IT, ...) takes its mean and variance
per tile, not over the whole image, so tiles of different content can differ in tone;
the cross-fade hides the seam but not a tone drift across a large image. Bigger tiles
mitigate it.
"""

import numpy as np


def tile_starts(length, tile, overlap, multiple=1):
    """Start offsets of `tile`-px tiles covering [0, `length`): neighbours share at least
    `overlap` px, starts are multiples of `multiple`, and the last tile ends at `length`
    (it is moved back, so every tile has the same size). `length` and `tile` must be
    multiples of `multiple`; a `length` up to `tile` is one tile."""
    if length <= tile:
        return [0]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def blend_weights(length, tile, overlap, multiple=1):
    """[(start, weights)]: the tiles along one axis and each one's [tile] float64 weight.

    Where a tile edge is inside the image, the first `overlap // 4` px get weight 0 and
    the next `overlap - 2 * (overlap // 4)` px ramp up linearly; edges on the image
    border keep weight 1. The ramps are then normalized, so at every pixel the weights
    of the tiles covering it sum to 1."""
    starts = tile_starts(length, tile, overlap, multiple)
    size = min(tile, length)
    margin = overlap // 4
    ramp = max(1, overlap - 2 * margin)
    centres = np.arange(size) + 0.5
    raw = []
    for start in starts:
        weight = np.ones(size)
        if start > 0:
            weight = np.minimum(weight, np.clip((centres - margin) / ramp, 0.0, 1.0))
        if start + size < length:
            weight = np.minimum(weight, np.clip((size - centres - margin) / ramp, 0.0, 1.0))
        raw.append(weight)
    total = np.zeros(length)
    for start, weight in zip(starts, raw):
        total[start:start + size] += weight
    if (total <= 0).any():  # cannot happen for overlap < tile / 2; a guard against a bad call
        raise ValueError(f"tiles of {tile} px with {overlap} px overlap leave pixels uncovered")
    return [(start, weight / total[start:start + size]) for start, weight in zip(starts, raw)]


def translate_tiled(translate, image, tile, overlap=64, multiple=4):
    """`translate` ([1, h, w, 3] -> [1, h, w, 3], any dtype) applied to `image` [H, W, 3]
    in `tile` x `tile` px tiles sharing `overlap` px, blended as `blend_weights` says.

    The result has `image`'s size and dtype (integer pixels are rounded). `tile` must be
    a multiple of `multiple` (the generator's size multiple, `export.size_multiple`);
    the image is padded to that multiple (symmetric) and cropped back.
    """
    if tile % multiple:
        raise ValueError(f"the tile size {tile} is not a multiple of {multiple}")
    if not 0 < overlap <= tile // 2:
        raise ValueError(f"the tile overlap must be between 1 and half the tile ({tile // 2} px), got {overlap}")
    height, width = image.shape[:2]
    padded = np.pad(image, [(0, -height % multiple), (0, -width % multiple), (0, 0)], mode="symmetric")
    rows = blend_weights(padded.shape[0], tile, overlap, multiple)
    columns = blend_weights(padded.shape[1], tile, overlap, multiple)
    result = np.zeros(padded.shape, np.float32)
    for top, row_weight in rows:
        for left, column_weight in columns:
            window = padded[top:top + len(row_weight), left:left + len(column_weight)]
            out = np.asarray(translate(window[None]))[0].astype(np.float32)
            result[top:top + len(row_weight), left:left + len(column_weight)] += (
                out * (row_weight[:, None, None] * column_weight[None, :, None]).astype(np.float32))
    result = result[:height, :width]
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.round(result), info.min, info.max).astype(image.dtype)
    return result.astype(image.dtype)

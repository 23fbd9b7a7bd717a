"""RoIAlign and its inverse, pasting instance features back into a feature map.

DUNIT's instance branch (from the paper's figure) and INIT crop instance features from a
content map and put the processed features back; both use these two functions.

`roi_align` equals torchvision's `roi_align(aligned=True)` C++ kernel with a fixed
sampling ratio (REFERENCE-WAVE4 §4.3): the sample points are the kernel's, bilinear, 0
for samples more than one pixel outside the map and edge-clamped within one pixel; each
bin averages its r x r samples. The taps are gathered here rather than taken from §4.3's
`tf.image.crop_and_resize` conversion (which gives the same values, tested) because
CropAndResize has no XLA kernel (measured: "No registered 'CropAndResize' OpKernel for
XLA_CPU_JIT"). torchvision's adaptive `sampling_ratio=0` (ceil(box size / output size)
per box) cannot be batched and is not offered.

Coordinates: boxes are xyxy in image pixels (pixel i spans [i, i + 1)); feature pixel u
sits at image position (u + 0.5) / spatial_scale.
"""

import tensorflow as tf


def output_shape(output_size):
    return (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)


def roi_align(features, boxes, box_indices, output_size, spatial_scale, sampling_ratio=2):
    """Features of each box resampled to a fixed grid, as torchvision `roi_align(aligned=True)`.

    Args:
        features: (B, H, W, C) feature map.
        boxes: (N, 4) float xyxy boxes in image pixels.
        box_indices: (N,) int, the batch element of each box.
        output_size: int or (height, width) of each output.
        spatial_scale: feature pixels per image pixel (1/4 for a stride-4 map).
        sampling_ratio: samples per bin along each axis (fixed, > 0; torchvision's
            detector uses 2).

    Returns:
        (N, out_h, out_w, C) in the dtype of `features` (computed in float32).

    Reference: torchvision `ops/roi_align.py` and `csrc/ops/cpu/roi_align_kernel.cpp`.
    """
    if int(sampling_ratio) < 1:
        raise ValueError(f"sampling_ratio must be a positive integer (adaptive 0 cannot be batched), "
                         f"got {sampling_ratio}")
    out_h, out_w = output_shape(output_size)
    r = int(sampling_ratio)
    dtype = features.dtype
    features = tf.cast(features, tf.float32)
    height, width = tf.shape(features)[1], tf.shape(features)[2]
    boxes = tf.cast(boxes, tf.float32) * spatial_scale
    indices = tf.cast(box_indices, tf.int32)

    def taps(start, end, bins, size):
        """The kernel's sample positions along one axis for every box, (N, bins * r): clamped
        position, low and high neighbour, weight of the high one, and in-range flag."""
        step = (end - start)[:, None] / (bins * r)  # aligned=True: the extent is not clamped
        position = (start[:, None] - 0.5) + (tf.range(bins * r, dtype=tf.float32)[None, :] + 0.5) * step
        last = tf.cast(size - 1, tf.float32)
        inside = (position >= -1.0) & (position <= last + 1.0)
        position = tf.clip_by_value(position, 0.0, last)  # within one pixel outside: the edge pixel
        low = tf.floor(position)
        high = tf.minimum(low + 1.0, last)
        return tf.cast(low, tf.int32), tf.cast(high, tf.int32), position - low, inside

    y_low, y_high, y_weight, y_inside = taps(boxes[:, 1], boxes[:, 3], out_h, height)
    x_low, x_high, x_weight, x_inside = taps(boxes[:, 0], boxes[:, 2], out_w, width)
    grid = (tf.shape(boxes)[0], out_h * r, out_w * r)
    batch = tf.broadcast_to(indices[:, None, None], grid)

    def tap(rows, cols):
        rows = tf.broadcast_to(rows[:, :, None], grid)
        cols = tf.broadcast_to(cols[:, None, :], grid)
        return tf.gather_nd(features, tf.stack([batch, rows, cols], axis=-1))

    wy, wx = y_weight[:, :, None, None], x_weight[:, None, :, None]
    samples = ((1 - wy) * ((1 - wx) * tap(y_low, x_low) + wx * tap(y_low, x_high))
               + wy * ((1 - wx) * tap(y_high, x_low) + wx * tap(y_high, x_high)))
    inside = y_inside[:, :, None, None] & x_inside[:, None, :, None]  # 0 beyond one pixel outside
    samples = tf.where(inside, samples, 0.0)
    channels = tf.shape(features)[3]
    bins = tf.reshape(samples, (grid[0], out_h, r, out_w, r, channels))
    return tf.cast(tf.reduce_mean(bins, axis=(2, 4)), dtype)


def paste_instances(global_map, instance_maps, boxes, box_indices, spatial_scale, valid=None):
    """`global_map` with the features inside each box replaced by its instance map,
    sampled bilinearly (the inverse of `roi_align`'s grid).

    A feature pixel belongs to a box when its centre lies in it (x1 <= (u + 0.5) / s < x2);
    there it takes instance coordinate ((u + 0.5) / s - x1) * P / (x2 - x1) - 0.5, clamped to
    the instance map. Where boxes overlap, the later box wins (boxes in order). Replacing,
    not adding, is the design choice of REFERENCE-WAVE4 §4.2 (the paper's fusion is not
    readable).

    Args:
        global_map: (B, H, W, C).
        instance_maps: (N, P_h, P_w, C), one per box.
        boxes: (N, 4) float xyxy in image pixels.
        box_indices: (N,) int, the batch element of each box.
        spatial_scale: feature pixels per image pixel.
        valid: optional (N,) bool; False rows (padding) paste nothing.

    Returns:
        (B, H, W, C) in the dtype of `global_map`.
    """
    dtype = global_map.dtype
    shape = tf.shape(global_map)
    height, width = shape[1], shape[2]
    # Row 0 is a dummy box that covers nothing, so every gather below has a row to read
    # (also when there are no boxes); box n of the arguments is row n + 1.
    instance_maps = tf.cast(instance_maps, tf.float32)
    instance_maps = tf.concat([tf.zeros_like(instance_maps[:1]), instance_maps], axis=0)
    inst_h, inst_w = tf.shape(instance_maps)[1], tf.shape(instance_maps)[2]
    boxes = tf.concat([tf.constant([[0.0, 0.0, 1.0, 1.0]]), tf.cast(boxes, tf.float32)], axis=0)
    owner = tf.concat([[-1], tf.cast(box_indices, tf.int32)], axis=0)[:, None] == tf.range(shape[0])[None, :]
    if valid is not None:
        owner &= tf.concat([[False], tf.cast(valid, tf.bool)], axis=0)[:, None]  # (N + 1, B)
    # Image positions of the feature pixel centres.
    ys = (tf.cast(tf.range(height), tf.float32) + 0.5) / spatial_scale
    xs = (tf.cast(tf.range(width), tf.float32) + 0.5) / spatial_scale
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    inside_y = (ys[None, :] >= y1[:, None]) & (ys[None, :] < y2[:, None])  # (N + 1, H)
    inside_x = (xs[None, :] >= x1[:, None]) & (xs[None, :] < x2[:, None])  # (N + 1, W)
    covers = owner[:, :, None, None] & inside_y[:, None, :, None] & inside_x[:, None, None, :]  # (N + 1, B, H, W)
    # The last covering box of every pixel (0: none).
    box = tf.reduce_max(tf.where(covers, tf.range(tf.shape(boxes)[0])[:, None, None, None], 0), axis=0)

    def instance_coordinate(positions, start, end, bins, axis_box):
        start, end = tf.gather(start, axis_box), tf.gather(end, axis_box)
        coordinate = (positions - start) * tf.cast(bins, tf.float32) / (end - start) - 0.5
        return tf.clip_by_value(coordinate, 0.0, tf.cast(bins - 1, tf.float32))

    v = instance_coordinate(ys[None, :, None], y1, y2, inst_h, box)  # (B, H, W)
    u = instance_coordinate(xs[None, None, :], x1, x2, inst_w, box)
    v0, u0 = tf.floor(v), tf.floor(u)
    dv, du = (v - v0)[..., None], (u - u0)[..., None]
    v0, u0 = tf.cast(v0, tf.int32), tf.cast(u0, tf.int32)
    v1, u1 = tf.minimum(v0 + 1, inst_h - 1), tf.minimum(u0 + 1, inst_w - 1)

    def tap(rows, cols):
        return tf.gather_nd(instance_maps, tf.stack([box, rows, cols], axis=-1))

    sampled = ((1 - dv) * ((1 - du) * tap(v0, u0) + du * tap(v0, u1))
               + dv * ((1 - du) * tap(v1, u0) + du * tap(v1, u1)))
    return tf.where((box > 0)[..., None], tf.cast(sampled, dtype), global_map)

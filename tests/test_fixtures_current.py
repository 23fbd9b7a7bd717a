"""The committed reference trajectories are those the PyTorch re-statements record today.

The step-parity tests replay tests/fixtures/trajectories/*.npz instead of running torch;
this test re-records each with torch (`tests/fixtures/record_trajectories.py`) and compares,
so a fixture cannot drift from tests/torch_*.py, a recorder, or our models' variable
layout. Stated tolerance (`STATED_TOLERANCE`): start weights, variable positions and shapes
exactly; the float64 reference's final weights (and, for UNIT and CycleGAN, its finals with one ReLU
gate switched, and those gates' inputs) within 1e-6 of its update and its losses
within 1e-6 relative (float64 reductions differ slightly across CPUs); the float32
reference's final weights within twice its committed miss of the float64 update + 1e-6
(float32 round-off differs across CPUs, and two float32 runs differ by about √2 times
that miss); recorded draws exactly; the plain reference values (Adam, LambdaLR) within 1e-12
relative. Re-recorded on the recording CPU, everything is equal.
"""

import os
import sys

import numpy as np
import pytest

import trajectories

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))

STATED_TOLERANCE = {"start": 0.0, "final": 1e-6, "gates": 1e-6, "losses": 1e-6, "arrays": 0.0}
NAMES = [name for names in trajectories.RECORDERS.values() for name in names
         if os.path.exists(trajectories.path(name))]


def float32_miss(data):
    """The committed float32 reference's miss of the float64 update (all recorded weights)."""
    count = len(data["positions"])
    start = [data[f"start/{i}"].astype(np.float64) for i in range(count)]
    final32 = [data[f"final32/{i}"].astype(np.float64) for i in range(count)]
    final = [f + data[f"residual/{i}"] for i, f in enumerate(final32)]
    miss = sum(float(np.sum((a - b) ** 2)) for a, b in zip(final32, final))
    return np.sqrt(miss / sum(float(np.sum((f - s) ** 2)) for f, s in zip(final, start)))


VALUE_NAMES = [name for names in trajectories.VALUE_RECORDERS.values() for name in names]


def test_every_replayed_trajectory_is_committed():
    assert sorted(NAMES) == sorted(name for names in trajectories.RECORDERS.values() for name in names)
    assert all(os.path.exists(trajectories.path(name)) for name in VALUE_NAMES)


@pytest.mark.parametrize("name", VALUE_NAMES)
def test_committed_reference_values_equal_a_fresh_recording(name):
    """torch.optim.Adam in float64 and LambdaLR: elementwise, so within 1e-12 relative."""
    pytest.importorskip("torch")
    import record_trajectories

    committed, recorded = trajectories.read(name), record_trajectories.record(name)
    assert sorted(committed) == sorted(recorded)
    for key in committed:
        np.testing.assert_allclose(recorded[key], committed[key], rtol=1e-12, atol=0, err_msg=key)


@pytest.mark.parametrize("name", NAMES)
def test_committed_trajectory_equals_a_fresh_recording(name):
    pytest.importorskip("torch")
    import record_trajectories

    committed = trajectories.read(name)
    allowed32 = 2 * float32_miss(committed) + 1e-6
    found = trajectories.difference(dict(record_trajectories.record(name)), dict(committed))
    assert not found["layout"], found
    for key, tolerance in STATED_TOLERANCE.items():
        assert found[key] <= tolerance, (name, key, found)
    assert found["final32"] <= allowed32, (name, found, allowed32)

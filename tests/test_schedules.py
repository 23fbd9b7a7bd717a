import numpy as np

from tf_translate.schedules import LinearDecay


def test_linear_decay_matches_the_reference_lambda_rule():
    # junyanz: lr * (1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)), epoch 0-based.
    schedule = LinearDecay(2e-4, constant_epochs=100, decay_epochs=100, steps_per_epoch=10)
    for step, epoch in [(0, 0), (995, 99), (1000, 100), (1505, 150), (1999, 199)]:
        expected = 2e-4 * (1 - max(0, epoch + 1 - 100) / 101)
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-6)
    assert float(schedule(999)) == float(schedule(0))  # constant through the first half
    np.testing.assert_allclose(float(schedule(1999)), 2e-4 / 101, rtol=1e-6)


def test_linear_decay_config_round_trip():
    schedule = LinearDecay(1e-4, 5, 7, 3)
    assert LinearDecay(**schedule.get_config()).get_config() == schedule.get_config()

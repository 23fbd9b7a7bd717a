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


def torch_lambda_lr_per_epoch(n_epochs, n_epochs_decay, step_at_epoch_start):
    """The rate each epoch trains at under junyanz's `get_scheduler("linear")`, with the
    scheduler stepped where its current `train.py` (start of epoch) or the 2019 loop
    (end of epoch) steps it."""
    import warnings

    import pytest
    torch = pytest.importorskip("torch")
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=2e-4)
    rule = lambda epoch: 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=rule)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()", as upstream
        for _ in range(n_epochs + n_epochs_decay):
            if step_at_epoch_start:
                scheduler.step()
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if not step_at_epoch_start:
                scheduler.step()
    return rates


def test_both_scheduler_positions_match_torch_lambda_lr():
    steps_per_epoch = 3
    for at_start in (False, True):
        expected = torch_lambda_lr_per_epoch(4, 5, at_start)
        schedule = LinearDecay(2e-4, 4, 5, steps_per_epoch, decay_at_epoch_start=at_start)
        got = [float(schedule(epoch * steps_per_epoch + offset))
               for epoch in range(9) for offset in range(steps_per_epoch)]
        np.testing.assert_allclose(got, np.repeat(expected, steps_per_epoch), rtol=1e-6, atol=1e-12)
    assert expected[-1] == 0.0  # the current upstream trains its last epoch at rate 0

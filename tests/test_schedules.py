import numpy as np
import pytest

from tf_translate.schedules import LinearDecay, StarGANDecay, half_then_linear_decay


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

    import torch
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


def record_lambda_lr():
    """LambdaLR's rates (4 + 5 epochs), scheduler stepped at epoch end and start."""
    return {f"array/{at_start}": np.array(torch_lambda_lr_per_epoch(4, 5, at_start)) for at_start in (False, True)}


def test_both_scheduler_positions_match_torch_lambda_lr():
    """Against LambdaLR's rates, recorded by `record_lambda_lr` (tests/fixtures/trajectories)."""
    from trajectories import reference_values
    steps_per_epoch = 3
    for at_start in (False, True):
        expected = reference_values("lambda_lr")[f"array/{at_start}"]
        schedule = LinearDecay(2e-4, 4, 5, steps_per_epoch, decay_at_epoch_start=at_start)
        got = [float(schedule(epoch * steps_per_epoch + offset))
               for epoch in range(9) for offset in range(steps_per_epoch)]
        np.testing.assert_allclose(got, np.repeat(expected, steps_per_epoch), rtol=1e-6, atol=1e-12)
    assert expected[-1] == 0.0  # the current upstream trains its last epoch at rate 0


def test_half_then_linear_decay_is_the_ugatit_reference_loop():
    """lr at each iteration equals UGATIT.train's in-place decrements (N = 10 and 7)."""
    for total in (10, 7):
        schedule = half_then_linear_decay(1e-4, total)
        lr, reference = 1e-4, []
        for step in range(1, total + 1):
            if step > total // 2:
                lr -= 1e-4 / (total // 2)
            reference.append(max(lr, 0.0))  # odd N: the reference ends below 0; we stop at 0
        ours = [float(schedule(step)) for step in range(total)]
        np.testing.assert_allclose(ours, reference, atol=1e-12)
    assert half_then_linear_decay(1e-4, None) == 1e-4


def _reference_rates(num_iters, num_iters_decay, lr_update_step, lr0=1e-4):
    """The learning rate of every iteration, by running yunjey's decay loop."""
    rates, lr = [], lr0
    for i in range(num_iters):
        rates.append(lr)
        if (i + 1) % lr_update_step == 0 and (i + 1) > (num_iters - num_iters_decay):
            lr -= lr0 / float(num_iters_decay)
    return np.array(rates)


def test_stargan_decay_follows_the_reference_loop():
    n, decay, every = 60, 30, 5
    rates = _reference_rates(n, decay, every)
    d = StarGANDecay(1e-4, n - decay, decay, every, to_zero=False)
    g = StarGANDecay(1e-4, n - decay, decay, every, to_zero=False, period=5)
    np.testing.assert_allclose([float(d(i)) for i in range(n)], rates, rtol=1e-6)
    # The generator's k-th update runs in iteration 5k + 4.
    np.testing.assert_allclose([float(g(k)) for k in range(n // 5)], rates[4::5], rtol=1e-6)
    # to_zero: each drop is lr_update_step times larger, so the rate reaches 0.
    linear = 1e-4 - (1e-4 - rates) * every
    np.testing.assert_allclose([float(StarGANDecay(1e-4, n - decay, decay, every)(i))
                                for i in range(n)], linear, rtol=1e-5, atol=1e-12)
    assert linear[-1] == pytest.approx(1e-4 * every / decay)
    # With the reference settings the code's decay is 1e-9 per drop: the last iteration
    # runs at lr0 - 99e-9 (the 100th drop comes after it), about 0.999 lr0 (REFERENCE 2.2).
    final = _reference_rates(200_000, 100_000, 1000)[-1]
    assert final == pytest.approx(1e-4 - 99e-9, rel=1e-9)
    assert float(StarGANDecay(1e-4, 100_000, 100_000, 1000, to_zero=False)(199_999)) == \
        pytest.approx(final, rel=1e-6)
    # Two datasets: two optimizer steps per iteration.
    two = StarGANDecay(1e-4, n - decay, decay, every, to_zero=False, steps_per_iteration=2)
    np.testing.assert_allclose([float(two(s)) for s in range(2 * n)], np.repeat(rates, 2), rtol=1e-6)


def test_cyclegan_steps_that_are_not_whole_epochs_keep_a_learning_rate():
    """250 steps in 100-step epochs are 3 epochs (the last partial): only the last runs at
    0, as the reference's last epoch does; counting 2 epochs ran two at 0."""
    from helpers import TINY_CYCLEGAN
    from tf_translate import build_model

    model = build_model("cyclegan", **TINY_CYCLEGAN)
    optimizer = model.default_optimizers(250, 100)["g_optimizer"]
    optimizer.build(model.generator_ab.trainable_variables)
    rates = []
    for step in (0, 150, 249):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    np.testing.assert_allclose(rates, [2e-4 * 2 / 3, 2e-4 / 3, 0.0], rtol=1e-6)

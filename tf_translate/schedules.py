"""The reference learning-rate schedules, as Keras schedules of the optimizer step."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tf_translate")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then a linear decay, as junyanz's `lambda_rule`.

    With `epoch = step // steps_per_epoch` the rate is
    `initial_learning_rate * (1 - max(0, epoch + 1 - constant_epochs) / (decay_epochs + 1))`
    (`--n_epochs`, `--n_epochs_decay`, `--epoch_count 1`): it stays constant for
    `constant_epochs`, then drops by 1/(decay_epochs+1) per epoch and ends at
    1/(decay_epochs+1) of the start, as the reference does. Give `steps_per_epoch=1` to
    decay per step (the U-GAT-IT / NICE-GAN form over iterations).

    `decay_at_epoch_start=True` is junyanz's current `train.py`, which steps the
    scheduler at the start of every epoch instead of the end (the 2019 loop), so each
    epoch runs at the rate the other computes for the next: decay starts one epoch
    earlier and the last epoch runs at 0.

    Reference: junyanz `models/networks.py` `get_scheduler` (lr_policy "linear").
    """

    def __init__(self, initial_learning_rate, constant_epochs, decay_epochs, steps_per_epoch=1,
                 decay_at_epoch_start=False):
        self.initial_learning_rate = float(initial_learning_rate)
        self.constant_epochs = int(constant_epochs)
        self.decay_epochs = int(decay_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.decay_at_epoch_start = bool(decay_at_epoch_start)

    def __call__(self, step):
        epoch = ops.floor(ops.cast(step, "float32") / float(self.steps_per_epoch))
        if self.decay_at_epoch_start:
            epoch = epoch + 1.0
        decayed = ops.maximum(0.0, epoch + 1.0 - self.constant_epochs) / float(self.decay_epochs + 1)
        return self.initial_learning_rate * ops.maximum(0.0, 1.0 - decayed)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "constant_epochs": self.constant_epochs, "decay_epochs": self.decay_epochs,
                "steps_per_epoch": self.steps_per_epoch, "decay_at_epoch_start": self.decay_at_epoch_start}


def junyanz_decay(learning_rate, total_steps, steps_per_epoch, decay_at_epoch_start=True):
    """junyanz's `--n_epochs N --n_epochs_decay N` over a run of `total_steps`: constant
    for the first half of the epochs, then `LinearDecay` (a partial last epoch counts as
    an epoch). None or 0 steps keeps the rate constant. CycleGAN's and pix2pix's rule."""
    if not total_steps:
        return learning_rate
    epochs = max(2, -(-total_steps // steps_per_epoch))
    return LinearDecay(learning_rate, epochs // 2, epochs - epochs // 2, steps_per_epoch, decay_at_epoch_start)


def epoch_share_decay(learning_rate, total_steps, steps_per_epoch, constant_epochs, decay_epochs):
    """CUT's `--n_epochs C --n_epochs_decay D` scaled to a run of `total_steps`: the
    run's epochs split in the reference's proportion C : D (200 + 200 for CUT, 150 + 50
    for FastCUT; a run of the reference length gets exactly C + D), then `LinearDecay`
    stepped at the end of each epoch, as CUT's `train.py` does (the first decayed epoch
    runs at lr·D/(D+1), the last at lr/(D+1)). None or 0 steps keeps the rate constant."""
    if not total_steps:
        return learning_rate
    constant, decay = epoch_share_split(total_steps, steps_per_epoch, constant_epochs, decay_epochs)
    return LinearDecay(learning_rate, constant, decay, steps_per_epoch, decay_at_epoch_start=False)


def epoch_share_split(total_steps, steps_per_epoch, constant_epochs, decay_epochs):
    """(constant, decaying) epochs of a run of `total_steps` split C : D, each at least
    one (a partial last epoch counts); CUT's no-crop data rule starts with the decay."""
    epochs = max(2, -(-total_steps // steps_per_epoch))
    constant = min(epochs - 1, max(1, round(epochs * constant_epochs / (constant_epochs + decay_epochs))))
    return constant, epochs - constant


def half_then_linear_decay(learning_rate, total_steps):
    """U-GAT-IT's and NICE-GAN's schedule: constant for `total_steps // 2` iterations,
    then lowered by learning_rate / (total_steps // 2) before each later iteration.

    The rate used at 1-based iteration s is lr·(1 − max(0, s − N//2) / (N//2)), which
    is `LinearDecay(lr, N//2, N//2 − 1)` at optimizer step s − 1; it reaches 0 at the
    last iteration (even N). For odd N the reference's last rate is negative; it is 0
    here. None or N < 2 keeps the rate constant.
    Reference: the `decay_flag` block of `UGATIT.train` in UGATIT-pytorch `UGATIT.py`
    (the same in `NICE.train`, NICE-GAN-pytorch `NICE.py`).
    """
    half = (total_steps or 0) // 2
    if half < 1:
        return learning_rate
    return LinearDecay(learning_rate, half, half - 1, steps_per_epoch=1)


@keras.saving.register_keras_serializable(package="tf_translate")
class StarGANDecay(keras.optimizers.schedules.LearningRateSchedule):
    """yunjey's step-wise linear decay, as a schedule of one optimizer's own step.

    The reference, after iteration i (0-based), lowers the rate when (i + 1) is a
    multiple of `update_every` (`--lr_update_step` 1000) and i + 1 > `decay_start`
    (`num_iters - num_iters_decay`). The rate used at iteration i is therefore
    lr0 * (1 - max(0, floor(i / U) - floor(decay_start / U)) * drop).
    `to_zero=True` (default) drops U / decay_iterations each time, the linear decay to 0
    the paper describes; `to_zero=False` drops 1 / decay_iterations as `solver.py`
    actually does (`g_lr -= g_lr0 / num_iters_decay`), which ends at 0.999 lr0 with the
    reference settings, i.e. no real decay.

    Keras calls a schedule with the optimizer's update count, so the iteration is
    recovered as (step // steps_per_iteration) * period + period - 1: the critic
    optimizer uses period 1 and the generator's period `n_critic` (its k-th update
    happens in iteration 5k + 4); `steps_per_iteration` is 2 with two datasets, which
    the reference trains in turn within one iteration.

    Reference: `Solver.train` ("Decay learning rates") in yunjey `solver.py`.
    """

    def __init__(self, initial_learning_rate, decay_start, decay_iterations, update_every=1000,
                 to_zero=True, steps_per_iteration=1, period=1):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_start = int(decay_start)
        self.decay_iterations = max(1, int(decay_iterations))
        self.update_every = int(update_every)
        self.to_zero = bool(to_zero)
        self.steps_per_iteration = int(steps_per_iteration)
        self.period = int(period)

    def __call__(self, step):
        step = ops.cast(step, "int64")
        iteration = (step // self.steps_per_iteration) * self.period + (self.period - 1)
        drops = ops.maximum(0, iteration // self.update_every - self.decay_start // self.update_every)
        drop = (self.update_every if self.to_zero else 1) / self.decay_iterations
        rate = self.initial_learning_rate * (1.0 - ops.cast(drops, "float32") * drop)
        return ops.maximum(0.0, rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_start": self.decay_start,
                "decay_iterations": self.decay_iterations, "update_every": self.update_every,
                "to_zero": self.to_zero, "steps_per_iteration": self.steps_per_iteration,
                "period": self.period}


@keras.saving.register_keras_serializable(package="tf_translate")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`torch.optim.lr_scheduler.StepLR`: the rate times `decay_rate` every `decay_steps`.

    `step_at_start=True` is the reference loop that calls `scheduler.step()` at the start
    of every iteration, before the update (UNIT's `train.py`): iteration k (0-based)
    then runs at lr·rate^floor((k + 1) / decay_steps), so the first iteration uses the
    initial rate and each halving comes one iteration early (UNIT's first at iteration
    99,999, not 100,000). False steps it after the update: lr·rate^floor(k / decay_steps).
    Keras calls the schedule with the optimizer's update count k.

    Reference: `get_scheduler` (lr_policy "step") in mingyuliutw/UNIT `utils.py`.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate=0.5, step_at_start=True):
        if int(decay_steps) < 1:
            raise ValueError(f"decay_steps must be a positive integer, got {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.decay_rate = float(decay_rate)
        self.step_at_start = bool(step_at_start)

    def __call__(self, step):
        step = ops.cast(step, "int64") + (1 if self.step_at_start else 0)
        drops = ops.cast(step // self.decay_steps, "float32")
        return self.initial_learning_rate * ops.power(self.decay_rate, drops)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "step_at_start": self.step_at_start}

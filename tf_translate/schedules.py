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

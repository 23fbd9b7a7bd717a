"""The generator half of the model contract (`models.base` documents both halves).

`Generator` lives outside `models/` so that `export`, which reads what a generator can
do, needs no model module (TuiGAN's serving module builds on `export`).
"""

import keras


class Generator(keras.Model):
    """Base of the generator networks that translate and export run: see "Generators" in
    `models.base`'s docstring. It adds no weights, layers or config, so subclassing it keeps
    weight files, `.keras` files and SavedModels unchanged."""

    input_multiple = 1
    fixed_input_size = None
    label_size = 0
    attribute_size = 0
    returns_heatmap = False
    inference_modes = ()
    resizes_itself = False
    takes_boxes = None

    def serving_module(self):
        """The `export.GeneratorModule` serving this network, or None for the standard one."""
        return None

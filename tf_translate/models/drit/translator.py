"""DRIT++'s translator: one direction (content encoder, generator, attribute encoder)
as one Keras model, for translate and export (`test.py`, `test_transfer.py`)."""

import keras
from keras import ops

from tf_translate.models.base import Generator


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITTranslator(Generator):
    """One direction as one model: source content encoder, target generator, and the
    target domain's attribute encoder (for attribute transfer).

    translator(images) draws z ~ N(0, 1) per image from its seeded stream (the
    reference's `test.py`); translator([images, z]) uses the given codes. Content is
    encoded without noise (the reference's eval mode). `attribute_size` tells export
    and translate that it takes a code; `attribute_statistics(images)` gives the mean
    and standard deviation of the codes of target-domain examples (`test_transfer.py`
    samples μ + σε; the `--concat 0` encoder gives the code itself, σ = 0). Shares the
    training model's networks (no copies). Height and width: multiples of 4.

    Reference: `test_forward` and `test_forward_transfer` in HsinYingLee/DRIT `src/model.py`.
    """

    fixed_input_size = None
    input_multiple = 4

    def __init__(self, content_encoder, generator, attribute_encoder=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.content_encoder = content_encoder
        self.generator = generator
        self.attribute_encoder = attribute_encoder
        self.seed = seed
        self.attribute_size = generator.attribute_size
        self.seed_generator = keras.random.SeedGenerator(seed, name="attribute_codes")

    def build(self, input_shape):
        input_shape = tuple(input_shape[0]) if isinstance(input_shape[0], (tuple, list)) else tuple(input_shape)
        if not self.content_encoder.built:
            self.content_encoder.build(input_shape)
        if not self.generator.built:
            self.generator.build(self.content_encoder.compute_output_shape(input_shape))
        if self.attribute_encoder is not None and not self.attribute_encoder.built:
            self.attribute_encoder.build(input_shape)
        self.built = True

    def random_codes(self, batch):
        return keras.random.normal((batch, self.attribute_size), seed=self.seed_generator)

    def call(self, inputs):
        images, codes = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        if codes is None:
            codes = self.random_codes(ops.shape(images)[0])
        return self.generator(self.content_encoder(images), codes)

    def attribute_statistics(self, images):
        """(mean, std) of the attribute code of target-domain `images`, float32 [B, n]."""
        if self.attribute_encoder is None:
            raise ValueError("this translator has no attribute encoder")
        mean, log_variance = self.attribute_encoder.encode(images)
        std = ops.zeros_like(mean) if log_variance is None else ops.exp(0.5 * log_variance)
        return mean, std

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0]) if isinstance(input_shape[0], (tuple, list)) else tuple(input_shape)
        return shape[:-1] + (3,)

    def get_config(self):
        config = {"content_encoder": keras.saving.serialize_keras_object(self.content_encoder),
                  "generator": keras.saving.serialize_keras_object(self.generator), "seed": self.seed,
                  "name": self.name}
        if self.attribute_encoder is not None:
            config["attribute_encoder"] = keras.saving.serialize_keras_object(self.attribute_encoder)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("content_encoder", "generator", "attribute_encoder"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

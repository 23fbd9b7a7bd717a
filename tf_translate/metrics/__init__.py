"""Evaluation metrics: feature extractors, FID / KID, and task metrics for translations.

    from tf_translate import metrics
    extractor = metrics.mobilenet_v2_features()          # offline default, 1280-d
    real = metrics.extract_features(extractor, real_images)   # float NHWC in [-1, 1]
    fake = metrics.extract_features(extractor, fake_images)
    metrics.frechet_distance(real, fake)
    metrics.kernel_distance(real, fake)     # torch-fidelity protocol, subsets of kid_subset_size(n_a, n_b)
    metrics.kernel_distance_blocks(real, fake)              # U-GAT-IT (TF-GAN blocks of 10)

Report the extractor and the KID protocol with every number: MobileNetV2 features give
values on another scale than the Inception features of published tables.
"""

from tf_translate.metrics.distances import (diversity, feature_statistics, frechet_distance,
                                            frechet_distance_from_statistics, kernel_distance,
                                            kernel_distance_blocks, kid_subset_size, mean_absolute_error,
                                            psnr, ssim, target_class_accuracy)
from tf_translate.metrics.features import (build_mobilenet_v2, extract_features,
                                           imagenet_preprocessing, inception_v3_features,
                                           keras_features, load_torch_mobilenet_v2,
                                           mobilenet_v2_classifier, mobilenet_v2_features,
                                           mobilenet_v2_network, mobilenet_v2_weights_path,
                                           read_torch_checkpoint)

__all__ = [
    "build_mobilenet_v2", "diversity", "extract_features", "feature_statistics",
    "frechet_distance", "frechet_distance_from_statistics", "imagenet_preprocessing",
    "inception_v3_features", "kernel_distance", "kernel_distance_blocks", "keras_features", "kid_subset_size",
    "load_torch_mobilenet_v2", "mean_absolute_error", "mobilenet_v2_classifier",
    "mobilenet_v2_features", "mobilenet_v2_network", "mobilenet_v2_weights_path", "psnr",
    "read_torch_checkpoint", "ssim", "target_class_accuracy",
]

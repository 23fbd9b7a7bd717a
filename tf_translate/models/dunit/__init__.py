"""DUNIT and INIT: instance-aware translation with object boxes (issue 36).

`boxes` (box records, the INIT text and boxes.json files, box transforms, the released
multibox IoU), `scenes` (seeded synthetic night/day scenes with exact boxes), `data`
(the tf.data pipeline of box runs), `detector` (the own one-stage box detector),
`model` (`DUNIT` as released: DRIT++ with the detector pretrained on domain A's boxes,
the IoU consistency logged), `paper` + `instance` (`DUNITPaper`, the paper's instance
branch) and `init_model` (`INIT`: instance crops at ground-truth boxes, from the
paper). RoIAlign and paste-back live in `layers/roi.py`.

Reference: Bhattacharjee et al., "DUNIT: Detection-based Unsupervised Image-to-Image
Translation", CVPR 2020 (IVRL/Dunit); Shen et al., "Towards Instance-level Image-to-Image
Translation", CVPR 2019 (INIT). Facts: REFERENCE-WAVE4.md §2-§4.
"""

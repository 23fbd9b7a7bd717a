"""DUNIT and INIT: instance-aware translation with object boxes (issue 36).

`model` holds `DUNIT` (as released: DRIT++ with a detector pretrained on domain A's
boxes and the IoU consistency logged).
"""

"""DUNIT and INIT: instance-level translation with object boxes (issue 36).

`boxes` and `scenes` hold the box records, files and synthetic scenes, `data` the box
pipeline, `detector` the own one-stage box detector, `model` the DUNIT training model.
"""

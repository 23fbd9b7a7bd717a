"""Translating an image or a folder of images with a run's generator (`--run-dir`) or an
exported SavedModel (`--model-dir`): the `translate` command, and the translate
function `evaluate` uses.

Images over TILE_PIXELS (or all, with --tile) go through the generator in overlapping
tiles (`tiling.py`); the others in batches of one size (`batching.py`), read and written
by two threads beside the generator. A multimodal generator (DRIT++) gives --codes
translations per image, one attribute code each. A generator that resizes itself
(TuiGAN) takes every image whole. A generator that takes object boxes (dunit_paper,
init) gets each image's boxes from `--boxes FILE` (boxes.json or INIT text, by file
name), scaled with the image by --max-size; such images go whole (tiles cannot carry
boxes), one per call. What a generator can do is read from its
`models.base.Generator` capabilities.

Imports no TensorFlow at the top: the CLI reads the tile constants for its help.
"""

import os
import sys

from tf_translate.files import check_no_overwrite, check_outputs_free, input_paths, one_line, output_names

# Reflection padding of the 7x7 stem needs more than 3 px a side; smaller images are
# skipped with a message rather than stopping the folder.
MIN_TRANSLATE_SIZE = 8
# Larger images are translated in tiles (`tiling.py`): CycleGAN needs 1.8 GB at 1024 x 1024
# px on CPU and 5.2 GB at 2048 x 2048, and an 8000 x 8000 photo ran out of memory whole.
TILE_PIXELS = 2048 * 2048
AUTO_TILE = 1024
TILE_OVERLAP = 64
# DRIT --codes: more translations of one image than anyone can look at is a typo; each
# is a file (streamed to disk as it is made).
MAX_CODES = 1000


def names(values):
    """`--attrs A B` or `--attrs A,B` -> [A, B] (None when not given)."""
    return values and [name for value in values for name in value.split(",") if name]


def run_translator(options):
    """(translate function: uint8 [N, H, W, 3] -> uint8 [N, H, W, 3], tile rule) of
    `--run-dir` (a run's generator) or `--model-dir` (an exported SavedModel: its
    generator's sizes are not recorded, so 4 and None; the SavedModel pads or resizes
    each tile as it needs). The tile rule is (size multiple, fixed input size or None),
    or None for a generator that resizes itself (no tiles). A multimodal generator's
    function is an `AttributeTranslate` (a new code per translation: `next_code()`).
    `options`: the parsed flags of `translate` or `evaluate` (run_dir, model_dir, best,
    direction, inference_mode, attrs, domain, codes, code_seed, reference)."""
    import tensorflow as tf

    targets = [options.domain] if options.domain else names(options.attrs)
    if options.run_dir:
        from tf_translate.export import float32_copy, serving_module, set_inference_mode
        from tf_translate.runs import BEST_WEIGHTS, CHECKPOINT, generator, load_generators

        model, record = load_generators(options.run_dir, BEST_WEIGHTS if options.best else CHECKPOINT)
        options.direction, network = generator(model, record, options.direction)
        set_inference_mode(network, options.inference_mode)
        module = serving_module(float32_copy(network))
        inputs = {}  # as export computes
        if model.data_kind == "labelled":
            if not targets:
                raise ValueError(f"name the target with --attrs or --domain; this model knows "
                                 f"{', '.join(model.label_names())}")
            inputs["labels"] = model.target_label(targets)[None]
        elif targets:
            model.target_label(targets)  # raises: not label-conditioned
        rule = None if network.resizes_itself else (module.multiple, module.fixed_size)
        check_box_flags(options, network.takes_boxes)
        module.served_signatures()  # makes the box signatures of a box-taking generator
        serve_boxes = getattr(module, "serving_boxes", None)
        if network.attribute_size:
            return AttributeTranslate(options, module.serving_attributes, module.encode_attributes,
                                      network.attribute_size, serve_boxes), rule
        check_multimodal_flags(options)
        return BoxTranslate(module.serving_default, serve_boxes, inputs, owner=module), rule

    if options.direction:
        raise ValueError("--direction is for --run-dir: a SavedModel holds one generator")
    if not os.path.isdir(options.model_dir) or not os.path.exists(os.path.join(options.model_dir, "saved_model.pb")):
        raise ValueError(f"--model-dir {options.model_dir!r} is not a SavedModel folder (no saved_model.pb; "
                         "give the version folder, e.g. saved_models/NAME/1)")
    loaded = tf.saved_model.load(options.model_dir)
    serve, inputs = loaded.signatures.get("serving_default"), {}
    if "label_names" in loaded.signatures:
        label_names = [n.decode() for n in loaded.signatures["label_names"]()["label_names"].numpy()]
        if not targets:
            raise ValueError(f"name the target with --attrs or --domain; this model knows {', '.join(label_names)}")
        inputs["labels"] = tf.constant([saved_model_label(label_names, targets)])
    elif targets:
        raise ValueError("--attrs and --domain are for label-conditioned models (stargan)")
    serve_boxes = loaded.signatures.get("serving_boxes")
    if serve_boxes is None:
        check_box_flags(options, None)
    else:  # a box-taking generator's export has its image-only signatures only when boxes are optional
        check_box_flags(options, "optional" if "serving_default" in loaded.signatures else "required")
    if "encode_attributes" in loaded.signatures:
        serve = loaded.signatures.get("serving_attributes")
        size = int((serve or serve_boxes).structured_input_signature[1]["attributes"].shape[-1])
        return AttributeTranslate(options, serve, loaded.signatures["encode_attributes"], size, serve_boxes), (4, None)
    check_multimodal_flags(options)
    return BoxTranslate(loaded.signatures.get("serving_default"), serve_boxes, inputs), (4, None)


def check_box_flags(options, takes_boxes):
    """One-line errors for --boxes given to a model that takes no boxes, or missing for
    one that requires them (`Generator.takes_boxes`); sets `options.requires_boxes`."""
    given = getattr(options, "boxes", None)
    options.requires_boxes = takes_boxes == "required"
    if given and not takes_boxes:
        raise ValueError("--boxes is for models that take object boxes (dunit_paper, init); this one takes none")
    if takes_boxes == "required" and not given:
        raise ValueError("this model translates only with object boxes: pass translate --boxes FILE "
                         "(boxes.json or init.txt naming each input image)")


class BoxTranslate:
    """uint8 [N, H, W, 3] -> uint8 through `serve` (images and the fixed `inputs`), or
    `serve_boxes` when `boxes` (float32 [N, M, 4] pixels) and `box_labels` ([N, M]) are given.
    `owner`: the module of the functions, kept alive (its tf.function methods hold it weakly)."""

    def __init__(self, serve, serve_boxes=None, inputs=None, owner=None):
        self.serve, self.serve_boxes, self.inputs, self.owner = serve, serve_boxes, inputs or {}, owner

    def __call__(self, images, boxes=None, box_labels=None):
        import tensorflow as tf

        if boxes is None:
            return self.serve(images=tf.constant(images), **self.inputs)["images"].numpy()
        return self.serve_boxes(images=tf.constant(images), boxes=tf.constant(boxes, tf.float32),
                                box_labels=tf.constant(box_labels, tf.int32), **self.inputs)["images"].numpy()


def check_multimodal_flags(options):
    """One-line errors for --codes and --reference given to a model with one output per input."""
    if options.codes != 1 or options.reference or options.code_seed is not None:
        raise ValueError("--codes, --code-seed and --reference are for multimodal models (drit); this model gives "
                         "one translation per input")


class AttributeTranslate:
    """A multimodal (DRIT) translate function: uint8 [1, H, W, 3] -> uint8, with the current
    attribute code (the same for every tile of an image). `next_code()` draws the next:
    N(0, 1) from `--code-seed`, or with `--reference` mean + std·ε of the reference
    image's code (the reference's `test.py` and `test_transfer.py`)."""

    def __init__(self, options, serve_attributes, encode_attributes, size, serve_boxes=None):
        import numpy as np
        import tensorflow as tf

        from tf_translate.data import read_rgb

        if not 1 <= options.codes <= MAX_CODES:
            raise ValueError(f"--codes must be between 1 and {MAX_CODES}, got {options.codes}")
        self.serve = serve_attributes
        self.serve_boxes = serve_boxes  # images, attributes, boxes, box_labels
        self.size = int(size)
        self.rng = np.random.default_rng(options.code_seed)
        self.mean = self.std = None
        if options.reference:
            reference = read_rgb(options.reference)
            if min(reference.shape[:2]) < MIN_TRANSLATE_SIZE:
                raise ValueError(f"--reference {options.reference!r}: {reference.shape[1]}x{reference.shape[0]} px "
                                 f"is too small (at least {MIN_TRANSLATE_SIZE} px a side)")
            stats = encode_attributes(images=tf.constant(reference[None]))
            self.mean, self.std = stats["mean"].numpy()[0], stats["std"].numpy()[0]
        self.code = None

    def next_code(self):
        noise = self.rng.standard_normal(self.size).astype("float32")
        self.code = noise if self.mean is None else (self.mean + self.std * noise).astype("float32")
        return self.code

    def __call__(self, image, boxes=None, box_labels=None):
        import tensorflow as tf

        if self.code is None:
            self.next_code()
        codes = tf.constant(self.code[None])
        if boxes is None:
            return self.serve(images=tf.constant(image), attributes=codes)["images"].numpy()
        return self.serve_boxes(images=tf.constant(image), attributes=codes, boxes=tf.constant(boxes, tf.float32),
                                box_labels=tf.constant(box_labels, tf.int32))["images"].numpy()


def saved_model_label(label_names, targets):
    """The label vector of an exported StarGAN: the named entries 1, all others 0."""
    if any(name.startswith("mask: ") for name in label_names):
        raise ValueError("a two-dataset StarGAN needs its run to pick the dataset mask: use --run-dir")
    unknown = [t for t in targets if t not in label_names]
    if unknown:
        raise ValueError(f"unknown domain(s) {', '.join(unknown)}; this model knows {', '.join(label_names)}")
    return [1.0 if name in targets else 0.0 for name in label_names]


def read_box_file(path, paths, required):
    """({file name: record}, BoxWarnings) of `--boxes` (boxes.json or INIT text) for the
    input `paths`; one-line errors for an unreadable file and, when boxes are `required`,
    for an input image without a record."""
    from tf_translate.models.dunit.boxes import BoxWarnings
    from tf_translate.models.dunit.data import read_annotations

    if not os.path.isfile(path):
        raise ValueError(f"--boxes {path!r}: no such file (a boxes.json or init.txt naming the input images)")
    warnings = BoxWarnings()
    records, _ = read_annotations(path, warnings=warnings)
    if required:
        missing = [os.path.basename(p) for p in paths if os.path.basename(p) not in records]
        if missing:
            raise ValueError(f"--boxes {path!r}: no boxes for {missing[0]}"
                             f"{f' and {len(missing) - 1} more image(s)' if len(missing) > 1 else ''}; "
                             "this model translates only with boxes")
    return records, warnings


def image_boxes(record, original_shape, shape, path, warnings):
    """{"boxes": float32 [1, M, 4], "box_labels": int32 [1, M]} of one image: `record`
    (pixels of the image as read, upright) clipped to it (counted), scaled to `shape` (the
    image after --max-size); no record or no boxes -> one padding row (no boxes)."""
    import numpy as np

    from tf_translate.models.dunit.boxes import clip_record, make_record

    height, width = original_shape[:2]
    record = clip_record(record, width, height, path, warnings) if record is not None else make_record()
    if not len(record["labels"]):
        return {"boxes": np.zeros((1, 1, 4), np.float32), "box_labels": np.zeros((1, 1), np.int32)}
    scale = np.array([shape[1] / width, shape[0] / height] * 2, np.float32)
    return {"boxes": (record["boxes"] * scale)[None], "box_labels": record["labels"][None]}


def limit_size(image, max_size):
    """`image` resized (bicubic) so that its longer side is at most `max_size` (None:
    unchanged; large images are translated in tiles instead, see `tile_size`)."""
    import numpy as np
    from PIL import Image

    if max_size is None or max(image.shape[:2]) <= max_size:
        return image
    longer = max(image.shape[:2])
    scale = max_size / longer
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def check_tiles(args, rule):
    """The tile side for images that are tiled: --tile (one-line errors for a value the
    generator cannot take), or AUTO_TILE. `rule`: the generator's (size multiple, fixed
    input size), None for one that resizes itself (no tiles); a generator tied to one
    input size (full U-GAT-IT) is tiled at that size."""
    if args.tile is not None and args.tile < 1:
        raise ValueError(f"--tile must be a positive number of px, got {args.tile}")
    if rule is None:
        if args.tile:
            raise ValueError("--tile: this model resizes every image to its trained size, so it takes no tiles")
        return None
    multiple, fixed = rule
    tile = args.tile or fixed or max(multiple, AUTO_TILE // multiple * multiple)
    if fixed and tile != fixed:
        raise ValueError(f"--tile {tile}: this generator takes {fixed}x{fixed} px inputs only; use --tile {fixed}")
    if tile < MIN_TRANSLATE_SIZE or tile % multiple:
        raise ValueError(f"--tile {tile} is not a multiple of {multiple}, this generator's size multiple, "
                         f"of at least {MIN_TRANSLATE_SIZE} px (e.g. {max(multiple, tile // multiple * multiple)})")
    if not 4 <= args.tile_overlap <= tile // 2:
        raise ValueError(f"--tile-overlap must be between 4 px and half the tile ({tile // 2} px), "
                         f"got {args.tile_overlap}")
    return tile


def translate_images(args):
    """Translates a file or every image of a folder; outputs keep the input's name and size.
    Files that cannot be read or translated are skipped, named and counted; no input file
    is ever overwritten, and no output is half-written (a full disk stops with one line).
    Images over TILE_PIXELS, or all with --tile, are translated in overlapping tiles; the
    others in batches of --batch-size images of one size, read and written by two threads
    beside the generator. Prints images per second."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    from tf_translate.batching import SizeBatches, read_ahead
    from tf_translate.data import check_images, read_rgb
    from tf_translate.files import DiskFullError, write_atomically
    from tf_translate.tiling import translate_tiled

    paths = input_paths(args.input)
    if args.max_size is not None and args.max_size < MIN_TRANSLATE_SIZE:
        raise ValueError(f"--max-size must be at least {MIN_TRANSLATE_SIZE}, got {args.max_size}")
    batch_size = args.batch_size
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    codes = args.codes
    outputs = [os.path.join(args.output, name) for name in output_names(paths)]
    if codes > 1:  # drit: NAME_0.png ... NAME_{N-1}.png
        outputs = [[f"{os.path.splitext(out)[0]}_{k}.png" for k in range(codes)] for out in outputs]
    else:
        outputs = [[out] for out in outputs]
    check_no_overwrite([out for outs in outputs for out in outs], paths, args.output)
    check_outputs_free([out for outs in outputs for out in outs], args.output, args.overwrite)
    translate, rule = run_translator(args)
    if args.boxes and args.tile:
        raise ValueError("--tile: boxes cannot be split across tiles; translate whole images "
                         "(--max-size shrinks large ones)")
    tile = check_tiles(args, rule)
    box_records = box_warnings = None
    if args.boxes:
        box_records, box_warnings = read_box_file(args.boxes, paths, args.requires_boxes)
    boxes_of = {}  # path -> {"boxes", "box_labels"} in the pixels of the image as translated
    # DRIT draws a code per image, TuiGAN resizes each image itself and boxes go image by
    # image: one image a call.
    multimodal = isinstance(translate, AttributeTranslate)
    batched = not multimodal and rule is not None and box_records is None
    good, bad = check_images(paths)
    skipped = list(bad)
    os.makedirs(args.output, exist_ok=True)
    outputs_of = dict(zip(paths, outputs))

    def read(path):
        original = read_rgb(path)
        image = limit_size(original, args.max_size)
        if min(image.shape[:2]) < MIN_TRANSLATE_SIZE:
            raise ValueError(f"{image.shape[1]}x{image.shape[0]} px is too small (at least "
                             f"{MIN_TRANSLATE_SIZE} px a side)")
        if box_records is not None:
            if image.shape[0] * image.shape[1] > TILE_PIXELS:
                raise ValueError(f"{image.shape[1]}x{image.shape[0]} px would be translated in tiles, which "
                                 "cannot carry boxes: use --max-size")
            boxes_of[path] = image_boxes(box_records.get(os.path.basename(path)), original.shape, image.shape,
                                         path, box_warnings)
        return image

    def tiled(image):
        return tile is not None and (args.tile is not None or image.shape[0] * image.shape[1] > TILE_PIXELS)

    def translate_one(path, image, count):
        """The `count` translations of one image (DRIT: one per attribute code), made one
        at a time as they are written (`submit` consumes them lazily)."""
        for _ in range(count):
            if multimodal:  # drit: a new attribute code per translation
                translate.next_code()
            yield (translate_tiled(translate, image, tile, args.tile_overlap, rule[0]) if tiled(image)
                   else translate(image[None], **boxes_of.get(path, {}))[0])

    writes = []  # (path, [futures]) in the order submitted
    written = 0

    def settle(wait_for=0):
        """Collects finished writes (all but `wait_for` pending ones): a full disk stops."""
        nonlocal written
        while len(writes) > wait_for or (writes and all(f.done() for f in writes[0][1])):
            path, futures = writes.pop(0)
            try:
                for future in futures:
                    future.result()
                written += 1
            except DiskFullError as error:
                raise DiskFullError(f"{error}; stopped after {written} of {len(paths)} image(s)") from None
            except Exception as error:
                skipped.append((path, one_line(error)))

    def submit(pool, path, results):
        save = lambda out, result: write_atomically(out, lambda file: Image.fromarray(result).save(file, format="PNG"))
        futures = []
        for out, result in zip(outputs_of[path], results):  # each written while the next is made
            futures.append(pool.submit(save, out, result))
            pending = [future for future in futures if not future.done()]
            if len(pending) > 4 * batch_size:  # a bounded number of images wait in memory
                pending[0].result()
        writes.append((path, futures))
        settle(wait_for=4 * batch_size)

    def run_batch(pool, batch):
        try:
            results = translate(np.stack([image for _, image in batch])) if len(batch) > 1 else None
        except Exception:  # translate them one by one, so that the failing file is named
            results = None
        for index, (path, image) in enumerate(batch):
            try:
                submit(pool, path, [results[index]] if results is not None
                       else translate_one(path, image, len(outputs_of[path])))
            except DiskFullError:
                raise
            except Exception as error:  # Pillow and TensorFlow raise many types; name the file, go on
                skipped.append((path, one_line(error)))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        collector = SizeBatches(batch_size if batched else 1)
        for path, image, error in read_ahead(pool, [p for p in paths if p in good], read, 2 * batch_size):
            if error is not None:
                skipped.append((path, one_line(error)))
                continue
            batch = [(path, image)] if tiled(image) else collector.add(path, image)
            if batch:
                run_batch(pool, batch)
        for batch in collector.rest():
            run_batch(pool, batch)
        settle()
    seconds = time.perf_counter() - start
    for path, reason in skipped:
        print(f"tf_translate: skipped {path}: {reason}", file=sys.stderr)
    if box_warnings is not None and box_warnings.summary():
        print(box_warnings.summary(), file=sys.stderr)
    done = len(paths) - len(skipped)
    rate = f" in {seconds:.1f} s ({done / seconds:.2f} images/s)" if done and seconds > 0 else ""
    print(f"translated {done} image(s) into {args.output}{rate}" + (f"; skipped {len(skipped)}" if skipped else ""))
    if not done:
        raise ValueError(f"--input {args.input!r}: no image could be translated")

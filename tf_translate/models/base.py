"""The model contract every training model and generator keeps, and what the training
models share: compile with the reference optimizers, XLA, gradients under loss scaling
and replicas.

Training models
---------------
A training model subclasses `TranslationModel`. What the CLI, `training`, `runs`,
`evaluation`, `export` and `torch_import` may ask of it, and nothing else:
- class attributes `reference_run` (the reference implementation's image size, batch
  size and length: `train`'s and the CLI's defaults), `data_kind` (see below) and
  `training_only_config` (config keys such as a loss network's path that translate
  and export leave out);
- `optimizer_variables()`: {optimizer attribute name: the variables it updates};
- `default_optimizers(total_steps, steps_per_epoch)`: {attribute name: optimizer};
- `completed_steps()`: training steps done (default: the first optimizer's iterations;
  TuiGAN, one optimizer pair per scale, counts its own);
- `generators()`: {direction such as "a2b": a `Generator` mapping [-1, 1] images};
- `generators_only=True` (a constructor argument that is not part of the config): the
  model builds only the networks `generators()` needs, under the attribute names the
  full model keeps them at, so its checkpoint loads them and skips the rest. Translate,
  export and evaluate build runs this way (`runs.load_generators`): no discriminators,
  image pools or loss networks (issue 39, case 11). Such a model cannot be compiled;
- `sample_rows(batch)`: [(row title, [-1, 1] images)] for the sample grid;
- `train_step(data)`; `get_config()` whose output rebuilds the model, `image_size` included;
- for label-conditioned models (`data_kind == "labelled"`): `label_names()` and
  `target_label(names)` (the defaults here refuse).
- The constructor's keyword arguments are the model's options, with its bases' while the
  constructor passes **kwargs on, less `fixed_options` (`models.constructor_options`):
  `train --option NAME=VALUE` sets any of them, and the CLI's convenience flags (`--generator`, `--inference-mode`,
  `--face-model`, `--min-size`) are accepted for a model exactly when its constructor
  has the option they set (`cli.OPTION_FLAGS`).
A model whose step schedule updates a network only on some steps (StarGAN's n_critic)
states `step_kinds` and `step_kind()`, and its `train_step(data, kind)` runs that kind
without a `tf.cond` around an update: replicated training chooses the kind on the host
(`distribute.run_distributed`).

Data kinds (`data_kind`; the value names what `fit` reads):
- "unpaired": two image folders (trainA, trainB); batches (a, b) (CycleGAN, U-GAT-IT,
  photo2cartoon, NICE-GAN, UNIT, DRIT++);
- "labelled": images with attribute or domain labels (CelebA, or one folder per
  domain); batches (images, labels) (StarGAN);
- "paired": aligned input/target pairs (A|B files side by side, or equally named files
  in trainA/trainB); batches (inputs, targets); `--direction` picks the input side
  (pix2pix);
- "image_pair": exactly one image per domain (two files), trained scale by scale
  (TuiGAN). Not to be confused with "paired": no pixel correspondence between them.

Generators
----------
Every network that `generators()` returns subclasses `Generator` (a plain `keras.Model`
that adds no weights or layers) and declares what it can do; export, translate and the
CLI read these and never probe:
- `input_multiple` (1): height and width must be multiples of it (export pads to it,
  and to the lcm with 4; tiles are multiples of it);
- `fixed_input_size` (None): the one size the network takes (full U-GAT-IT), else None;
- `label_size` (0): length of the target label the network also takes, called as
  `generator([images, labels])` (StarGAN's `num_domains`); 0 = images only;
- `attribute_size` (0): length of the attribute code of a multimodal network, called as
  `generator(images)` (random code) or `generator([images, codes])`, with
  `attribute_statistics(images)` (DRIT++); 0 = none;
- `returns_heatmap` (False): the call returns (image, CAM logits, heatmap), and the
  export can serve the heatmap (U-GAT-IT, photo2cartoon);
- `inference_modes` (()): the test-time behaviours `inference_mode` may be set to
  (pix2pix: "reference", "eval"); () = one behaviour;
- `resizes_itself` (False): the network resizes any input to its trained size itself
  (TuiGAN's pyramid): no tiles and no padding;
- `takes_boxes` (None): "optional" or "required" for a network that also takes object
  boxes, called as `generator(inputs, boxes=boxes, labels=labels)` with boxes float32
  [B, M, 4] xyxy pixels of its input and labels int32 [B, M] (0 = padding): "optional"
  finds its own boxes when given none (dunit_paper's detector), "required" cannot
  translate without them (init); None = no boxes;
- `serving_module()`: the `export.GeneratorModule` that serves it, or None for the
  standard one chosen from the capabilities above.
Subclasses override them as class attributes, properties or instance attributes.

How to add a model
------------------
1. Files: `models/<name>.py` holding the paper's networks (generators subclass
   `Generator`), its `TranslationModel` and a docstring naming the reference files;
   the PyTorch restatement `tests/torch_<name>.py` if parity is tested.
2. Table row: `models/__init__.py` `MODELS["<name>"] = (Class, preset kwargs)`.
3. Contract: the lists above; `reference_run`, `data_kind`, and the capabilities of its
   generators; nothing else is read from outside. The constructor honours
   `generators_only` (`tests/test_checkpoint_compat.py` checks it through a fixture).
4. Tests to copy: `tests/test_cyclegan.py` (parameter counts, config round trip,
   `.keras` save/load, jit train step moving only G then only D variables, mixed
   precision close to float32), a step-parity test against the reference
   (`tests/test_step_parity.py`), and a CLI train -> translate -> export round trip
   (`tests/test_cli.py`).
"""

import dataclasses

import keras
import tensorflow as tf

from tf_translate.generator import Generator  # noqa: F401  (the generator half of the contract)


def call_on_both(network, first, second):
    """(network(first), network(second)) from one training call on both batches.

    Valid for networks whose normalisation is per image (instance norm, AdaLIN; no
    batch norm): the values are those of two calls, with batch-2 products that read
    each kernel once and half the graph to trace and compile. Nested outputs (e.g. a
    U-GAT-IT generator's image, CAM logit and heatmap) are split element by element.
    """
    outputs = network(tf.concat([first, tf.cast(second, first.dtype)], axis=0), training=True)
    batch = first.shape[0] or tf.shape(first)[0]
    return (tf.nest.map_structure(lambda t: t[:batch], outputs),
            tf.nest.map_structure(lambda t: t[batch:], outputs))


def unique(variables):
    """`variables` without repeats, in order: networks that share layers (UNIT's
    shared_layers, DRIT++'s shared content block) list them once per domain."""
    seen, kept = set(), []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            kept.append(variable)
    return kept


@dataclasses.dataclass(frozen=True)
class ReferenceRun:
    """How the reference implementation trains a model by default: image size, batch
    size, and length in `epochs` of the data or in `steps` (train steps), one of the two."""
    image_size: int = 256
    batch_size: int = 1
    epochs: int = None
    steps: int = None

    def length(self):
        return f"{self.steps:,} steps" if self.steps else f"{self.epochs} epochs"


class TranslationModel(keras.Model):
    """Base of the training models (CycleGAN, UGATIT, StarGAN, ...): see the module docstring."""

    reference_run = ReferenceRun(epochs=200)
    data_kind = "unpaired"
    training_only_config = ()  # config keys inference never needs (and never loads)
    step_kinds = ()  # see the module docstring: one kind of step unless a model says otherwise

    def __init__(self, generators_only=False, **kwargs):
        super().__init__(**kwargs)
        self.generators_only = generators_only

    def completed_steps(self):
        """Training steps completed: the iteration count of the model's first optimizer
        (the one `optimizer_variables()` names first)."""
        name = next(iter(self.optimizer_variables()))
        return int(getattr(self, name).iterations.numpy())

    def label_names(self):
        """What each entry of a generator's label input means (label-conditioned models)."""
        raise ValueError(f"{type(self).__name__} takes no target labels")

    def target_label(self, names):
        """The label vector selecting the target attributes or domain `names`."""
        raise ValueError("--attrs and --domain are for label-conditioned models (stargan)")

    def compile(self, total_steps=None, steps_per_epoch=1, jit_compile=True, **optimizers):
        """Sets the optimizers (the reference's when not given) and XLA.

        Args:
            total_steps: training length; the learning rate is constant for the first
                half and decays linearly over the second (the references' schedule).
                None keeps it constant.
            steps_per_epoch: decay granularity (junyanz decays once per epoch).
            jit_compile: compile the whole train step with XLA. Under a distribution
                strategy XLA cannot compile the cross-replica updates on CPU, so it is
                turned off there.
            **optimizers: optimizers by attribute name (e.g. `g_optimizer=...`).
        """
        if self.generators_only:
            raise ValueError(f"this {type(self).__name__} was built with generators_only=True (for translate "
                             "and export): it has no discriminators to train")
        defaults = self.default_optimizers(total_steps, steps_per_epoch)
        unknown = set(optimizers) - set(defaults)
        if unknown:
            raise ValueError(f"unknown optimizers {sorted(unknown)}; expected {sorted(defaults)}")
        for name, default in defaults.items():
            setattr(self, name, optimizers.get(name) or default)
        if tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1:
            jit_compile = False
        super().compile(optimizer=None, jit_compile=jit_compile)
        self.build_optimizers()

    def make_train_function(self, force=False):
        """With XLA on one device, the XLA-compiled step is called directly on the next
        batch. Keras wraps it in a second, non-compiled tf.function over the iterator,
        whose graph optimisation walks the step's whole function body again: 5-8 s more
        before full U-GAT-IT's first step (74.7 vs 66.5 s in one pair of runs, 90.5 vs
        85.1 s averaged over alternating runs on a slower day). Eager runs, several
        replicas and `steps_per_execution` > 1 keep Keras' function."""
        if self.train_function is not None and not force:
            return self.train_function
        if (not self.jit_compile or self.run_eagerly or self.steps_per_execution != 1
                or tf.distribute.has_strategy()):
            return super().make_train_function(force)
        step = self.xla_train_step()
        self.train_function = lambda iterator: step(next(iterator))
        return self.train_function

    def xla_train_step(self):
        """`train_step` as the XLA-compiled function `fit` calls on one device.

        Traced without AutoGraph: train steps branch in Python on Python values only
        (tensor conditions are explicit `tf.cond`s), and converting every function the
        step calls cost 3 s of full U-GAT-IT's 16 s trace."""
        return tf.function(self.train_step, jit_compile=True, reduce_retracing=True, autograph=False)

    def build_optimizers(self):
        """Creates the optimizer slots now, outside any traced step: a checkpoint can then
        be loaded before training, and under a distribution strategy the slots are made
        in its scope rather than inside the replicated function (which fails)."""
        for name, variables in self.optimizer_variables().items():
            optimizer = getattr(self, name)
            if not optimizer.built:
                optimizer.build(variables)

    @staticmethod
    def replicas():
        """Replicas in sync: per-replica mean losses are divided by it."""
        return tf.distribute.get_strategy().num_replicas_in_sync

    def gradients(self, optimizer_name, tape, loss):
        """Gradients of `loss` for the variables the named optimizer updates.

        The loss is divided by the replica count (our losses are per-replica means) and
        multiplied by the loss scale when the optimizer is a LossScaleOptimizer
        (`scale_loss` is otherwise the identity), so float32 and mixed precision share
        one path. Both factors are constants, so they enter as the output gradient and
        the caller's tape needs to record nothing extra.
        """
        optimizer = getattr(self, optimizer_name)
        variables = self.optimizer_variables()[optimizer_name]
        factor = optimizer.scale_loss(tf.constant(1.0 / self.replicas(), tf.float32))
        return tape.gradient(loss, variables, output_gradients=tf.cast(factor, loss.dtype))

    def apply_gradients(self, optimizer_name, grads):
        """Applies (and unscales, under loss scaling) gradients from `gradients`."""
        getattr(self, optimizer_name).apply(grads, self.optimizer_variables()[optimizer_name])

    def networks(self):
        """{attribute name: network} of every network the model trains."""
        return {name: value for name, value in vars(self).items() if isinstance(value, keras.Model)}

    def with_weight_decay(self, optimizer_name, grads):
        """grad + self.weight_decay·w for every variable the optimizer updates.

        PyTorch's Adam(weight_decay) adds the L2 term to the gradient before the moments
        (Keras Adam's `weight_decay` is decoupled, AdamW-style, so it is not used). The
        gradients from `gradients` carry the loss scale and the 1/replicas factor and
        are summed over replicas, so the decay term is given the same factor.
        """
        if not getattr(self, "weight_decay", 0.0):
            return grads
        optimizer = getattr(self, optimizer_name)
        factor = optimizer.scale_loss(tf.constant(self.weight_decay / self.replicas(), tf.float32))
        variables = self.optimizer_variables()[optimizer_name]
        return [None if g is None else g + tf.cast(factor, g.dtype) * tf.cast(v, g.dtype)
                for g, v in zip(grads, variables)]

    def update(self, optimizer_name, tape, loss):
        """Gradients of `loss`, plus the L2 term, applied by the named optimizer."""
        grads = self.gradients(optimizer_name, tape, loss)
        self.apply_gradients(optimizer_name, self.with_weight_decay(optimizer_name, grads))

    # -- Run settings and training phases: what `training.train` reads besides the above. A
    # model that trains as the image-folder models do keeps these defaults. (issue 32)
    fixed_options = ()  # options of a base class that this model's constructor sets itself (not options)
    flag_options = {"image_size": "image_size"}  # train setting -> the constructor option it sets
    unused_flags = ()  # train settings the model has no use for: refused when given, not recorded
    precisions = None  # the precision policies the model trains in (None: any)
    trains_with_xla = True  # False: the step runs as a graph-compiled tf.function whatever --xla says

    @classmethod
    def options_from_data(cls, data, options):
        """Constructor options the training data decides (TuiGAN: the size of image A),
        given the data and the options so far; none by default."""
        return {}

    def dataset_function(self):
        """The function making this model's training dataset, called as `train` calls a
        `dataset_fn`; None: the one of its `data_kind` (`training.default_dataset`)."""
        return None

    def phases(self, total_steps):
        """The training phases in order, [(title, steps)]: one `fit` of `steps` train steps
        each, after `start_phase(index)`. Step numbers run on across phases (the phase of a
        resumed run follows from its step). Default: one untitled phase of the run's
        `total_steps`; TuiGAN: one per scale, the earlier scales frozen."""
        return [(None, total_steps)]

    def start_phase(self, index):
        """Prepares phase `index` (also when a resumed run continues inside it)."""

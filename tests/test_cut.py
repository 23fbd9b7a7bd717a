"""CUT and FastCUT: networks, resampling, PatchNCE, step parity with a PyTorch
re-statement of `cut_model.py`, the importer, config and the CLI.

Parity follows test_step_parity.py's rule: both sides start from the same weights and see
the same batches and random draws; the PyTorch side runs in float64 (the reference) and in
float32 (its own float32 noise); ours must miss the float64 reference's kernel updates by
at most 1.5x the float32 run's miss + 0.5 % of the update.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import random_images
from tf_translate import build_model
from tf_translate.layers.antialias import BilinearUpsampling2D, BlurDownsampling2D
from tf_translate.losses import patch_nce_loss
from tf_translate.models import PatchGANDiscriminator, ResNetGenerator
from tf_translate.models.cut import CUT, CUTGenerator, FastCUT, PatchSampleMLP

TINY = dict(image_size=32, filters=8, num_residual_blocks=5, discriminator_filters=8, mlp_units=32, num_patches=64)


# --------------------------------------------------------------------------- networks

@pytest.mark.parametrize("flags", [{}, {"no_antialias": True}, {"no_antialias": True, "no_antialias_up": True}])
def test_generator_and_discriminator_parameter_counts_equal_the_reference(flags):
    """REFERENCE-WAVE4 §1.9: G 11,378,179 and D 2,764,737 in every mode."""
    generator = CUTGenerator(**flags)
    generator.build((None, None, None, 3))
    assert generator.count_params() == 11_378_179
    discriminator = PatchGANDiscriminator(antialias=not flags.get("no_antialias"), init="xavier")
    discriminator.build((None, None, None, 3))
    assert discriminator.count_params() == 2_764_737
    assert discriminator(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 30, 30, 1)


def test_patch_mlp_parameter_count_and_tapped_feature_shapes():
    """netF 560,384 (66,816 + 98,816 + 3 x 131,584); the taps at 256 px are the padded
    input, the two full-size pre-norm down convs and res blocks 1 and 5 (§1.2)."""
    generator = CUTGenerator()
    generator.build((None, None, None, 3))
    channels = generator.feature_channels()
    assert channels == [3, 128, 256, 256, 256]
    mlp = PatchSampleMLP(channels)
    mlp.build()
    assert mlp.count_params() == 560_384
    features = generator.encode(np.zeros((1, 256, 256, 3), np.float32))
    assert [tuple(f.shape[1:3]) for f in features] == [(262, 262), (256, 256), (128, 128), (64, 64), (64, 64)]
    stack = generator.stack
    assert [type(stack[i]).__name__ for i in (0, 12, 16)] == ["ReflectionPadding2D", "ResidualBlock", "ResidualBlock"]
    assert isinstance(stack[5], type(stack[2])) and isinstance(stack[9], type(stack[2]))  # IN after taps 4 and 8


def test_weights_are_xavier_normal_with_gain_0_02():
    generator = CUTGenerator()
    generator.build((None, None, None, 3))
    block = [w.numpy() for w in generator.weights if w.shape == (3, 3, 256, 256)]
    expected = 0.02 * np.sqrt(2.0 / (9 * 256 + 9 * 256))  # 4.2e-4
    pooled = np.concatenate([b.ravel() for b in block])
    assert abs(pooled.std() / expected - 1) < 0.01 and np.abs(pooled).max() > 2.5 * expected  # untruncated
    assert not any(w.numpy().any() for w in generator.weights if "bias" in w.path)
    mlp = PatchSampleMLP([128])
    mlp.build()
    assert abs(mlp.mlps[0].layers[0].kernel.numpy().std() / (0.02 * np.sqrt(2 / 384)) - 1) < 0.02  # 1.44e-3


def test_no_antialias_networks_are_the_cyclegan_networks():
    """With both flags the generator is junyanz's layer for layer (and D with no_antialias)."""
    x = random_images(2, 32, 3)
    ours = CUTGenerator(8, 2, no_antialias=True, no_antialias_up=True)
    cyclegan = ResNetGenerator(8, 2)
    for net in (ours, cyclegan):
        net.build((None, None, None, 3))
    cyclegan.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x).numpy(), cyclegan(x).numpy(), atol=1e-6)
    d_ours, d_cyclegan = PatchGANDiscriminator(8, antialias=False, init="xavier"), PatchGANDiscriminator(8)
    for net in (d_ours, d_cyclegan):
        net.build((None, None, None, 3))
    d_cyclegan.set_weights(d_ours.get_weights())
    np.testing.assert_allclose(d_ours(x).numpy(), d_cyclegan(x).numpy(), atol=1e-6)


def numpy_blur_down(x):
    """Reference `Downsample`: reflect pad 1, [1,2,1]x[1,2,1]/16 per channel, stride 2."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    taps = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    out_h, out_w = (x.shape[1] + 1) // 2, (x.shape[2] + 1) // 2
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
            out[:, i, j, :] = np.einsum("bhwc,hw->bc", window, taps)
    return out


def numpy_transposed_up(x):
    """Reference `Upsample`: replicate pad 1, transposed conv (stride 2, padding 2) with
    [1,3,3,1]x[1,3,3,1]/64 x 4 per channel (out[2i + a - 2] += x[i] w[a]), then the first
    and last row and column dropped."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    taps = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0 * 4
    n, h, w, c = padded.shape
    size_h, size_w = (h - 1) * 2 - 4 + 4, (w - 1) * 2 - 4 + 4
    out = np.zeros((n, size_h, size_w, c))
    for i in range(h):
        for j in range(w):
            for a in range(4):
                for b in range(4):
                    oi, oj = 2 * i + a - 2, 2 * j + b - 2
                    if 0 <= oi < size_h and 0 <= oj < size_w:
                        out[:, oi, oj, :] += padded[:, i, j, :] * taps[a, b]
    return out[:, 1:-1, 1:-1, :]


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 7, 10, 2), (1, 255, 5, 1)])
def test_antialiased_resampling_against_numpy(shape):
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    down = BlurDownsampling2D()
    np.testing.assert_allclose(down(x).numpy(), numpy_blur_down(x), atol=1e-5)
    assert down.compute_output_shape(shape) == numpy_blur_down(x).shape  # 255 -> 128 (ceil)
    up = BilinearUpsampling2D()(x).numpy()
    np.testing.assert_allclose(up, numpy_transposed_up(x), atol=1e-5)
    np.testing.assert_allclose(up, tf.image.resize(x, (2 * shape[1], 2 * shape[2]), "bilinear").numpy(), atol=1e-5)
    assert not down.weights and not BilinearUpsampling2D().weights


# --------------------------------------------------------------------------- PatchNCE

def test_patch_nce_loss_against_a_hand_computation():
    rng = np.random.default_rng(0)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)
    q, k = unit(rng.normal(size=(2, 5, 4))), unit(rng.normal(size=(2, 5, 4)))
    expected = []
    for b in range(2):
        for i in range(5):
            logits = [q[b, i] @ k[b, i]] + [(-10.0 if j == i else q[b, i] @ k[b, j]) for j in range(5)]
            logits = np.array(logits) / 0.07
            expected.append(np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[0])
    ours = patch_nce_loss(tf.constant(q, tf.float32), tf.constant(k, tf.float32), 0.07)
    np.testing.assert_allclose(float(ours), np.mean(expected), rtol=1e-5)
    # Negatives are per image: the other image's patches change nothing.
    k_other = k.copy()
    k_other[1] = unit(rng.normal(size=(5, 4)))
    first = lambda kk: float(patch_nce_loss(tf.constant(q[:1], tf.float32), tf.constant(kk[:1], tf.float32)))
    assert first(k) == first(k_other)


def test_patch_mlp_normalises_with_epsilon_on_the_norm():
    mlp = PatchSampleMLP([3], units=4)
    mlp.build()
    feature = np.random.default_rng(0).normal(size=(2, 3, 3, 3)).astype(np.float32)
    out = mlp([feature], [tf.constant([4, 0, 8])])[0].numpy()
    flat = feature.reshape(2, 9, 3)[:, [4, 0, 8]]
    first, second = mlp.mlps[0].layers
    h = np.maximum(flat @ first.kernel.numpy() + first.bias.numpy(), 0) @ second.kernel.numpy() + second.bias.numpy()
    np.testing.assert_allclose(out, h / (np.linalg.norm(h, axis=-1, keepdims=True) + 1e-7), rtol=1e-5)


# --------------------------------------------------------------------------- PyTorch parity

try:  # only the tests marked needs_torch compare with PyTorch; the others run without it
    import torch
    from torch_cut import TorchCUT
except ImportError:
    torch = TorchCUT = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch (pip install -e '.[torch]')")

STEPS = 3


def update_miss(variables, values, reference, start):
    """||values - reference|| / ||reference - start|| over the kernels (test_step_parity's rule)."""
    variables = [v for v in variables if len(v.shape) > 1]
    miss = sum(float(np.sum((values[id(v)] - reference[id(v)]) ** 2)) for v in variables)
    update = sum(float(np.sum((reference[id(v)] - start[id(v)]) ** 2)) for v in variables)
    return np.sqrt(miss / update)


def within_float32_floor(run):
    return {group: run["ours"][group] < 1.5 * run["float32"][group] + 0.005 for group in run["ours"]}


def draw_patch_ids(rng, model, nce_identity):
    """The reference's draws: per NCE term and layer, permutation(H·W)[:num_patches]."""
    features = model.generator.encode(np.zeros((1, 32, 32, 3), np.float32), model.nce_layers)
    draw = lambda: [rng.permutation(int(f.shape[1] * f.shape[2]))[:model.num_patches].astype(np.int32)
                    for f in features]
    return (draw(), draw() if nce_identity else None)


FLOAT32_RUNS = ({}, {"channels_last": True})  # two samples of the reference's float32 noise


def parity_run(name, controls=()):
    """STEPS iterations of ours (XLA) and of the re-statement from the same weights,
    batches and draws: the reference in float64, and in float32 twice (contiguous and
    channels-last tensors: other kernels, other rounding); each control likewise.

    The float32 floor is the larger of the two float32 runs' misses. One run can be
    lucky: a ReLU input within ~1e-6 of 0 (one in ~10^5 here) takes either side in
    float32, its gradient changes by ~1e-3 relative, and Adam's first, sign-like steps
    turn that into a miss of a few % (measured after one step: ours 5.42 %, the
    channels-last float32 run 5.42 %, the contiguous one 0.00003 %, on the same element).
    """
    model = build_model(name, **TINY, seed=0)
    torch_config = dict(ngf=8, n_blocks=5, ndf=8, netF_nc=32, lambda_NCE=model.nce_weight,
                        nce_idt=model.nce_identity, flip_equivariance=model.flip_equivariance)
    make = lambda dtype, **kw: TorchCUT(**torch_config, dtype=dtype, **kw)
    references = {"reference": [make("float64")] + [make("float32", **run) for run in FLOAT32_RUNS]}
    for label, kw in dict(controls).items():  # a control's floor from its channels-last run alone (time)
        references[label] = [make("float64", **kw), make("float32", **kw, **FLOAT32_RUNS[-1])]
    references["reference"][0].copy_to(model)
    start = references["reference"][0].weights_as_keras(model)
    model.compile(jit_compile=True)
    step = tf.function(model.optimize, jit_compile=True)
    rng = np.random.default_rng(0)
    losses = []
    for index in range(STEPS):
        a, b = random_images(1, 32, 2 * index), random_images(1, 32, 2 * index + 1)
        flip = bool(index % 2 == 0) if model.flip_equivariance else False
        ids = draw_patch_ids(rng, model, model.nce_identity)
        tf_ids = tuple(None if i is None else [tf.constant(x) for x in i] for i in ids)
        logs = step(tf.constant(a), tf.constant(b), tf.constant(flip), tf_ids)
        steps = {label: [trainer.step(a, b, flip, ids) for trainer in trainers]
                 for label, trainers in references.items()}
        losses.append(({k: float(v) for k, v in logs.items()}, steps["reference"]))
    groups = {"G": model.generator.trainable_variables, "D": model.discriminator.trainable_variables,
              "F": model.patch_sampler.trainable_variables}
    ours = {id(v): v.numpy().astype(np.float64) for vs in groups.values() for v in vs}
    results = {}
    for label, (ref64, *ref32s) in references.items():
        expected = ref64.weights_as_keras(model)
        float32 = [ref.weights_as_keras(model) for ref in ref32s]
        results[label] = {"ours": {g: update_miss(vs, ours, expected, start) for g, vs in groups.items()},
                          "float32": {g: max(update_miss(vs, f, expected, start) for f in float32)
                                      for g, vs in groups.items()},
                          # ours against the reference's channels-last float32 run, whose kernels round
                          # as ours do (NHWC): the share of that run's update ours misses
                          "vs_channels_last": {g: update_miss(vs, ours, float32[-1], start) for g, vs in groups.items()}}
    return results, losses


def check_losses(losses):
    """Each logged loss within 1.5x the float32 runs' largest deviation from the float64
    reference, + 1e-5 relative."""
    for ours, (expected, *float32) in losses:
        for name, value in expected.items():
            floor = max(abs(run[name] - value) for run in float32)
            assert abs(ours[name] - value) <= 1.5 * floor + 1e-5 * abs(value) + 1e-9, (name, ours[name], expected,
                                                                                      float32)


@pytest.fixture(scope="module")
def cut_parity():
    return parity_run("cut", {"g_first": {"order": "g_first"}, "k_not_detached": {"detach_k": False}})


@needs_torch
def test_cut_losses_match_the_reference_step(cut_parity):
    check_losses(cut_parity[1])


CHANNELS_LAST_TOLERANCE = 0.01


@needs_torch
def test_cut_updates_match_the_reference_step(cut_parity):
    """Ours within the project's float32 floor of the float64 reference, and within 1 % of
    the reference's own channels-last float32 run (which rounds as ours does, NHWC).
    Measured after 3 steps: G 15.92 % vs floor 15.92 %, D 0.185 % vs 0.185 %, F 8.38 % vs
    8.38 % (the floor is the channels-last run, see `parity_run`)."""
    results, _ = cut_parity
    print(results)
    assert all(within_float32_floor(results["reference"]).values()), results["reference"]
    assert all(m < CHANNELS_LAST_TOLERANCE for m in results["reference"]["vs_channels_last"].values()), results


@needs_torch
def test_the_parity_checks_fail_for_d_after_g_and_for_a_k_that_is_not_detached(cut_parity):
    """Negative controls. With gradients through k, ours misses the control beyond the
    float32 floor. G before D changes only G's adversarial gradient (D's step is the
    same in both orders; NCE dominates G's gradient), which hides in the float64
    rule's floor here, but not in the channels-last comparison."""
    results, _ = cut_parity
    assert not all(within_float32_floor(results["k_not_detached"]).values()), results["k_not_detached"]
    for control in ("g_first", "k_not_detached"):
        assert max(results[control]["vs_channels_last"].values()) > CHANNELS_LAST_TOLERANCE, results[control]


@needs_torch
def test_fastcut_matches_the_reference_step_with_flips():
    """FastCUT (lambda_NCE 10, no identity NCE, flipped input on steps 0, 2, 4)."""
    results, losses = parity_run("fastcut")
    print(results)
    check_losses(losses)
    assert all(within_float32_floor(results["reference"]).values()), results["reference"]
    assert all(m < CHANNELS_LAST_TOLERANCE for m in results["reference"]["vs_channels_last"].values()), results


@needs_torch
@pytest.mark.parametrize("flags", [{}, {"no_antialias": True, "no_antialias_up": True}, {"no_antialias": True}])
def test_imported_official_generator_matches_the_reference_forward(flags):
    """`import_cut_generator` on a reference state dict: equal images and equal NCE
    features (with no_antialias, layer 8 is the in-place-ReLU'd norm output)."""
    from tf_translate.torch_import import cut_generator_from_state_dict as import_cut_generator

    reference = TorchCUT(ngf=8, n_blocks=5, ndf=8, dtype="float32", **flags)
    state = {f"module.{k}": v for k, v in reference.netG.state_dict().items()}  # as DataParallel saves it
    generator = import_cut_generator(state)
    assert generator.no_antialias == bool(flags.get("no_antialias"))
    assert generator.no_antialias_up == bool(flags.get("no_antialias_up"))
    x = random_images(2, 32, 7)
    with torch.no_grad():
        expected = reference.netG(reference.tensor(x)).permute(0, 2, 3, 1).numpy()
        features = reference.netG(reference.tensor(x), [0, 4, 8, 12, 16], encode_only=True)
    np.testing.assert_allclose(generator(x).numpy(), expected, atol=2e-5)
    for ours, theirs in zip(generator.encode(x), features):
        np.testing.assert_allclose(ours.numpy(), theirs.permute(0, 2, 3, 1).numpy(), atol=2e-5)
    if flags.get("no_antialias"):
        assert generator.encode(x)[2].numpy().min() == 0.0


@needs_torch
def test_import_torch_cli_makes_a_run_that_translates_as_the_reference(tmp_path):
    """`import-torch --model cut` on an official-layout latest_net_G.pth: the run's a2b
    generator equals the PyTorch network."""
    from tf_translate.cli import main
    from tf_translate.runs import generator, load_generators

    reference = TorchCUT(ngf=8, n_blocks=2, ndf=8, dtype="float32")
    torch.save(reference.netG.state_dict(), tmp_path / "latest_net_G.pth")
    assert main(["import-torch", "--model", "cut", "--checkpoint", str(tmp_path / "latest_net_G.pth"),
                 "--output", str(tmp_path / "run")]) == 0
    model, record = load_generators(str(tmp_path / "run"))
    x = random_images(1, 32, 3)
    with torch.no_grad():
        expected = reference.netG(reference.tensor(x)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(generator(model, record)[1](x).numpy(), expected, atol=2e-5)


def test_importer_refuses_other_state_dicts():
    from tf_translate.torch_import import cut_generator_from_state_dict as import_cut_generator
    with pytest.raises(ValueError, match="model.1.weight"):
        import_cut_generator({"conv.weight": np.zeros((1, 1, 1, 1))})


# --------------------------------------------------------------------------- model

def test_fastcut_flips_the_input_and_unflips_q():
    """The logged NCE with flip=True equals a hand computation on G(flip(A)) with q's
    features flipped back and k from the unflipped A; flip=False differs."""
    from tf_translate.models.cut import sample_patch_ids
    model = build_model("fastcut", **TINY, seed=0)
    model.compile(jit_compile=False)
    assert (model.nce_weight, model.nce_identity, model.flip_equivariance) == (10.0, False, True)
    a, b = random_images(1, 32, 1), random_images(1, 32, 2)
    features = model.generator.encode(a, model.nce_layers)
    ids = sample_patch_ids(features, model.num_patches, keras.random.SeedGenerator(3))
    fake = model.generator(a[:, :, ::-1])
    q = model.patch_sampler([f[:, :, ::-1] for f in model.generator.encode(fake)], ids)
    k = model.patch_sampler(model.generator.encode(a), ids)
    expected = np.mean([10.0 * float(patch_nce_loss(qi, ki)) for qi, ki in zip(q, k)])
    unflipped = CUT.from_config(model.get_config())  # same config, not compiled: nothing to update
    assert type(unflipped) is CUT and unflipped.flip_equivariance
    logs = model.optimize(tf.constant(a), tf.constant(b), tf.constant(True), (ids, None))
    np.testing.assert_allclose(float(logs["nce_loss"]), expected, rtol=1e-5)
    model2 = build_model("fastcut", **TINY, seed=0)
    model2.set_weights(model.get_weights())
    coins = [bool(model2.draw_flip()) for _ in range(200)]
    assert 70 < sum(coins) < 130  # one fair coin per iteration


def test_config_round_trip_and_presets():
    for name, cls in (("cut", CUT), ("fastcut", FastCUT)):
        model = build_model(name, **TINY)
        config = model.get_config()
        assert type(model) is cls and cls.from_config(config).get_config() == config
    assert build_model("cut", **TINY).get_config()["nce_weight"] == 1.0
    assert (CUT.reference_run.epochs, FastCUT.reference_run.epochs) == (400, 200)
    with pytest.raises(ValueError, match="nce_weight must be positive"):
        build_model("cut", **TINY, nce_weight=0.0)
    with pytest.raises(ValueError, match="nce_layers"):
        build_model("cut", **TINY, nce_layers=[0, 40])


def test_fastcut_takes_every_cut_option_and_its_run_json_reads_back():
    """FastCUT's signature is CUT's with FastCUT's defaults, as `--option`, `--help` and the
    run.json check read it (with `**kwargs` alone, `--option filters=8` was refused and
    every fastcut run.json failed its check on `image_size`: no translate, export,
    evaluate or resume)."""
    import inspect

    from tf_translate.cli import model_options
    from tf_translate.runs import check_config
    assert model_options("fastcut", ["filters=8", "no_antialias=true"]) == {"filters": 8, "no_antialias": True}
    check_config("fastcut", build_model("fastcut", **TINY).get_config(), "run.json")
    defaults = {name: p.default for name, p in inspect.signature(FastCUT.__init__).parameters.items()}
    assert [defaults[name] for name in ("nce_weight", "nce_identity", "flip_equivariance", "constant_epochs",
                                        "decay_epochs", "filters")] == [10.0, False, True, 150, 50, 64]
    assert FastCUT(**TINY).get_config() == {**CUT(**TINY).get_config(), "nce_weight": 10.0, "nce_identity": False,
                                            "flip_equivariance": True, "constant_epochs": 150, "decay_epochs": 50}


def test_schedule_splits_epochs_as_the_reference_and_steps_at_epoch_end():
    """FastCUT's 150 + 50 over 200 epochs: epoch 151 (1-based) runs at lr·50/51, the last
    at lr/51; CUT's 200 + 200: epoch 201 at lr·200/201, the last at lr/201."""
    for name, epochs, constant, decay in (("fastcut", 200, 150, 50), ("cut", 400, 200, 200)):
        model = build_model(name, **TINY)
        model.compile(total_steps=epochs * 3, steps_per_epoch=3)
        def rate(epoch):  # the rate F's Adam uses in a 1-based epoch
            model.f_optimizer.iterations.assign(3 * (epoch - 1))
            return float(model.f_optimizer.learning_rate)
        assert rate(constant) == pytest.approx(2e-4, rel=1e-6)
        assert rate(constant + 1) == pytest.approx(2e-4 * decay / (decay + 1), rel=1e-5)
        assert rate(epochs) == pytest.approx(2e-4 / (decay + 1), rel=1e-5)


def test_cli_trains_translates_and_exports_cut(tmp_path):
    from PIL import Image

    from tf_translate.cli import main
    from tf_translate.data import read_rgb
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for folder in ("trainA", "trainB", "testA"):
        os.makedirs(data / folder)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(data / folder / f"{i}.png")
    run = str(tmp_path / "run")
    options = ["filters=8", "num_residual_blocks=5", "discriminator_filters=8", "mlp_units=16", "num_patches=32"]
    argv = ["train", "--model", "cut", "--data", str(data), "--run-dir", run, "--steps", "2", "--image-size", "32",
            "--no-xla"]  # the XLA step is the parity tests'; compiling it again here would double the file's time
    for option in options:
        argv += ["--option", option]
    assert main(argv) == 0
    with open(os.path.join(run, "run.json")) as f:
        record = json.load(f)
    assert record["model"] == "cut" and record["config"]["num_patches"] == 32 and record["config"]["nce_identity"]
    assert os.listdir(os.path.join(run, "samples"))
    out = str(tmp_path / "out")
    assert main(["translate", "--run-dir", run, "--input", str(data / "testA"), "--output", out]) == 0
    assert sorted(os.listdir(out)) == ["0.png", "1.png"]
    assert main(["export", "--run-dir", run, "--output", str(tmp_path / "served")]) == 0
    served = str(tmp_path / "served_out")
    assert main(["translate", "--model-dir", str(tmp_path / "served" / "1"), "--input", str(data / "testA"),
                 "--output", served]) == 0
    for name in ("0.png", "1.png"):  # the SavedModel translates as the run does
        difference = read_rgb(os.path.join(served, name)).astype(int) - read_rgb(os.path.join(out, name)).astype(int)
        assert np.abs(difference).max() <= 1


def test_mixed_float16_step_is_finite_and_moves_g_d_and_f():
    """G's and F's gradients come from one tape pass with G's loss scale; F's are
    rescaled to its own optimizer's scale (different LossScaleOptimizers). Dynamic loss
    scaling skips the steps whose scaled gradients overflow float16 and halves the scale:
    G's raw gradients reach ~100 at xavier-0.02 init (instance norm divides by activation
    stds of ~2e-3), so the scale must fall from 2^15 to ~2^6 before G moves."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("cut", **TINY, seed=0)
        model.compile(jit_compile=False)
        assert isinstance(model.f_optimizer, keras.optimizers.LossScaleOptimizer)
        before = {name: [w.numpy().copy() for w in net.trainable_weights]
                  for name, net in (("G", model.generator), ("D", model.discriminator), ("F", model.patch_sampler))}
        for step in range(12):
            logs = model.optimize(tf.constant(random_images(1, 32, 2 * step)),
                                  tf.constant(random_images(1, 32, 2 * step + 1)))
        scales = [float(getattr(model, f"{n}_optimizer").dynamic_scale) for n in "gdf"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(float(v)) for v in logs.values())
    for name, net in (("G", model.generator), ("D", model.discriminator), ("F", model.patch_sampler)):
        assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before[name], net.trainable_weights)), (name,
                                                                                                          scales)


# --------------------------------------------------------------------------- data rule (trap C11)

def write_domains(root, size_a=(50, 40), size_b=(44, 60)):
    """trainA and trainB with one random non-square image each; returns their paths."""
    from PIL import Image
    rng = np.random.default_rng(5)
    paths = []
    for domain, (width, height) in (("A", size_a), ("B", size_b)):
        os.makedirs(root / f"train{domain}")
        path = str(root / f"train{domain}" / "0.png")
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def rule_of(image, loaded, resized):
    """"crop" when `image` is a 32 px window of the 36 px squash-resize `loaded`, "resize"
    when it is the 32 px squash-resize `resized`, each possibly mirrored; else "neither"."""
    def seen(reference):
        return np.array_equal(image, reference) or np.array_equal(image, reference[:, ::-1])
    if any(seen(loaded[i:i + 32, j:j + 32]) for i in range(5) for j in range(5)):
        return "crop"
    return "resize" if seen(resized) else "neither"


def test_two_rule_dataset_switches_to_the_resized_images_at_the_first_decay_step(tmp_path):
    """CUT's 200 + 200 over 6 epochs of 1 step: steps 0-2 train on random 32 px windows of
    the image squash-resized (bicubic, PIL) to 36, steps 3-5 on the image squash-resized
    straight to 32 (no crop, `load_size := crop_size`), flips on in both. The step is the
    model's when iteration begins: resumed at step 4 every batch is resized, at step 2
    one cropped batch comes first; without a model (or run length) the crop stays."""
    from tf_translate.data import read_rgb, to_unit_range
    from tf_translate.models.cut import two_rule_dataset

    paths = write_domains(tmp_path)
    loaded = [to_unit_range(read_rgb(path, 36)).numpy() for path in paths]
    resized = [to_unit_range(read_rgb(path, 32)).numpy() for path in paths]
    model = build_model("cut", **TINY)
    model.compile(total_steps=6, steps_per_epoch=1, jit_compile=False)
    assert model.decay_start_step == 3
    dataset, steps, report = two_rule_dataset(str(tmp_path), batch_size=2, image_size=32, load_size=36, seed=0,
                                              model=model)
    assert steps == 1 and not report.skipped

    def rules(dataset, count):
        found, mirrored = [], set()
        for batch in dataset.take(count):
            images = [(side, image) for side in range(2) for image in batch[side].numpy()]
            kinds = {rule_of(image, loaded[side], resized[side]) for side, image in images}
            assert len(kinds) == 1, kinds  # one rule for every image of a batch
            found.append(kinds.pop())
            mirrored |= {(side, np.array_equal(image, resized[side][:, ::-1])) for side, image in images
                         if found[-1] == "resize"}
        return found, mirrored

    found, mirrored = rules(dataset, 6)
    assert found == ["crop"] * 3 + ["resize"] * 3
    model.g_optimizer.iterations.assign(4)  # a run resumed in the decay epochs
    found, more = rules(dataset, 3)
    assert found == ["resize"] * 3
    assert mirrored | more == {(0, False), (0, True), (1, False), (1, True)}  # flips stay on in the decay epochs
    model.g_optimizer.iterations.assign(2)  # resumed one step before the boundary
    assert rules(dataset, 3)[0] == ["crop", "resize", "resize"]
    alone = two_rule_dataset(str(tmp_path), batch_size=2, image_size=32, load_size=36, seed=0)[0]
    assert rules(alone, 4)[0] == ["crop"] * 4
    model.compile(jit_compile=False)  # no run length: no decay epochs
    assert rules(dataset, 4)[0] == ["crop"] * 4


def test_two_rule_dataset_makes_only_the_rule_in_force(tmp_path, monkeypatch):
    """The work per image, counted by the size of the image entering the crop and flip
    (36: the cropped rule, 32: the resized one) and of each decode: before the decay
    epochs nothing is decoded, cached or augmented at 32, in them (a resumed run) nothing
    at 36. Making both forms of every batch, as before, augments and decodes both."""
    import collections

    from tf_translate import data
    from tf_translate.models.cut import two_rule_dataset

    augmented, decoded = collections.Counter(), collections.Counter()
    crop_and_flip, read_rgb = data.random_crop_and_flip, data.read_rgb

    def counted_crop_and_flip(dataset, shape, seed):
        def count(size):
            augmented[int(size)] += 1
            return size

        def counted(image):
            with tf.control_dependencies([tf.numpy_function(count, [tf.shape(image)[0]], tf.int32)]):
                return tf.identity(image)
        return crop_and_flip(dataset.map(counted), shape, seed)

    def counted_read(path, size=None):
        decoded[size] += 1
        return read_rgb(path, size)
    monkeypatch.setattr(data, "random_crop_and_flip", counted_crop_and_flip)
    monkeypatch.setattr(data, "read_rgb", counted_read)
    write_domains(tmp_path)
    model = build_model("cut", **TINY)
    model.compile(total_steps=2000, steps_per_epoch=1, jit_compile=False)  # decay epochs from step 1000
    for step, used, unused in ((0, 36, 32), (1500, 32, 36)):
        augmented.clear()
        decoded.clear()
        model.g_optimizer.iterations.assign(step)
        dataset = two_rule_dataset(str(tmp_path), batch_size=2, image_size=32, load_size=36, seed=0, model=model)[0]
        for _ in dataset.take(4):
            pass
        assert augmented[unused] == 0 and augmented[used] >= 4 * 2 * 2, (step, augmented)
        assert set(decoded) == {used}, (step, decoded)


TWO_WORKERS = """
import json, sys
sys.path.insert(0, {tests!r})
from tf_translate.distribute import make_strategy
strategy = make_strategy("multi-worker")  # before TensorFlow runs anything
from test_cut import rule_of
from tf_translate.data import read_rgb, to_unit_range
from tf_translate.distribute import replicated_dataset
from tf_translate.models.cut import two_rule_dataset

class Schedule:  # what two_rule_dataset reads of a CUT model
    decay_start_step = 3
    distribute_strategy = strategy
    def __init__(self, step):
        self.step = step
    def completed_steps(self):
        return self.step

paths = ["{root}/trainA/0.png", "{root}/trainB/0.png"]
loaded = [to_unit_range(read_rgb(path, 36)).numpy() for path in paths]
resized = [to_unit_range(read_rgb(path, 32)).numpy() for path in paths]
found = {{}}
for first in (0, 2, 4):
    def per_replica(batch_size):
        return two_rule_dataset("{root}", batch_size, 32, 36, seed=0, model=Schedule(first))[0]
    found[first] = []
    for _, batch in zip(range(5), replicated_dataset(strategy, per_replica, 2)):
        images = [strategy.experimental_local_results(side)[0].numpy()[0] for side in batch]
        found[first].append([rule_of(image, loaded[i], resized[i]) for i, image in enumerate(images)])
print("rules " + json.dumps(found))
"""


def test_two_rule_dataset_switches_at_the_same_step_on_two_workers(tmp_path):
    """Multi-worker training reads per-replica batches and each worker keeps every second
    one (`distribute.replicated_dataset`): counted in global steps, both workers' switch
    is step 3 from a start at step 0, 2 or 4 (counted in their own batches it came at
    steps 1 and 2)."""
    import socket
    import subprocess
    import sys

    write_domains(tmp_path)
    script = tmp_path / "worker.py"
    script.write_text(TWO_WORKERS.format(tests=os.path.dirname(os.path.abspath(__file__)), root=str(tmp_path)))
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    workers = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "TF_CONFIG": json.dumps(
                                    {"cluster": cluster, "task": {"type": "worker", "index": index}})})
               for index in range(2)]
    expected = {"0": ["crop"] * 3 + ["resize"] * 2, "2": ["crop"] + ["resize"] * 4, "4": ["resize"] * 5}
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]
        found = json.loads(out.split("rules ")[-1].splitlines()[0])
        assert {first: [set(kinds).pop() if len(set(kinds)) == 1 else kinds for kinds in batches]
                for first, batches in found.items()} == expected


def test_the_decay_epochs_start_with_the_schedules_first_decayed_epoch():
    """The no-crop rule starts at the schedule's first decayed epoch: FastCUT's 150 + 50
    over 200 epochs of 2 steps switches at step 300, CUT's 200 + 200 over 10 epochs at
    step 10; the train step takes the dataset's plain (A, B) batch."""
    from tf_translate.losses import lsgan_real_loss

    model = build_model("fastcut", **TINY, seed=0)
    model.compile(total_steps=400, steps_per_epoch=2, jit_compile=False)
    assert model.decay_start_step == 300
    cut = build_model("cut", **TINY)
    cut.compile(total_steps=20, steps_per_epoch=2, jit_compile=False)
    assert cut.decay_start_step == 10
    def rate(optimizer, step):
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)
    assert rate(model.g_optimizer, 299) == pytest.approx(2e-4) and rate(model.g_optimizer, 300) < 2e-4
    assert rate(cut.g_optimizer, 9) == pytest.approx(2e-4) and rate(cut.g_optimizer, 10) < 2e-4
    batch = (tf.constant(random_images(1, 32, 1)), tf.constant(random_images(1, 32, 2)))
    d_real = float(lsgan_real_loss(model.discriminator(batch[1])))
    assert float(model.train_step(batch)["d_real_loss"]) == pytest.approx(d_real, rel=1e-6)
    uncompiled = build_model("cut", **TINY)
    uncompiled.compile(jit_compile=False)  # no run length: no decay epochs, the crop throughout
    assert uncompiled.decay_start_step is None


# --------------------------------------------------------------------------- export and replicas

def test_the_generator_is_the_same_in_training_and_inference_mode():
    """Why the reference's test-time `--eval` changes nothing (trap C13): instance norm
    without running statistics and no dropout, so translate's inference-mode call is the
    train step's generator."""
    keras.utils.set_random_seed(0)
    generator = CUTGenerator(8, 2)
    generator.build((None, None, None, 3))
    for weight in generator.weights:  # gain 1: an output far from 0
        weight.assign(weight * 50.0)
    images = random_images(2, 32, 5)
    expected = generator(images, training=True).numpy()
    assert np.abs(expected).mean() > 0.2
    np.testing.assert_array_equal(generator(images, training=False).numpy(), expected)


@pytest.mark.parametrize("flags", [{}, {"no_antialias": True, "no_antialias_up": True}])
def test_tflite_export_of_the_generator_matches_keras(flags, tmp_path):
    """The blur down-sampling (reflect pad + depthwise stride 2) and the bilinear x2 convert
    to TFLite builtins, and the file translates as the Keras generator: measured 7.1e-6
    (anti-aliased) and 3.7e-6 at gain-1 weights (outputs of mean size 0.5), bound 1e-4 as
    for the other generators; fp16 weights miss by 3e-3."""
    from tf_translate.export import TFLiteTranslator, export_tflite

    keras.utils.set_random_seed(0)
    generator = CUTGenerator(8, 2, **flags)
    generator.build((None, None, None, 3))
    for weight in generator.weights:  # gain 1 instead of 0.02: an output far from 0 to compare
        weight.assign(weight * 50.0)
    images = random_images(2, 32, 9)
    expected = generator(images).numpy()
    assert np.abs(expected).mean() > 0.2
    path = tmp_path / "cut.tflite"
    export_tflite(generator, path, 32, io="float")
    translator = TFLiteTranslator(path)
    ours = np.concatenate([translator(image[None]) for image in images])
    assert np.abs(ours - expected).max() <= 1e-4


REPLICATED = """
import json, sys
sys.path.insert(0, {tests!r})
from tf_translate.distribute import use_cpu_replicas
use_cpu_replicas(2)  # before TensorFlow runs anything
import contextlib
import numpy as np
import tensorflow as tf
from helpers import random_images
from tf_translate.models import build_model

def images(seed):
    return tf.constant(random_images(2, 32, seed))

# 2 epochs of 1 step, each on its own batch (the second is a decay epoch's: the dataset's rule).
data = tf.data.Dataset.from_tensors((images(1), images(2))).concatenate(
    tf.data.Dataset.from_tensors((images(3), images(4))))

def trained(scope, start=None):
    with scope:
        model = build_model("fastcut", **{tiny}, seed=0)
        if start is not None:
            model.set_weights(start)
        model.compile(total_steps=2, steps_per_epoch=1, jit_compile=False)
    start = model.get_weights()
    model.fit(data.repeat(), epochs=1, steps_per_epoch=2, verbose=0)
    return model, start

replicated, start = trained(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope())
single, _ = trained(contextlib.nullcontext(), start)
index = {{id(w): i for i, w in enumerate(single.weights)}}
values, expected = replicated.get_weights(), single.get_weights()
misses = {{}}
for network in ("generator", "discriminator", "patch_sampler"):
    kernels = [index[id(w)] for w in getattr(single, network).weights if len(w.shape) > 1]
    miss = sum(float(np.sum((values[i] - expected[i]) ** 2)) for i in kernels)
    update = sum(float(np.sum((expected[i] - start[i]) ** 2)) for i in kernels)
    misses[network] = (miss / update) ** 0.5
print("misses " + json.dumps(misses))
"""


def test_mirrored_on_two_logical_cpus_trains_as_one_device_on_the_global_batch(tmp_path):
    """Two `fit` steps of FastCUT under MirroredStrategy on two logical CPUs, one image per
    replica, the second in a decay epoch, against one device on the same batches of 2
    (both without XLA, whose random numbers differ): every replica draws the same flip
    coin and patch positions (the seed generator's state is shared), negatives stay per
    image (trap C7), and the per-replica losses are summed at 1/2 each. Rule: the share
    of one device's update missed (test_distribute's), measured 1.1e-5 for G, 7e-6 for D
    and 9e-6 for F. CUT (identity NCE, same code path) measured 0.16 % for G, a ReLU
    knife edge after two Adam steps; FastCUT is tested for that margin and for time
    (a replicated trace costs ~20 s here). One residual block and four NCE layers keep it
    small."""
    import subprocess
    import sys
    script = tmp_path / "replicated.py"
    script.write_text(REPLICATED.format(tests=os.path.dirname(os.path.abspath(__file__)),
                                        tiny={**TINY, "num_residual_blocks": 1, "nce_layers": [0, 4, 8, 12]}))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    misses = json.loads(done.stdout.split("misses ")[-1].splitlines()[0])
    print(misses)
    assert all(value < 0.005 for value in misses.values()), misses

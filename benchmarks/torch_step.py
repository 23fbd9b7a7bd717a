"""The PyTorch side of `train_step.py --torch-ref`, inside this repository: times one
training iteration of every reference re-statement in tests/ with a training step, the
same code the parity tests prove equal to ours, at the reference's widths:
`tests/torch_reference.py` (junyanz's CycleGAN `optimize_parameters`, yunjey's StarGAN
`Solver.train` body), `tests/torch_pix2pix.py` (unet_256 with batch norm and dropout, the
batch-norm PatchGAN), `tests/torch_tuigan.py`, `tests/torch_unit.py`, `tests/torch_drit.py`,
`tests/torch_ugatit.py` (UGATIT-pytorch, `--light 0/1`), `tests/torch_nicegan.py`
(NICE-GAN-pytorch, `--light 0/1`) and `tests/torch_cut.py` (CUT and FastCUT). Photo2cartoon
has no training re-statement (tests/torch_photo2cartoon.py is its generator only). Prints
one JSON line: first_step_s, sec_per_iter_median, peak_rss_mb, the widths, the thread count.

    python benchmarks/torch_step.py --model cyclegan --size 128 --batch 1
    python benchmarks/torch_step.py --model stargan --size 128 --batch 16 --phase dg
    python benchmarks/torch_step.py --model pix2pix --size 256 --batch 1
    python benchmarks/torch_step.py --model tuigan --size 100   # TuiGAN's coarsest scale, one iteration
    python benchmarks/torch_step.py --model unit --size 256 --batch 1   # tests/torch_unit.py
    python benchmarks/torch_step.py --model ugatit --light 1 --size 256   # also nicegan, cut, fastcut
    python benchmarks/torch_step.py --mode infer --model cyclegan --size 256   # generator only

`--mode infer` times the reference generator's eager forward pass (`eval()`, `torch.no_grad()`),
the PyTorch side of benchmarks/export.py: cyclegan (junyanz), stargan (yunjey, target label
1 0 0 0 0), ugatit_light (UGATIT-pytorch, light) and photo2cartoon (minivision).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

MODELS = ("cyclegan", "stargan", "pix2pix", "tuigan", "unit", "drit", "ugatit", "nicegan", "cut", "fastcut")
GENERATORS = ("cyclegan", "stargan", "ugatit_light", "photo2cartoon")


def inference(model, size, batch, rng):
    """A function running the reference generator's eager forward pass on a fixed batch."""
    import torch

    x = torch.from_numpy(rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32))
    if model == "cyclegan":
        from torch_reference import torch_resnet_generator

        net, call = torch_resnet_generator(), lambda net: net(x)
    elif model == "stargan":
        from torch_reference import torch_stargan_generator

        labels = torch.zeros(batch, 5)
        labels[:, 0] = 1
        net, call = torch_stargan_generator(), lambda net: net(x, labels)
    elif model == "ugatit_light":
        from torch_ugatit import ResnetGenerator

        net, call = ResnetGenerator(64, 4, size, light=True), lambda net: net(x)[0]
    else:
        from torch_photo2cartoon import torch_photo2cartoon_generator

        net, call = torch_photo2cartoon_generator(32, size, light=True), lambda net: net(x)[0]
    net.eval()

    def forward():
        with torch.no_grad():
            call(net)
    return forward


def iteration(model, size, batch, phase, light, rng):
    """(a function running one reference iteration on fixed random batches, the widths it was built with)."""
    import torch

    images = lambda: rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    if model == "tuigan":  # tests/torch_tuigan.py: one iteration (3 critic + 3 generator steps) of the
        import torch_tuigan  # coarsest scale (nfc 32, no frozen scales) on a size x size level

        trainer = torch_tuigan.Scale(32, dtype=torch.float32)
        level = lambda: [torch_tuigan.nchw(images()[:1], torch.float32)]
        a, b = level(), level()
        randoms = {"noise_a": torch.randn(1, 3, size, size), "noise_b": torch.randn(1, 3, size, size),
                   "chain_a": [], "chain_b": [], "alpha_b": [0.5] * 3, "alpha_a": [0.5] * 3}
        return lambda: torch_tuigan.iteration(trainer, [], a, b, randoms, 1.0), {"nfc": 32, "scale": "coarsest"}
    if model == "cyclegan":
        from torch_reference import TorchCycleGAN

        trainer, a, b = TorchCycleGAN(), images(), images()
        return lambda: trainer.step(a, b), {"ngf": 64, "n_blocks": 9, "ndf": 64}
    if model == "pix2pix":
        import torch_pix2pix

        downs = {256: 8, 128: 7, 64: 6, 32: 5}[size]
        netG, netD = torch_pix2pix.Unet(downs), torch_pix2pix.patchgan()
        opt_G = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_D = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        a, b = (torch.from_numpy(images().transpose(0, 3, 1, 2)) for _ in range(2))
        return (lambda: torch_pix2pix.step(netG, netD, opt_G, opt_D, a, b),
                {"ngf": 64, "unet_downs": downs, "ndf": 64})
    if model == "unit":
        from torch_unit import TorchUNIT

        # mingyuliutw/UNIT edges2shoes defaults; latent noise drawn by torch.randn each iteration.
        trainer = TorchUNIT(64, 2, 4, 64, 4, 3, dtype=torch.float32)
        a, b = images(), images()
        return lambda: trainer.step(a, b), {"gen_dim": 64, "n_downsample": 2, "n_res": 4, "dis_dim": 64}
    if model == "drit":
        from torch_drit import TorchDRIT

        # HsinYingLee/DRIT defaults (--concat 1, mode seeking, 64/256 widths), one full step
        # (update_D + update_EG; --phase d: a content-D-only step); noise drawn per iteration.
        trainer, a, b = TorchDRIT(dtype=torch.float32), images(), images()
        c = (1, (size + 3) // 4, (size + 3) // 4, 256)

        def noise():
            names = ["content_a", "content_b", "content_recon_a", "content_recon_b"]
            drawn = {name: rng.standard_normal(c).astype(np.float32) for name in names}
            drawn.update({name: rng.standard_normal((1, 8)).astype(np.float32) for name in
                          ("attribute_a", "attribute_b", "random", "random2", "attribute_recon_a",
                           "attribute_recon_b")})
            return drawn
        return lambda: trainer.step(a, b, noise(), full=phase == "dg"), {"content_dim": 256, "nz": 8, "concat": 1}
    if model == "ugatit":
        from torch_ugatit import TorchUGATIT

        # UGATIT-pytorch defaults: --ch 64, --n_res 4, D ndf = ch with 7 (global) and 5 (local) layers.
        trainer, a, b = TorchUGATIT(64, 4, size, bool(light), 64, dtype="float32"), images(), images()
        widths = {"ch": 64, "n_res": 4, "ndf": 64, "global_layers": 7, "local_layers": 5, "light": light}
        return lambda: trainer.step(a, b), widths
    if model == "nicegan":
        from torch_nicegan import TorchNICEGAN

        # NICE-GAN-pytorch defaults: --ch 64, --n_res 6, --n_dis 7.
        trainer = TorchNICEGAN(64, 6, size, bool(light), 7, dtype="float32")
        a, b = images(), images()
        return lambda: trainer.step(a, b), {"ch": 64, "n_res": 6, "n_dis": 7, "light": light}
    if model in ("cut", "fastcut"):
        from torch_cut import TorchCUT

        # taesungp/contrastive-unpaired-translation defaults (resnet_9blocks, ngf/ndf 64, netF_nc 256,
        # 256 patches a layer); FastCUT: lambda_NCE 10, no NCE identity, flip equivariance.
        fast = model == "fastcut"
        trainer = TorchCUT(ngf=64, n_blocks=9, ndf=64, netF_nc=256, lambda_NCE=10.0 if fast else 1.0,
                           nce_idt=not fast, flip_equivariance=fast, dtype="float32")
        a, b = images(), images()
        with torch.no_grad():
            shapes = [f.shape for f in trainer.netG(torch.zeros(1, 3, size, size), trainer.nce_layers,
                                                    encode_only=True)]
        patches = lambda: [rng.permutation(s[2] * s[3])[:256] for s in shapes]
        return (lambda: trainer.step(a, b, flip=bool(rng.random() < 0.5), patch_ids=(patches(), patches())),
                {"ngf": 64, "n_blocks": 9, "ndf": 64, "netF_nc": 256, "num_patches": 256})
    from torch_reference import TorchStarGAN

    trainer = TorchStarGAN(size, 5, 64, 6, 64, 6)  # the CelebA defaults: c_dim 5, 6 blocks, 6 D layers
    x, labels = images(), rng.integers(0, 2, (batch, 5)).astype(np.float32)
    targets, alpha = labels[rng.permutation(batch)], rng.uniform(size=(batch, 1, 1, 1)).astype(np.float32)

    def step():
        trainer.critic_step(x, labels, targets, alpha)
        if phase == "dg":
            trainer.generator_step(x, labels, targets)
    return step, {"c_dim": 5, "g_conv_dim": 64, "g_repeat_num": 6, "d_conv_dim": 64, "d_repeat_num": 6}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(set(MODELS) | set(GENERATORS)), required=True)
    parser.add_argument("--mode", choices=["train", "infer"], default="train",
                        help="train: one training iteration; infer: the generator's forward pass")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations, the first timed as first_step_s")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2: the 2-core bench)")
    parser.add_argument("--light", type=int, choices=[0, 1], default=0, help="ugatit, nicegan: the light variant")
    parser.add_argument("--phase", choices=["d", "dg"], default="dg", help="stargan: critic-only or critic+generator")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if args.mode == "infer":
        if args.model not in GENERATORS:
            parser.error(f"--mode infer takes --model {', '.join(GENERATORS)}")
        step, widths = inference(args.model, args.size, args.batch, rng), {}
    elif args.model not in MODELS:
        parser.error(f"--mode train takes --model {', '.join(MODELS)}")
    else:
        step, widths = iteration(args.model, args.size, args.batch, args.phase, args.light, rng)
    start = time.perf_counter()
    step()
    first_step_s = time.perf_counter() - start
    for _ in range(args.warmup - 1):
        step()
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"model": args.model, "mode": args.mode, "size": args.size, "batch": args.batch,
                      "widths": widths, "threads": torch.get_num_threads(), "torch_version": torch.__version__,
                      "first_step_s": first_step_s, "sec_per_iter_median": statistics.median(times),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()

"""The in-browser page (tf_translate/web.py): `export --format web` writes its folder,
`serve-web`'s server serves every file it loads with the type a browser needs, and the
page's script translates a photograph under Node with the onnxruntime-web build it ships.

Node runs the page's translate.js on a stand-in DOM (tests/page_in_node.js): quick, and
without a browser; tests/test_browser_chromium.py opens the page in headless Chromium.
"""

import html.parser
import os
import re
import shutil
import subprocess
import threading
import urllib.request

import numpy as np
import pytest
from helpers import TINY_CYCLEGAN

from tf_translate.web import ORT_FILES, ORT_WEB_CACHE, page_server, write_page

PAGE = ["index.html", "model.onnx", "ort/ort-wasm-simd-threaded.asyncify.mjs",
        "ort/ort-wasm-simd-threaded.asyncify.wasm", "ort/ort-wasm-simd-threaded.mjs", "ort/ort-wasm-simd-threaded.wasm",
        "ort/ort.wasm.min.js", "ort/ort.webgpu.min.js", "ort/package.json", "translate.js"]


def stand_in_package(folder):
    """An unpacked npm package with the files the page takes, each holding its own name."""
    for name in ORT_FILES:
        os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
        with open(os.path.join(folder, name), "w") as file:
            file.write(name)
    return folder


def stand_in_page(tmp_path, model=b"an exported model"):
    page = str(tmp_path / "page")
    write_page(lambda path: open(path, "wb").write(model), page, package=stand_in_package(str(tmp_path / "pkg")))
    return page


class Scripts(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "script" and dict(attrs).get("src"):
            self.sources.append(dict(attrs)["src"])


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.headers.get_content_type(), response.headers, response.read()


def served(page):
    """{path a browser asks for -> (MIME type, bytes)} for the page and everything it loads,
    from serve-web's server on a free port."""
    server = page_server(page, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        kind, headers, body = fetch(base)
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"  # WASM threads allowed
        files = {"": (kind, body)}
        scripts = Scripts()
        scripts.feed(body.decode())
        script = fetch(base + "translate.js")[2].decode()
        runtimes = re.findall(r'(?:wasm|webgpu): "(ort/[^"]+\.js)"', script)
        wasm_folder = re.search(r'wasmPaths = new URL\("([^"]+)", location.href\)', script).group(1)
        model = re.search(r'InferenceSession\.create\("([^"]+)"', script).group(1)
        modules = [wasm_folder + "ort-wasm-simd-threaded" + kind for kind in
                   (".mjs", ".wasm", ".asyncify.mjs", ".asyncify.wasm")]
        for path in scripts.sources + runtimes + modules + [model, "ort/package.json"]:
            kind, _, body = fetch(base + path)
            files[path] = (kind, body)
        return files
    finally:
        server.shutdown()
        server.server_close()


def test_page_and_every_file_it_loads_are_served_with_their_types(tmp_path):
    page = stand_in_page(tmp_path)
    assert sorted(os.path.relpath(os.path.join(root, name), page)
                  for root, _, names in os.walk(page) for name in names) == PAGE
    assert os.stat(page).st_mode & 0o777 == 0o755
    files = served(page)
    assert {path: kind for path, (kind, _) in files.items()} == {
        "": "text/html",
        "ort/ort.wasm.min.js": "text/javascript",
        "ort/ort.webgpu.min.js": "text/javascript",
        "translate.js": "text/javascript",
        "ort/ort-wasm-simd-threaded.mjs": "text/javascript",  # a module script needs a JavaScript type
        "ort/ort-wasm-simd-threaded.wasm": "application/wasm",  # streaming compilation refuses others
        "ort/ort-wasm-simd-threaded.asyncify.mjs": "text/javascript",
        "ort/ort-wasm-simd-threaded.asyncify.wasm": "application/wasm",
        "model.onnx": "application/octet-stream",
        "ort/package.json": "application/json",
    }
    for path in ORT_FILES:
        assert files["ort/" + os.path.basename(path)][1] == path.encode()
    assert files["model.onnx"][1] == b"an exported model"


def test_page_is_written_whole_or_not_at_all(tmp_path):
    page = stand_in_page(tmp_path, b"first")
    package = str(tmp_path / "pkg")
    with pytest.raises(ValueError, match=f"--output {re.escape(repr(page))} exists: pass --overwrite"):
        write_page(lambda path: None, page, package=package)

    def broken_export(path):
        raise ValueError("the export failed")

    with pytest.raises(ValueError, match="the export failed"):
        write_page(broken_export, page, overwrite=True, package=package)
    assert open(os.path.join(page, "model.onnx"), "rb").read() == b"first"
    assert sorted(os.listdir(tmp_path)) == ["page", "pkg"]  # no temporary folder left
    os.remove(os.path.join(package, "dist/ort-wasm-simd-threaded.wasm"))
    with pytest.raises(ValueError) as error:
        write_page(lambda path: None, str(tmp_path / "other"), package=package)
    assert str(error.value) == (
        f"--format web needs onnxruntime-web 1.31.1 unpacked in {package} (no dist/ort-wasm-simd-threaded.wasm); "
        f"fill it with: mkdir -p {ORT_WEB_CACHE} && npm pack onnxruntime-web@1.31.1 && "
        f"tar -xzf onnxruntime-web-1.31.1.tgz -C {ORT_WEB_CACHE} --strip-components=1")
    assert not os.path.exists(tmp_path / "other")


def cli_error(capsys, argv):
    from tf_translate.cli import main

    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("flags, message", [
    (["--io", "float"], "--io float is not for --format web; the page sends and draws uint8 pixels"),
    (["--heatmap"], "--heatmap is not for --format web"),
    (["--quantize", "int8"], "--quantize int8 is not for --format web; the page's model.onnx holds float32 "
                             "weights, or float16 ones with --quantize fp16"),
    (["--opset", "0"], "--opset must be a positive ONNX opset number, got 0"),
])
def test_web_flags_that_do_not_apply_are_one_line(tmp_path, capsys, flags, message):
    argv = ["export", "--run-dir", str(tmp_path / "run"), "--format", "web", "--output", str(tmp_path / "out"), *flags]
    assert cli_error(capsys, argv).startswith(f"tf-translate: error: {message}")
    assert not os.path.exists(tmp_path / "out")


def test_web_export_names_the_missing_extra(tmp_path, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "tf2onnx" else find_spec(name, *args))
    argv = ["export", "--run-dir", str(tmp_path / "run"), "--format", "web", "--output", str(tmp_path / "out")]
    assert cli_error(capsys, argv) == ('tf-translate: error: --format web needs the onnx extra (tf2onnx is not '
                                       'installed): pip install "tf_translate[onnx]"')


def test_serve_web_refuses_a_folder_that_is_not_a_page(tmp_path, capsys):
    page = stand_in_page(tmp_path)
    os.remove(os.path.join(page, "ort", "ort-wasm-simd-threaded.wasm"))
    assert cli_error(capsys, ["serve-web", page]) == (
        f"tf-translate: error: serve-web: {page!r} is not an exported page (no ort/ort-wasm-simd-threaded.wasm; "
        "write one with tf-translate export --format web)")
    missing = str(tmp_path / "none")
    assert cli_error(capsys, ["serve-web", missing]) == (
        f"tf-translate: error: serve-web: {missing!r} is not a folder (write one with tf-translate export "
        "--format web)")
    assert cli_error(capsys, ["serve-web", page, "--port", "70000"]) == (
        "tf-translate: error: --port must be 0-65535, got 70000")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny CycleGAN run (8 filters, one step)."""
    pytest.importorskip("tf2onnx")
    from tf_translate.data import write_demo_dataset
    from tf_translate.training import train

    folder = tmp_path_factory.mktemp("tiny")
    tiny = {k: v for k, v in TINY_CYCLEGAN.items() if k != "image_size"}
    run = str(folder / "run")
    train("cyclegan", write_demo_dataset(str(folder / "data"), size=32, train_count=2, test_count=1), run,
          steps=1, batch_size=1, image_size=32, load_size=32, seed=0, model_overrides=tiny, verbose=0, xla=False)
    return run


def page_in_node(page, photo, tmp_path):
    """The output canvas after tests/page_in_node.js ran the page on `photo` [1, h, w, 3], and its status line."""
    if shutil.which("node") is None or not os.path.isdir(ORT_WEB_CACHE):
        pytest.skip(f"needs node and onnxruntime-web unpacked in {ORT_WEB_CACHE} (.ci/run puts it there)")
    photo.tofile(tmp_path / "in.raw")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page_in_node.js")
    height, width = photo.shape[1:3]
    done = subprocess.run(["node", script, page, str(tmp_path / "in.raw"), str(height), str(width),
                           str(tmp_path / "out.raw")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return np.fromfile(tmp_path / "out.raw", np.uint8).reshape(photo.shape), done.stdout


def astronaut(height=42, width=54):
    """skimage's photograph [1, height, width, 3] uint8; the default size makes the model pad."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC))[None]


def test_the_page_script_translates_like_python_onnxruntime(tiny_run, tmp_path, capsys):
    """`export --format web` on a tiny CycleGAN run; every file of the folder served by
    serve-web's server with its type; then translate.js itself (tests/page_in_node.js: Node, a
    stand-in DOM) with the onnxruntime-web WASM build the page ships, on a photograph at a size
    the model pads. Measured 0 grey levels from Python's onnxruntime; bound 1, as the WASM
    kernels may round differently."""
    ort = pytest.importorskip("onnxruntime")
    from tf_translate.cli import main

    page = str(tmp_path / "page")
    assert main(["export", "--run-dir", tiny_run, "--format", "web", "--output", page]) == 0
    assert capsys.readouterr().out.strip().endswith(f"written to {page}: tf-translate serve-web {page}")
    assert not os.path.exists(os.path.join(page, "labels.json"))  # CycleGAN has no labels
    files = served(page)
    assert files["ort/ort-wasm-simd-threaded.wasm"] == (
        "application/wasm", open(os.path.join(ORT_WEB_CACHE, "dist/ort-wasm-simd-threaded.wasm"), "rb").read())
    assert files["ort/ort-wasm-simd-threaded.mjs"][0] == "text/javascript"

    photo = astronaut()
    page_output, status = page_in_node(page, photo, tmp_path)
    assert re.fullmatch(r"translated in \d+ ms \(WASM, on this computer\)\n", status)
    session = ort.InferenceSession(os.path.join(page, "model.onnx"), providers=["CPUExecutionProvider"])
    (python,) = session.run(None, {"images": photo})
    assert np.abs(page_output.astype(int) - python.astype(int)).max() <= 1
    assert np.abs(python.astype(int) - photo.astype(int)).max() > 8  # a translation, not the photo


def test_fp16_page_is_half_the_download_and_translates_within_2_grey_levels(tiny_run, tmp_path, capsys):
    """`--quantize fp16`: model.onnx stores float16 weights (cast to float32 in the graph), which
    onnxruntime-web runs. Bound 2 grey levels from the float32 file's output; measured on a
    ResNet generator of the reference's size (64 filters, 9 blocks) at 256 px: at most 1
    (mean 0.08), 45.6 MB -> 22.9 MB (0.50)."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from tf_translate.cli import main

    pages = {}
    for quantize in ("none", "fp16"):
        pages[quantize] = str(tmp_path / quantize)
        assert main(["export", "--run-dir", tiny_run, "--format", "web", "--output", pages[quantize],
                     "--quantize", quantize]) == 0
    assert "float16 weights" in capsys.readouterr().out.strip().splitlines()[-1]
    full, half = (os.path.join(pages[quantize], "model.onnx") for quantize in ("none", "fp16"))
    initializers = onnx.load(half).graph.initializer
    weights = [tensor for tensor in initializers if tensor.data_type == onnx.TensorProto.FLOAT16]
    assert sum(len(tensor.dims) == 4 for tensor in weights) == 8  # the tiny ResNet generator's convolutions
    assert all(np.prod(tensor.dims) < 64 for tensor in initializers if tensor.data_type == onnx.TensorProto.FLOAT)
    # The file shrinks by half the weights' float32 bytes, less the Cast nodes (the
    # graph's structure stays: in this tiny file it is a third; at 64 filters it is < 1 %).
    saved, half_weights = os.path.getsize(full) - os.path.getsize(half), sum(2 * np.prod(t.dims) for t in weights)
    assert 0.8 * half_weights < saved <= half_weights  # measured 0.89 (the Cast nodes and names)

    photo = astronaut()
    outputs = {}
    for name, path in (("full", full), ("half", half)):
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        outputs[name] = session.run(None, {"images": photo})[0].astype(int)
    page_output, status = page_in_node(pages["fp16"], photo, tmp_path)
    assert status.startswith("translated in ")
    assert np.abs(outputs["half"] - outputs["full"]).max() <= 2
    assert np.abs(page_output.astype(int) - outputs["full"]).max() <= 2
    assert np.abs(page_output.astype(int) - outputs["half"]).max() <= 1


def test_the_page_draws_drit_attribute_codes(tmp_path):
    """A model with DRIT++'s `attributes` input (length 8; here passed through as a second
    output): the page feeds a code of that length, else onnxruntime-web refuses the run."""
    if shutil.which("node") is None or not os.path.isdir(ORT_WEB_CACHE):
        pytest.skip(f"needs node and onnxruntime-web unpacked in {ORT_WEB_CACHE} (.ci/run puts it there)")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["translated"]),
         helper.make_node("Identity", ["attributes"], ["codes"])],
        "drit_like", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", "height", "width", 3]),
                      helper.make_tensor_value_info("attributes", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("translated", TensorProto.UINT8, ["batch", "height", "width", 3]),
         helper.make_tensor_value_info("codes", TensorProto.FLOAT, ["batch", 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    page = str(tmp_path / "page")
    write_page(lambda path: onnx.save(model, path), page)
    photo = np.random.default_rng(0).integers(0, 256, (1, 6, 10, 3), dtype=np.uint8)
    photo.tofile(tmp_path / "in.raw")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page_in_node.js")
    done = subprocess.run(["node", script, page, str(tmp_path / "in.raw"), "6", "10", str(tmp_path / "out.raw")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.fromfile(tmp_path / "out.raw", np.uint8).reshape(photo.shape), photo)


def test_stargan_page_carries_its_label_names(tmp_path):
    """`export --format web` of a StarGAN writes labels.json with the run's label names, in
    the order of the model's `labels` input, for the page's checkboxes."""
    if not os.path.isdir(ORT_WEB_CACHE):
        pytest.skip(f"needs onnxruntime-web unpacked in {ORT_WEB_CACHE} (.ci/run puts it there)")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    import json

    from tf_translate.export import export_run
    from tf_translate.models.stargan import StarGAN

    model = StarGAN(image_size=16, num_domains=3, filters=8, num_residual_blocks=1, discriminator_filters=8,
                    discriminator_layers=2, domain_names=["black hair", "blond hair", "male"])
    (direction, network), = model.generators().items()
    network([np.zeros((1, 16, 16, 3), np.float32), np.zeros((1, 3), np.float32)])
    page = str(tmp_path / "page")
    export_run(model, {"model": "stargan"}, str(tmp_path / "run"), direction, format="web", output=page)
    with open(os.path.join(page, "labels.json")) as file:
        assert json.load(file) == {"label_names": ["black hair", "blond hair", "male"]}
    session = ort.InferenceSession(os.path.join(page, "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images", "labels"]
    assert session.get_inputs()[1].shape[1] == 3  # one name per entry

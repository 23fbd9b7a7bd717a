"""examples/browser: the page folder make_page.py writes, served on 127.0.0.1, and the page's
script translating a photograph under Node with the onnxruntime-web build it ships.

No browser runs here: Debian's chromium would bring 131 packages (systemd and perl-base
upgrades among them) onto the machine, and npm's puppeteer/playwright download a browser
from outside the package registry. Node runs the page's translate.js on a stand-in DOM
(tests/page_in_node.js), so what a browser adds (canvas decoding and drawing, the file
picker, loading the runtime through a <script> tag) is not exercised.
"""

import html.parser
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "browser")
sys.path.insert(0, EXAMPLE)
from make_page import ORT_FILES, make_page  # noqa: E402

# Unpacked by .ci/run from `npm pack onnxruntime-web@1.31.1` (package.json and the dist files
# the page loads).
ORT_WEB = os.path.expanduser("~/.cache/tf_translate/onnxruntime-web-1.31.1")


def stand_in_package(folder):
    """An unpacked npm package with the files make_page copies, holding their own names."""
    for name in ORT_FILES:
        os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
        with open(os.path.join(folder, name), "w") as file:
            file.write(name)
    return folder


class Scripts(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "script" and dict(attrs).get("src"):
            self.sources.append(dict(attrs)["src"])


def serve(folder):
    """A static file server on 127.0.0.1 (a free port) for `folder`; returns (server, base URL)."""
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=folder)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.headers.get_content_type(), response.read()


def test_page_and_every_file_it_loads_are_served(tmp_path):
    model = tmp_path / "g.onnx"
    model.write_bytes(b"an exported model")
    page = tmp_path / "page"
    names = make_page(str(model), stand_in_package(str(tmp_path / "package")), str(page))
    assert names == ["index.html", "model.onnx", "ort/ort-wasm-simd-threaded.mjs", "ort/ort-wasm-simd-threaded.wasm",
                     "ort/ort.wasm.min.js", "ort/package.json", "translate.js"]
    assert os.stat(page).st_mode & 0o777 == 0o755
    server, base = serve(str(page))
    try:
        kind, body = fetch(base)
        assert kind == "text/html"
        scripts = Scripts()
        scripts.feed(body.decode())
        assert scripts.sources == ["ort/ort.wasm.min.js", "translate.js"]
        script = fetch(base + "translate.js")[1].decode()
        wasm_folder = re.search(r'wasmPaths = new URL\("([^"]+)", location.href\)', script).group(1)
        model_name = re.search(r'InferenceSession\.create\("([^"]+)"', script).group(1)
        expected = {  # what the browser asks for -> (MIME type it needs, bytes)
            "ort/ort.wasm.min.js": ("text/javascript", b"dist/ort.wasm.min.js"),
            wasm_folder + "ort-wasm-simd-threaded.mjs": ("text/javascript", b"dist/ort-wasm-simd-threaded.mjs"),
            # streaming compilation refuses any other type
            wasm_folder + "ort-wasm-simd-threaded.wasm": ("application/wasm", b"dist/ort-wasm-simd-threaded.wasm"),
            model_name: (None, b"an exported model"),
        }
        for path, (mime, data) in expected.items():
            kind, body = fetch(base + path)
            assert body == data, path
            assert mime is None or kind == mime, (path, kind)
    finally:
        server.shutdown()
        server.server_close()


def test_make_page_errors_are_one_line(tmp_path, capsys):
    from make_page import main

    package = stand_in_package(str(tmp_path / "package"))
    assert main(["--model", str(tmp_path / "none.onnx"), "--onnxruntime-web", package,
                 "--output", str(tmp_path / "page")]) == 2
    missing = str(tmp_path / "none.onnx")
    assert capsys.readouterr().err.strip() == f"make_page: error: --model {missing!r} does not exist"
    (tmp_path / "g.onnx").write_bytes(b"model")
    os.remove(os.path.join(package, "dist/ort.wasm.min.js"))
    assert main(["--model", str(tmp_path / "g.onnx"), "--onnxruntime-web", package,
                 "--output", str(tmp_path / "page")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no dist/ort.wasm.min.js in it" in lines[0]
    assert not os.path.exists(tmp_path / "page")


def test_the_page_script_translates_like_python_onnxruntime(tmp_path):
    """translate.js itself (tests/page_in_node.js: Node, a stand-in DOM) with the onnxruntime-web
    WASM build the page ships, on a photograph at a size the model pads. Measured 0 grey levels
    from Python's onnxruntime; bound 1, as the WASM kernels may round differently."""
    if shutil.which("node") is None or not os.path.isdir(ORT_WEB):
        pytest.skip(f"needs node and onnxruntime-web unpacked in {ORT_WEB} (.ci/run puts it there)")
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    import keras
    from PIL import Image
    from skimage import data

    from tf_translate.export_onnx import export_onnx
    from tf_translate.models import ResNetGenerator

    keras.utils.set_random_seed(0)
    generator = ResNetGenerator(filters=8, num_residual_blocks=2)
    generator.build((None, None, None, 3))
    export_onnx(generator, tmp_path / "g.onnx")
    page = tmp_path / "page"
    make_page(str(tmp_path / "g.onnx"), ORT_WEB, str(page))
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((54, 42), Image.BICUBIC))[None]
    photo.tofile(tmp_path / "in.raw")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page_in_node.js")
    done = subprocess.run(["node", script, str(page), str(tmp_path / "in.raw"), "42", "54", str(tmp_path / "out.raw")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"translated in \d+ ms \(WASM, on this computer\)\n", done.stdout)
    page_output = np.fromfile(tmp_path / "out.raw", np.uint8).reshape(photo.shape)
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    (python,) = session.run(None, {"images": photo})
    assert np.abs(page_output.astype(int) - python.astype(int)).max() <= 1

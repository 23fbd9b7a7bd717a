"""The in-browser translator: `export --format web` writes a static page folder, and
`serve-web` serves one on 127.0.0.1.

The folder holds index.html and translate.js (package data, tf_translate/web_page), the
generator as model.onnx (`export_onnx`, uint8 io), for a label-conditioned generator (StarGAN)
labels.json with the names of its labels, and onnxruntime-web's WASM and WebGPU builds in ort/,
copied at export time from its npm package (version ORT_WEB_VERSION) unpacked in ORT_WEB_CACHE,
with the package.json that states its MIT licence (the package has no licence file). Nothing
is fetched from a CDN when the page runs.
"""

import http.server
import json
import os
import shutil
import tempfile

from tf_translate.files import check_output, replace_folder

PAGE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web_page")
PAGE_FILES = ("index.html", "translate.js")
MODEL_FILE = "model.onnx"
ORT_WEB_VERSION = "1.31.1"
ORT_WEB_CACHE = os.path.expanduser(f"~/.cache/tf_translate/onnxruntime-web-{ORT_WEB_VERSION}")
# The UMD scripts the page loads and the WASM modules they import (threads when the page is
# cross-origin isolated, one thread otherwise), from the npm package; they go to ort/. The
# WASM build (15 MB) runs by default; the WebGPU build (its asyncify module, 29 MB) only when
# the page's backend control asks for it.
ORT_FILES = ("dist/ort.wasm.min.js", "dist/ort-wasm-simd-threaded.mjs", "dist/ort-wasm-simd-threaded.wasm",
             "dist/ort.webgpu.min.js", "dist/ort-wasm-simd-threaded.asyncify.mjs",
             "dist/ort-wasm-simd-threaded.asyncify.wasm", "package.json")
LABELS_FILE = "labels.json"
FILL_CACHE = (f"mkdir -p {ORT_WEB_CACHE} && npm pack onnxruntime-web@{ORT_WEB_VERSION} && "
              f"tar -xzf onnxruntime-web-{ORT_WEB_VERSION}.tgz -C {ORT_WEB_CACHE} --strip-components=1")
# Streaming WASM compilation refuses any type but application/wasm; module scripts need a
# JavaScript type.
MIME_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
              ".onnx": "application/octet-stream", ".json": "application/json"}


def check_web_request(output, overwrite=False, package=ORT_WEB_CACHE):
    """One-line errors before a run is loaded: an existing `output` (unless `overwrite`) and
    an onnxruntime-web package without the files the page needs (with the command to fill it)."""
    check_output(output, "folder", overwrite)
    missing = [name for name in ORT_FILES if not os.path.isfile(os.path.join(package, name))]
    if missing:
        raise ValueError(f"--format web needs onnxruntime-web {ORT_WEB_VERSION} unpacked in {package} "
                         f"(no {missing[0]}); fill it with: {FILL_CACHE}")


def write_page(write_model, output, overwrite=False, package=ORT_WEB_CACHE, label_names=None):
    """Writes the page folder `output` atomically (a temporary folder beside it, renamed when
    complete; an existing `output` is replaced only with `overwrite`).

    Args:
        write_model: called with the path of model.onnx inside the temporary folder.
        package: the unpacked onnxruntime-web npm package.
        label_names: the meaning of each entry of the model's `labels` input, shown by the page.
    Returns:
        the folder's file names, relative to `output`, sorted.
    """
    check_web_request(output, overwrite, package)
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=".web-", dir=parent)
    try:
        os.chmod(folder, 0o755)  # mkdtemp's 0700 would hide the page from a server of another user
        for name in PAGE_FILES:
            shutil.copy(os.path.join(PAGE_SOURCE, name), folder)
        write_model(os.path.join(folder, MODEL_FILE))
        if label_names:
            with open(os.path.join(folder, LABELS_FILE), "w") as file:
                json.dump({"label_names": list(label_names)}, file)
        os.makedirs(os.path.join(folder, "ort"))
        for name in ORT_FILES:
            shutil.copy(os.path.join(package, name), os.path.join(folder, "ort"))
        replace_folder(folder, output)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return page_files(output)


def page_files(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


def check_page(folder):
    """A one-line error when `folder` is not a page `export --format web` wrote."""
    if not os.path.isdir(folder):
        raise ValueError(f"serve-web: {folder!r} is not a folder (write one with tf-translate export --format web)")
    needed = PAGE_FILES + (MODEL_FILE,) + tuple(os.path.join("ort", os.path.basename(name)) for name in ORT_FILES)
    missing = [name for name in needed if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise ValueError(f"serve-web: {folder!r} is not an exported page (no {missing[0]}; write one with "
                         "tf-translate export --format web)")


class PageHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the types the page needs, cross-origin isolated (so onnxruntime-web
    may use WASM threads), and no request log."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format, *args):
        pass


def page_server(folder, port=8000):
    """An HTTP server of the page `folder` on 127.0.0.1:`port` (0: any free port), not yet serving."""
    check_page(folder)
    handler = lambda *args: PageHandler(*args, directory=folder)  # noqa: E731
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve_web(folder, port=8000, log=print):
    """The `serve-web` command: serves `folder` until Ctrl-C."""
    server = page_server(folder, port)
    log(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

"""Makes the in-browser translator: a static folder that any file server can serve.

The folder holds this directory's index.html and translate.js, the exported generator as
model.onnx (`tf-translate export --format onnx`, uint8 io), and onnxruntime-web's WASM
build in ort/ taken from its npm package (with the package.json that states its MIT
licence). Nothing is fetched from a CDN when the page runs.

Usage:
    tf-translate export --run-dir RUN --format onnx --output g.onnx
    (cd /tmp && npm pack onnxruntime-web@1.31.1)
    python examples/browser/make_page.py --model g.onnx \\
        --onnxruntime-web /tmp/onnxruntime-web-1.31.1.tgz --output page
    python3 -m http.server -b 127.0.0.1 -d page 8000     # then open http://127.0.0.1:8000
"""

import argparse
import os
import shutil
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE_FILES = ("index.html", "translate.js")
# The UMD script the page loads, and the WASM module it imports (threads when the page is
# cross-origin isolated, one thread otherwise).
ORT_FILES = ("dist/ort.wasm.min.js", "dist/ort-wasm-simd-threaded.mjs", "dist/ort-wasm-simd-threaded.wasm",
             "package.json")


def ort_file(package, name):
    """The bytes of `name` (a path inside the npm package) from a .tgz or an unpacked folder."""
    if os.path.isdir(package):
        with open(os.path.join(package, name), "rb") as file:
            return file.read()
    with tarfile.open(package) as archive:
        return archive.extractfile(f"package/{name}").read()


def make_page(model, package, output, overwrite=False):
    """Writes the page folder `output` (replaced only with `overwrite`); returns its file names."""
    for path, flag in ((model, "--model"), (package, "--onnxruntime-web")):
        if not os.path.exists(path):
            raise ValueError(f"{flag} {path!r} does not exist")
    if os.path.exists(output) and not overwrite:
        raise ValueError(f"--output {output!r} exists: pass --overwrite to replace it")
    folder = tempfile.mkdtemp(prefix=".page-", dir=os.path.dirname(os.path.abspath(output)))
    try:
        os.chmod(folder, 0o755)  # mkdtemp's 0700 would hide the page from a server of another user
        for name in PAGE_FILES:
            shutil.copy(os.path.join(HERE, name), folder)
        shutil.copy(model, os.path.join(folder, "model.onnx"))
        os.makedirs(os.path.join(folder, "ort"))
        for name in ORT_FILES:
            try:
                data = ort_file(package, name)
            except (KeyError, OSError, tarfile.TarError) as error:
                raise ValueError(f"--onnxruntime-web {package!r}: no {name} in it (an npm pack of "
                                 f"onnxruntime-web, or its unpacked folder): {error}") from None
            with open(os.path.join(folder, "ort", os.path.basename(name)), "wb") as file:
                file.write(data)
        if os.path.exists(output):
            shutil.rmtree(output)
        os.replace(folder, output)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return sorted(os.path.relpath(os.path.join(root, name), output)
                  for root, _, names in os.walk(output) for name in names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the .onnx file (tf-translate export --format onnx)")
    parser.add_argument("--onnxruntime-web", required=True, help="`npm pack onnxruntime-web` .tgz or unpacked folder")
    parser.add_argument("--output", required=True, help="the page folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    args = parser.parse_args(argv)
    try:
        names = make_page(args.model, args.onnxruntime_web, args.output, args.overwrite)
    except ValueError as error:
        print(f"make_page: error: {error}", file=sys.stderr)
        return 2
    print(f"page written to {args.output}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

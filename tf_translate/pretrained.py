"""Released checkpoints of the reference implementations, in one command.

`tf-translate pretrained NAME` downloads a checkpoint its authors published (the URL is
the one the reference repository's own download script uses), keeps it in a cache
folder with its SHA-256, imports it (`torch_import`) into a run directory and writes a
SavedModel beside it, ready for `translate` and TF Serving:

    tf-translate pretrained horse2zebra --output models/horse2zebra
    tf-translate translate --run-dir models/horse2zebra --input photos/ --output zebras/

Downloads resume where they stopped (HTTP Range), a file's SHA-256 is recorded when it
is first downloaded and checked on every later use (and against a published digest where
the catalogue has one), and every failure (404, an interrupted transfer, a changed file,
a checkpoint of another model) is one line. Nothing downloads at import time. Importing
needs PyTorch (`pip install 'tf_translate[torch]'`), which reads the file with
`weights_only=True` (no pickled code runs).
"""

import dataclasses
import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile

from tf_translate.files import write_atomically

JUNYANZ = "junyanz/pytorch-CycleGAN-and-pix2pix"
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{}.pth"
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{}.pth"
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """One released checkpoint: what it is, where it comes from, how to import it."""
    name: str
    model: str  # the `import-torch --model` that reads it
    url: str
    source: str  # the repository file that publishes the URL
    licence: str
    size_mb: int  # approximate, for the listing
    member: str = None  # the checkpoint's name inside a .zip download
    sha256: str = None  # a published digest; otherwise the first download's is recorded
    note: str = ""


def catalogue():
    """{name: Pretrained}, from the reference repositories' download scripts."""
    entries = []
    for name in ("apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite",
                 "horse2zebra", "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe",
                 "style_vangogh", "sat2map", "map2sat", "cityscapes_photo2label", "cityscapes_label2photo",
                 "facades_photo2label", "facades_label2photo", "iphone2dslr_flower"):
        entries.append(Pretrained(name, "cyclegan", CYCLEGAN_URL.format(name),
                                  f"{JUNYANZ} scripts/download_cyclegan_model.sh", "BSD-2-Clause (code)", 44,
                                  note="one direction; the other generator is untrained"))
    for name in ("edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night"):
        entries.append(Pretrained(f"pix2pix_{name}", "pix2pix", PIX2PIX_URL.format(name),
                                  f"{JUNYANZ} scripts/download_pix2pix_model.sh", "BSD-2-Clause (code)", 208,
                                  note="U-Net 256, batch norm"))
    entries.append(Pretrained(
        "stargan_celeba_128", "stargan", "https://www.dropbox.com/s/7e966qq0nlxwte4/celeba-128x128-5attrs.zip?dl=1",
        "yunjey/stargan download.sh (pretrained-celeba-128x128)", "MIT", 200, member="200000-G.ckpt",
        note="Black_Hair Blond_Hair Brown_Hair Male Young, 128 px"))
    return {entry.name: entry for entry in entries}


def cache_folder():
    """Where downloads are kept: $TF_TRANSLATE_CACHE/pretrained or ~/.cache/tf_translate/pretrained."""
    root = os.environ.get("TF_TRANSLATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tf_translate")
    return os.path.join(root, "pretrained")


def listing():
    """The `pretrained --list` table."""
    rows = [f"{'name':<26} {'model':<9} {'size':>7}  {'licence':<20} source"]
    for entry in catalogue().values():
        rows.append(f"{entry.name:<26} {entry.model:<9} {entry.size_mb:>4} MB  {entry.licence:<20} {entry.source}")
    return "\n".join(rows)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(entry, folder=None, progress=None):
    """The cached download of `entry`, fetched (or resumed) when missing; its SHA-256 is
    checked against the published or the recorded digest. Returns the file's path."""
    folder = folder or cache_folder()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, entry.name + os.path.splitext(entry.url.split("?")[0])[1])
    record = path + ".sha256"
    if not os.path.exists(path):
        fetch(entry, path, progress or Progress(entry.name))
    digest = sha256_of(path)
    expected = entry.sha256 or (open(record).read().split()[0] if os.path.exists(record) else None)
    if expected and digest != expected:
        os.replace(path, path + ".rejected")
        raise ValueError(f"{entry.name}: the download's SHA-256 is {digest[:16]}..., expected {expected[:16]}... "
                         f"({'published' if entry.sha256 else 'recorded at its first download'}); it was moved "
                         f"to {path}.rejected and the next run downloads it again")
    if not os.path.exists(record):
        write_atomically(record, lambda file: file.write(f"{digest}  {os.path.basename(path)}\n".encode()))
    return path


def fetch(entry, path, progress):
    """Downloads `entry.url` into `path`, resuming a `path.part` left by an interrupted run."""
    partial = path + ".part"
    have = os.path.getsize(partial) if os.path.exists(partial) else 0
    request = urllib.request.Request(entry.url, headers={"User-Agent": "tf-translate"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the part is already whole
            os.replace(partial, path)
            return
        raise ValueError(f"{entry.name}: {entry.url} answered {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ValueError(f"{entry.name}: cannot reach {entry.url} ({getattr(error, 'reason', error)})") from None
    with response:
        if response.status != 206:  # the server ignored the range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        received = have
        try:
            with open(partial, "ab" if have else "wb") as file:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    file.write(block)
                    received += len(block)
                    progress(received, total)
        except (OSError, urllib.error.URLError, http.client.HTTPException) as error:
            raise ValueError(f"{entry.name}: the download stopped at {received / 1e6:.1f} MB ({error}); run the "
                             "same command again to resume it") from None
    if total is not None and received < total:
        raise ValueError(f"{entry.name}: the download stopped at {received / 1e6:.1f} of {total / 1e6:.1f} MB; "
                         "run the same command again to resume it")
    progress.done()
    os.replace(partial, path)


class Progress:
    """A one-line progress bar on stderr (quarter marks when stderr is not a terminal)."""

    def __init__(self, name, stream=None):
        self.name, self.stream, self.shown = name, stream or sys.stderr, -1

    def __call__(self, received, total):
        fraction = received / total if total else None
        if self.stream.isatty():
            bar = "" if fraction is None else f" [{'#' * int(30 * fraction):<30}] {100 * fraction:3.0f} %"
            self.stream.write(f"\r{self.name}: {received / 1e6:.1f} MB{bar}")
        elif fraction is not None and int(4 * fraction) > self.shown:
            self.shown = int(4 * fraction)
            self.stream.write(f"{self.name}: {received / 1e6:.1f} of {total / 1e6:.1f} MB\n")
        self.stream.flush()

    def done(self):
        if self.stream.isatty():
            self.stream.write("\n")


def checkpoint_file(entry, path):
    """The checkpoint inside a download: the file itself, or `entry.member` of a .zip."""
    if not entry.member:
        return path
    target = path + "." + os.path.basename(entry.member)
    if not os.path.exists(target):
        try:
            with zipfile.ZipFile(path) as archive:
                names = [name for name in archive.namelist() if os.path.basename(name) == entry.member]
                if not names:
                    raise ValueError(f"{entry.name}: {path} holds no {entry.member}")
                with archive.open(names[0]) as source:
                    write_atomically(target, lambda file: shutil.copyfileobj(source, file))
        except zipfile.BadZipFile:
            raise ValueError(f"{entry.name}: {path} is not a zip archive") from None
    return target


def install(name, output, tflite=False, folder=None, entries=None):
    """Downloads, imports and exports checkpoint `name`: `output` becomes a run directory
    (translate --run-dir) with the SavedModel in `output/saved_model/1` (and
    `output/NAME.tflite` with `tflite`). Returns {what: path}."""
    entries = entries or catalogue()
    if name not in entries:
        raise ValueError(f"unknown pretrained model {name!r}; `tf-translate pretrained --list` names them")
    entry = entries[name]
    if os.path.exists(output):
        raise ValueError(f"--output {output!r} exists: choose a new folder (nothing was downloaded)")
    checkpoint = checkpoint_file(entry, download(entry, folder))
    try:
        from tf_translate.torch_import import import_torch
    except ImportError:
        raise ValueError("importing a PyTorch checkpoint needs PyTorch: pip install 'tf_translate[torch]'") from None
    try:
        run_dir = import_torch(entry.model, checkpoint, output)
    except ModuleNotFoundError as error:
        raise ValueError(f"importing needs {error.name}: pip install 'tf_translate[torch]'") from None
    except ValueError as error:
        shutil.rmtree(output, ignore_errors=True)
        raise ValueError(f"{name}: {checkpoint} is not a {entry.model} checkpoint as published "
                         f"({str(error).splitlines()[0]})") from None
    from tf_translate.export import export_saved_model, export_tflite
    from tf_translate.runs import generator, load_generators

    model, record = load_generators(run_dir)
    _, network = generator(model, record)
    labels = model.label_names() if model.data_kind == "labelled" else None
    written = {"run": run_dir, "saved_model": export_saved_model(network, os.path.join(output, "saved_model"),
                                                                 label_names=labels)}
    if tflite:
        written["tflite"] = os.path.join(output, f"{name}.tflite")
        export_tflite(network, written["tflite"], record["config"]["image_size"])
    return written

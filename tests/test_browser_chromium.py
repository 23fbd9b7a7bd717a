"""The exported page in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium; nothing downloaded) opens a page `export --format web`
wrote, served by serve-web's server on 127.0.0.1, is given a photograph through the page's
file picker, and translates it with onnxruntime-web's WASM build. What tests/page_in_node.js
stands in for is real here: the <script> loading, image decoding, canvas drawing.

CI installs the browser (.ci/run), so there the test never skips (tests/allowed_skips.txt
does not list it).
"""

import io
import os
import shutil
import threading

import numpy as np
import pytest
from helpers import TINY_CYCLEGAN

from tf_translate.web import ORT_WEB_CACHE, page_server

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# The photograph's size: not a multiple of 4, so the model pads and crops; under the page's
# 512 px rule, so the page draws it unscaled.
HEIGHT, WIDTH = 42, 54


def chromium(window=(900, 500)):
    """A headless Chromium through chromedriver (its paths given: selenium's manager would
    download a driver otherwise)."""
    if CHROMIUM is None or CHROMEDRIVER is None or not os.path.isdir(ORT_WEB_CACHE):
        pytest.skip("needs Debian's chromium and chromium-driver and onnxruntime-web unpacked in "
                    f"{ORT_WEB_CACHE} (.ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--force-device-scale-factor=1",
                 f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


def exported_page(tmp_path):
    """A tiny CycleGAN run (one step) exported with `export --format web`."""
    from tf_translate.cli import main
    from tf_translate.data import write_demo_dataset
    from tf_translate.training import train

    tiny = {k: v for k, v in TINY_CYCLEGAN.items() if k != "image_size"}
    run = str(tmp_path / "run")
    train("cyclegan", write_demo_dataset(str(tmp_path / "data"), size=32, train_count=2, test_count=1), run,
          steps=1, batch_size=1, image_size=32, load_size=32, seed=0, model_overrides=tiny, verbose=0, xla=False)
    page = str(tmp_path / "page")
    assert main(["export", "--run-dir", run, "--format", "web", "--output", page]) == 0
    return page


def canvas_pixels(driver, canvas_id):
    """The canvas's RGB pixels, read in the page."""
    width, height, rgba = driver.execute_script(
        "const canvas = document.getElementById(arguments[0]);"
        "const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);"
        "return [canvas.width, canvas.height, Array.from(pixels.data)];", canvas_id)
    return np.asarray(rgba, np.uint8).reshape(height, width, 4)[..., :3]


def shown(screenshot, driver, canvas_id):
    """The screenshot's pixels where the canvas's content is drawn (inside its 1 px border)."""
    x, y = driver.execute_script(
        "const box = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return [box.left + 1, box.top + 1];", canvas_id)
    x, y = round(x), round(y)
    return screenshot[y:y + HEIGHT, x:x + WIDTH]


def test_chromium_translates_a_photograph_like_python_onnxruntime(tmp_path):
    """Measured: 0 grey levels between the page's output canvas and Python's onnxruntime (bound 2,
    as WASM kernels may round differently); the screenshot shows both canvases pixel for pixel."""
    driver = chromium()
    ort = pytest.importorskip("onnxruntime")
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from skimage import data

    try:
        page = exported_page(tmp_path)
        photo = np.asarray(Image.fromarray(data.astronaut()).resize((WIDTH, HEIGHT), Image.BICUBIC))
        Image.fromarray(photo).save(tmp_path / "astronaut.png")
        server = page_server(page, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            driver.set_script_timeout(60)
            driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
            WebDriverWait(driver, 60).until(lambda d: "model loaded" in d.find_element(By.ID, "status").text
                                            or d.execute_script("return document.body.dataset.error"))
            driver.find_element(By.ID, "file").send_keys(str(tmp_path / "astronaut.png"))
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(
                "return document.body.dataset.done || document.body.dataset.error"))
            assert driver.execute_script("return document.body.dataset.error") is None
            status = driver.find_element(By.ID, "status").text
            page_input, page_output = canvas_pixels(driver, "input"), canvas_pixels(driver, "output")
            screenshot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
            shown_input, shown_output = shown(screenshot, driver, "input"), shown(screenshot, driver, "output")
        finally:
            server.shutdown()
            server.server_close()
    finally:
        driver.quit()

    assert status.startswith("translated in ") and "WASM" in status, status
    assert np.array_equal(page_input, photo)  # the browser decoded the PNG to the same pixels
    session = ort.InferenceSession(os.path.join(page, "model.onnx"), providers=["CPUExecutionProvider"])
    (python,) = session.run(None, {"images": photo[None]})
    assert page_output.shape == photo.shape
    assert np.abs(page_output.astype(int) - python[0].astype(int)).max() <= 2
    assert np.abs(python[0].astype(int) - photo.astype(int)).max() > 8  # a translation, not the photo
    # The screenshot shows both images where the canvases are (pixelated, at 1 px per px).
    assert np.abs(shown_input.astype(int) - photo.astype(int)).max() <= 2
    assert np.abs(shown_output.astype(int) - page_output.astype(int)).max() <= 2


def label_model():
    """A StarGAN-like file: `translated` = `images` + labels · (10, 20), so the output tells
    which label boxes were ticked."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[10.0], [20.0]], np.float32), "weights")
    shape = numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "shape")
    nodes = [helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["labels", "weights"], ["shift"]),
             helper.make_node("Reshape", ["shift", "shape"], ["shift_nhwc"]),
             helper.make_node("Add", ["pixels", "shift_nhwc"], ["shifted"]),
             helper.make_node("Cast", ["shifted"], ["translated"], to=TensorProto.UINT8)]
    graph = helper.make_graph(
        nodes, "stargan_like",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", "height", "width", 3]),
         helper.make_tensor_value_info("labels", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("translated", TensorProto.UINT8, ["batch", "height", "width", 3])],
        initializer=[weights, shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_chromium_page_names_the_labels_and_the_backend_it_ran_on(tmp_path):
    """StarGAN's labels as named checkboxes (labels.json from `write_page`), the ticked ones fed
    to the model; ?backend=webgpu runs WebGPU where the browser has it, else WASM, and the page
    says which."""
    driver = chromium()
    onnx = pytest.importorskip("onnx")
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tf_translate.web import write_page

    try:
        page = str(tmp_path / "page")
        write_page(lambda path: onnx.save(label_model(), path), page, label_names=["black hair", "blond hair"])
        photo = np.random.default_rng(0).integers(0, 200, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(photo).save(tmp_path / "noise.png")
        server = page_server(page, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            driver.get(f"http://127.0.0.1:{server.server_address[1]}/?backend=webgpu")
            WebDriverWait(driver, 60).until(lambda d: "model loaded" in d.find_element(By.ID, "status").text
                                            or d.execute_script("return document.body.dataset.error"))
            loaded = driver.find_element(By.ID, "status").text
            labels = driver.find_element(By.ID, "labels-control").text
            driver.find_element(By.ID, "label-0").click()  # untick black hair (ticked by default)
            driver.find_element(By.ID, "label-1").click()  # tick blond hair
            driver.find_element(By.ID, "file").send_keys(str(tmp_path / "noise.png"))
            WebDriverWait(driver, 60).until(lambda d: d.execute_script(
                "return document.body.dataset.done || document.body.dataset.error"))
            assert driver.execute_script("return document.body.dataset.error") is None
            translated = driver.find_element(By.ID, "status").text
            page_output = canvas_pixels(driver, "output")
        finally:
            server.shutdown()
            server.server_close()
    finally:
        driver.quit()

    assert labels == "target labels: black hair blond hair"
    assert np.array_equal(page_output, photo + 20)  # blond hair's 20, not black hair's 10
    backend = "WebGPU" if loaded.startswith("model loaded on WebGPU:") else "WASM"
    if backend == "WASM":
        assert loaded.startswith("model loaded on WASM (WebGPU "), loaded  # why not WebGPU
    assert translated.endswith(f"ms ({backend}, on this computer)"), translated

// The page's logic: image -> uint8 NHWC tensor `images` -> model.onnx -> `translated` -> canvas.
// The file was exported with uint8 io (the default), so scaling, padding and cropping happen
// inside the model; StarGAN's file also takes `labels` (float32 [1, label count]), DRIT++'s
// `attributes` (a random code each time).
// ?image=URL translates that image on load (for a scripted check); when a translation is
// done, <body data-done> holds the milliseconds it took, and <body data-error> any error.
"use strict";

// The .wasm and .mjs files beside ort.wasm.min.js (no CDN), as an absolute URL: the runtime
// imports them from its own script, where a relative path would resolve against ort/.
ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
const status = document.getElementById("status");
const sessionReady = ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });

function scaledSize(width, height) {
  const maxSide = Math.max(4, parseInt(document.getElementById("max-side").value, 10) || 512);
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

function drawInput(image) {
  const [width, height] = scaledSize(image.naturalWidth, image.naturalHeight);
  const canvas = document.getElementById("input");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0, width, height);
  return context.getImageData(0, 0, width, height);
}

function toTensor(imageData) {  // RGBA canvas pixels -> uint8 [1, h, w, 3]
  const { width, height, data } = imageData;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < data.length; i += 4, j += 3) {
    rgb[j] = data[i];
    rgb[j + 1] = data[i + 1];
    rgb[j + 2] = data[i + 2];
  }
  return new ort.Tensor("uint8", rgb, [1, height, width, 3]);
}

function drawOutput(tensor) {  // uint8 [1, h, w, 3] -> the output canvas
  const [, height, width] = tensor.dims;
  const canvas = document.getElementById("output");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(width, height);
  for (let i = 0, j = 0; j < tensor.data.length; i += 4, j += 3) {
    pixels.data[i] = tensor.data[j];
    pixels.data[i + 1] = tensor.data[j + 1];
    pixels.data[i + 2] = tensor.data[j + 2];
    pixels.data[i + 3] = 255;
  }
  context.putImageData(pixels, 0, 0);
}

function labelFeed(session) {
  if (!session.inputNames.includes("labels")) return {};
  const values = document.getElementById("labels").value.split(",").map(Number);
  if (values.some(Number.isNaN)) throw new Error("target labels: numbers separated by commas, e.g. 1,0,0");
  return { labels: new ort.Tensor("float32", Float32Array.from(values), [1, values.length]) };
}

function attributeFeed(session) {  // DRIT++: a random N(0, 1) attribute code per translation
  if (!session.inputNames.includes("attributes")) return {};
  const size = session.inputMetadata.find((input) => input.name === "attributes").shape[1];
  const code = Float32Array.from({ length: size }, () =>  // Box-Muller
    Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
  return { attributes: new ort.Tensor("float32", code, [1, size]) };
}

async function translate(image) {
  try {
    const session = await sessionReady;
    const feeds = { images: toTensor(drawInput(image)), ...labelFeed(session), ...attributeFeed(session) };
    status.textContent = "translating…";
    const start = performance.now();
    const outputs = await session.run(feeds);
    const milliseconds = performance.now() - start;
    drawOutput(outputs.translated);
    status.textContent = `translated in ${milliseconds.toFixed(0)} ms (WASM, on this computer)`;
    document.body.dataset.done = milliseconds.toFixed(0);
  } catch (error) {
    status.textContent = `error: ${error.message}`;
    document.body.dataset.error = error.message;
  }
}

function load(url) {
  const image = new Image();
  image.onload = () => translate(image);
  image.onerror = () => { status.textContent = `error: cannot read ${url} as an image`; };
  image.src = url;
}

function loadFile(file) {
  if (file) load(URL.createObjectURL(file));
}

document.getElementById("file").addEventListener("change", (event) => loadFile(event.target.files[0]));
const drop = document.getElementById("drop");
drop.addEventListener("dragover", (event) => event.preventDefault());
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  loadFile(event.dataTransfer.files[0]);
});
sessionReady.then((session) => {
  document.getElementById("labels-control").hidden = !session.inputNames.includes("labels");
  status.textContent = "model loaded: pick or drop a photo";
  const requested = new URLSearchParams(location.search).get("image");
  if (requested) load(requested);
}, (error) => {
  status.textContent = `error: cannot load model.onnx: ${error.message}`;
  document.body.dataset.error = error.message;
});

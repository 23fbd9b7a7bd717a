// The page's logic: image -> uint8 NHWC tensor `images` -> model.onnx -> `translated` -> canvas.
// The file was exported with uint8 io (the default), so scaling, padding and cropping happen
// inside the model; StarGAN's file also takes `labels` (float32 [1, label count]; their names
// in labels.json), DRIT++'s `attributes` (a random code each time).
// The runtime: onnxruntime-web's WASM build, or with ?backend=webgpu (the page's backend
// control) its WebGPU build where the browser has WebGPU, falling back to WASM; the status
// line says which ran.
// ?image=URL translates that image on load (for a scripted check); when a translation is
// done, <body data-done> holds the milliseconds it took, and <body data-error> any error.
"use strict";

const RUNTIMES = { wasm: "ort/ort.wasm.min.js", webgpu: "ort/ort.webgpu.min.js" };
const BACKEND_NAMES = { wasm: "WASM", webgpu: "WebGPU" };
const params = new URLSearchParams(location.search);
const hasWebGPU = typeof navigator !== "undefined" && "gpu" in navigator;
const requested = params.get("backend") === "webgpu" && hasWebGPU ? "webgpu" : "wasm";
const status = document.getElementById("status");
let backend = "wasm";  // the execution provider the session runs on

function loadRuntime() {  // the <script> of the chosen build (Node's harness sets `ort` itself)
  if (typeof ort !== "undefined") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = RUNTIMES[requested];
    script.onload = resolve;
    script.onerror = () => reject(new Error(`cannot load ${script.src}`));
    document.head.appendChild(script);
  });
}

async function createSession() {
  await loadRuntime();
  // The .wasm and .mjs files beside the runtime (no CDN), as an absolute URL: the runtime
  // imports them from its own script, where a relative path would resolve against ort/.
  ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
  if (requested === "webgpu") {
    try {
      const session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["webgpu"] });
      backend = "webgpu";
      return session;
    } catch (error) {
      console.warn("WebGPU session failed, using WASM:", error);
    }
  }
  return ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
}

const sessionReady = createSession();
let labelNames = [];

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

function labelFeed(session) {  // the ticked target labels: 1, the others 0
  if (!session.inputNames.includes("labels")) return {};
  const values = labelNames.map((_, index) => (document.getElementById(`label-${index}`).checked ? 1 : 0));
  return { labels: new ort.Tensor("float32", Float32Array.from(values), [1, values.length]) };
}

async function showLabels(session) {  // a checkbox per label, named from labels.json
  if (!session.inputNames.includes("labels")) return;
  const size = session.inputMetadata.find((input) => input.name === "labels").shape[1];
  const response = await fetch("labels.json");
  labelNames = response.ok ? (await response.json()).label_names : [];
  if (labelNames.length !== size) labelNames = Array.from({ length: size }, (_, index) => `label ${index}`);
  const control = document.getElementById("labels-control");
  labelNames.forEach((name, index) => {
    const label = document.createElement("label");
    const box = Object.assign(document.createElement("input"), { type: "checkbox", id: `label-${index}` });
    box.checked = index === 0;
    label.append(box, ` ${name} `);
    control.append(label);
  });
  control.hidden = false;
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
    status.textContent = `translated in ${milliseconds.toFixed(0)} ms (${BACKEND_NAMES[backend]}, on this computer)`;
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
const backendControl = document.getElementById("backend");
backendControl.value = requested;
backendControl.querySelector("option[value=webgpu]").disabled = !hasWebGPU;
backendControl.addEventListener("change", () => {  // each runtime is its own script: reload with it
  location.search = backendControl.value === "webgpu" ? "?backend=webgpu" : "";
});
sessionReady.then(async (session) => {
  await showLabels(session);
  const fallback = params.get("backend") === "webgpu" && backend !== "webgpu"
    ? ` (WebGPU ${hasWebGPU ? "failed" : "is not available in this browser"}: WASM instead)` : "";
  status.textContent = `model loaded on ${BACKEND_NAMES[backend]}${fallback}: pick or drop a photo`;
  const image = params.get("image");
  if (image) load(image);
}, (error) => {
  status.textContent = `error: cannot load model.onnx: ${error.message}`;
  document.body.dataset.error = error.message;
});

// Runs the exported page's translate.js (tf_translate/web_page) under Node on a stand-in DOM (tests/test_browser_page.py):
//   node page_in_node.js PAGE_DIR PHOTO.raw HEIGHT WIDTH OUT.raw
// PAGE_DIR is a folder `tf-translate export --format web` wrote; PHOTO.raw holds HEIGHT x WIDTH x 3 uint8 RGB bytes
// (at most 512 px a side, so the page does not resize it). The page's canvases are arrays, its
// image loads PHOTO.raw, and fetch reads the folder's files; the onnxruntime-web build, the
// tensor packing and the output drawing are the page's own. OUT.raw gets the output canvas
// as RGB bytes.
const fs = require("fs");
const path = require("path");
const [page, photo, height, width, out] = process.argv.slice(2);
process.chdir(page);
function canvas() {
  const self = { width: 0, height: 0, pixels: null };
  self.getContext = () => ({
    drawImage: (image, x, y, w, h) => {
      if (w !== image.naturalWidth || h !== image.naturalHeight) throw new Error("the page resized the photo");
      self.pixels = image.rgba;
    },
    getImageData: (x, y, w, h) => ({ width: w, height: h, data: self.pixels }),
    createImageData: (w, h) => ({ width: w, height: h, data: new Uint8ClampedArray(w * h * 4) }),
    putImageData: (data) => { self.pixels = data.data; },
  });
  return self;
}
const elements = {
  status: { textContent: "" }, file: { addEventListener() {} }, drop: { addEventListener() {} },
  "max-side": { value: "512" }, "labels-control": { hidden: true },
  backend: { value: "", addEventListener() {}, querySelector: () => ({ disabled: false }) },
  input: canvas(), output: canvas(),
};
global.document = { getElementById: (id) => elements[id], body: { dataset: {} } };
global.location = { href: "file://" + path.resolve("index.html"), search: "?image=photo" };
const rgb = fs.readFileSync(photo);
global.Image = class {
  set src(url) {
    this.naturalWidth = +width; this.naturalHeight = +height;
    this.rgba = new Uint8ClampedArray(this.naturalWidth * this.naturalHeight * 4);
    for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
      this.rgba.set(rgb.subarray(j, j + 3), i);
      this.rgba[i + 3] = 255;
    }
    setTimeout(() => this.onload(), 0);
  }
};
const nodeFetch = global.fetch;
global.fetch = async (url, ...rest) => String(url).startsWith("http") ? nodeFetch(url, ...rest)
  : new Response(fs.readFileSync(String(url).replace(/^file:\/\//, "")));
global.ort = require(path.resolve("ort/ort.wasm.min.js"));
require(path.resolve("translate.js"));
const wait = setInterval(() => {
  const { done, error } = document.body.dataset;
  if (error) { console.error("page error:", error); process.exit(1); }
  if (done === undefined) return;
  clearInterval(wait);
  const rgba = elements.output.pixels;
  const result = Buffer.alloc(rgba.length / 4 * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) result.set(rgba.subarray(i, i + 3), j);
  fs.writeFileSync(path.resolve(out), result);
  console.log(elements.status.textContent);
}, 50);

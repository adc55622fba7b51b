// Runs face-api itself (@vladmandic/face-api, its bundled tfjs on the CPU backend) on given
// input tensors, as the independent reference for tests/e2e/test_face_models.py.
//
//   node tests/e2e/faceapi_reference.mjs PACKAGE_DIR JOB.json OUT.json
//
// PACKAGE_DIR: the extracted npm package (dist/face-api.esm.js and model/).
// JOB.json: {"inputs": {NAME: {"file": F, "shape": [N, H, W, 3]}},   float32 little-endian NHWC, RGB 0..255
//            "detector_grid": [NAME...],  per image: face-api's raw TinyFaceDetector output
//                                         (forwardInput at the image's size, [H/32, W/32, 25] flattened)
//                                         and every box extractBoxes decodes (no threshold, before
//                                         NMS) in input pixels: [row, col, anchor, x0, y0, x1, y1, score]
//            "detect": [{"input": NAME, "input_size": S, "score_threshold": T}],
//                                         per image: detectAllFaces with TinyFaceDetectorOptions
//                                         (face-api pads / resizes itself and runs NMS):
//                                         [x, y, width, height, score] in image pixels
//            "landmarks": [NAME...],       FaceLandmark68Net.forward: [N, 136] in [0, 1]
//            "descriptor": [NAME...]}      FaceRecognitionNet.computeFaceDescriptor: [N, 128]
// OUT.json: the same keys, each NAME -> its result (nested arrays of numbers). Timings per step
// go to stderr.
//
// The ESM bundle is written for browsers: its tfjs `node` platform takes `util` from a stub and
// fails at import (`this.util.TextEncoder is not a constructor`). We import a copy of the bundle,
// in a temporary folder, where that one expression reads node's own `util` module instead; nothing
// else changes. Needs no npm install and no network.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { pathToFileURL } from 'node:url';

const [packageDir, jobPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: node faceapi_reference.mjs PACKAGE_DIR JOB.json OUT.json');
  process.exit(2);
}

async function importFaceApi() {
  const bundle = path.join(packageDir, 'dist', 'face-api.esm.js');
  const src = fs.readFileSync(bundle, 'utf8');
  const stub = /this\.util=([A-Za-z_$][\w$]*)\(\),this\.textEncoder=new this\.util\.TextEncoder/g;
  const matches = src.match(stub) || [];
  if (matches.length !== 1) throw new Error(`${bundle}: expected one tfjs node-platform util stub, found ${matches.length}`);
  globalThis.__faceapiReferenceNodeUtil = util;
  const patched = src.replace(stub, 'this.util=globalThis.__faceapiReferenceNodeUtil,this.textEncoder=new this.util.TextEncoder');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faceapi-reference-'));
  const file = path.join(dir, 'face-api.esm.mjs');
  fs.writeFileSync(file, patched);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function loadWeightMap(tf, name) {
  const folder = path.join(packageDir, 'model');
  const groups = JSON.parse(fs.readFileSync(path.join(folder, `${name}-weights_manifest.json`), 'utf8'));
  const map = {};
  for (const group of groups) {
    const data = Buffer.concat(group.paths.map((p) => fs.readFileSync(path.join(folder, p))));
    const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    Object.assign(map, tf.io.decodeWeights(buffer, group.weights));
  }
  return map;
}

function readImages(tf, input) {
  const data = fs.readFileSync(input.file);
  const values = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  const [n, h, w, c] = input.shape;
  if (values.length !== n * h * w * c) throw new Error(`${input.file}: ${values.length} values, shape ${input.shape}`);
  const batch = tf.tensor4d(values, [n, h, w, c], 'float32');
  const images = tf.unstack(batch);
  batch.dispose();
  return images;
}

const faceapi = await importFaceApi();
const { tf } = faceapi;
await tf.setBackend('cpu');
await tf.ready();

const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
const images = (name) => readImages(tf, job.inputs[name]);
const out = { backend: tf.getBackend(), tfjs: tf.version.tfjs };
const nets = faceapi.nets;
const need = (key, net, model) => {
  if ((job[key] || []).length && !net.isLoaded) net.loadFromWeightMap(loadWeightMap(tf, model));
};
need('detector_grid', nets.tinyFaceDetector, 'tiny_face_detector_model');
need('detect', nets.tinyFaceDetector, 'tiny_face_detector_model');
need('landmarks', nets.faceLandmark68Net, 'face_landmark_68_model');
need('descriptor', nets.faceRecognitionNet, 'face_recognition_model');

const t0 = Date.now();
let tLast = t0;
const lap = (what) => { const now = Date.now(); console.error(`${what}: ${((now - tLast) / 1000).toFixed(1)} s`); tLast = now; };
lap('import and load');
out.detector_grid = {};
for (const name of job.detector_grid || []) {
  const result = [];
  for (const image of images(name)) {
    const [h, w] = image.shape;
    const netInput = await faceapi.toNetInput(image);
    const grid = nets.tinyFaceDetector.forwardInput(netInput, Math.max(h, w));
    const boxes = await nets.tinyFaceDetector.extractBoxes(grid, netInput.getReshapedInputDimensions(0), undefined);
    result.push({
      shape: grid.shape,
      grid: Array.from(grid.dataSync()),
      boxes: boxes.map((b) => {
        const r = b.box.rescale(Math.max(h, w));
        return [b.row, b.col, b.anchor, r.left, r.top, r.right, r.bottom, b.score];
      }),
    });
    grid.dispose();
    image.dispose();
  }
  out.detector_grid[name] = result;
}

lap('detector_grid');
out.detect = [];
for (const d of job.detect || []) {
  const [image] = images(d.input);
  const options = new faceapi.TinyFaceDetectorOptions({ inputSize: d.input_size, scoreThreshold: d.score_threshold });
  const faces = await faceapi.detectAllFaces(image, options);
  out.detect.push(faces.map((f) => [f.box.x, f.box.y, f.box.width, f.box.height, f.score]));
  image.dispose();
}

lap('detect');
out.landmarks = {};
for (const name of job.landmarks || []) {
  const list = images(name);
  const result = await nets.faceLandmark68Net.forward(list);
  out.landmarks[name] = result.arraySync();
  result.dispose();
  list.forEach((t) => t.dispose());
}

lap('landmarks');
out.descriptor = {};
for (const name of job.descriptor || []) {
  const list = images(name);
  let result = await nets.faceRecognitionNet.computeFaceDescriptor(list);
  if (!Array.isArray(result)) result = [result];
  out.descriptor[name] = result.map((d) => Array.from(d));
  list.forEach((t) => t.dispose());
}

lap('descriptor');
fs.writeFileSync(outPath, JSON.stringify(out));

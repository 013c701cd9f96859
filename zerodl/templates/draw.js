"use strict";
// draw.html's script (zerodl/draw.py puts it inside the page). The page's test hook is
// window.drawPage: the last input, probabilities and hidden activations it computed.

// The trained TwoLayerNet, filled in by zerodl/draw.py: sizes, activation, dropout ratio, and the
// weights W1 (inputs x hidden), b1, W2 (hidden x classes), b2 as base64 of little-endian floats,
// row-major as in model.npz.
const MODEL = {{MODEL}};

// zerodl/images.py's constants: the preprocessing below is a port of its mnist_like.
const SIDE = 28, BOX = 20, CENTRE = 14, NOISE_FLOOR = 0.1, MIN_CONTRAST = 0.05;

function decode(b64) {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  // Typed arrays use the machine's byte order: little-endian on every platform a browser runs on.
  return MODEL.dtype === "float64" ? new Float64Array(bytes.buffer) : new Float32Array(bytes.buffer);
}
const W1 = decode(MODEL.params.W1), b1 = decode(MODEL.params.b1);
const W2 = decode(MODEL.params.W2), b2 = decode(MODEL.params.b2);
const H = MODEL.hidden_size, K = MODEL.output_size;

// ---- the picture -> 784 numbers (zerodl.images) ------------------------------------------------

// Python's round(): halves go to the even neighbour (Math.round sends them up).
function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// to_grey: PIL's "L" of an opaque RGB pixel, in [0, 1].
function toGrey(image) {
  const d = image.data, grey = new Float64Array(image.width * image.height);
  for (let i = 0; i < grey.length; i++) {
    grey[i] = ((d[4 * i] * 19595 + d[4 * i + 1] * 38470 + d[4 * i + 2] * 7471 + 0x8000) >> 16) / 255;
  }
  return grey;
}

function median(values) {
  const a = Float64Array.from(values).sort(), n = a.length;
  return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
}

// Pillow's Lanczos filter (a = 3), as its resampler evaluates it.
function sinc(x) {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}
function lanczos(x) { return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0; }

// For each output pixel, the first input pixel it reads and its weights. As Pillow does: pixel
// centres at i + 0.5, the filter widened by the scale when shrinking (that is the antialiasing),
// and each pixel's weights divided by their sum.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize, filterScale = Math.max(scale, 1), support = 3 * filterScale;
  const out = [];
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const first = Math.max(0, Math.trunc(centre - support + 0.5));
    const end = Math.min(inSize, Math.trunc(centre + support + 0.5));
    const w = new Float64Array(end - first);
    let sum = 0;
    for (let i = 0; i < w.length; i++) {
      w[i] = lanczos((i + first - centre + 0.5) * (1 / filterScale));
      sum += w[i];
    }
    if (sum !== 0) for (let i = 0; i < w.length; i++) w[i] /= sum;
    out.push({ first, w });
  }
  return out;
}

// One pass along rows (step 1) or columns (step = width): sums in doubles, stored as float32.
function pass(src, width, height, outWidth, outHeight, horizontal) {
  const out = new Float32Array(outWidth * outHeight);
  const taps = coefficients(horizontal ? width : height, horizontal ? outWidth : outHeight);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      const { first, w } = taps[horizontal ? x : y];
      const start = horizontal ? y * width + first : first * width + x, step = horizontal ? 1 : width;
      let s = 0;
      for (let i = 0; i < w.length; i++) s += src[start + i * step] * w[i];
      out[y * outWidth + x] = s;
    }
  }
  return out;
}

// PIL's Image.resize(..., LANCZOS) of a float ("F") image: two separable passes. Pillow 13 runs
// the vertical one first when the height shrinks by more than twice what the width does; the
// order changes the result by a float32 rounding at most, so it is kept to match to the bit.
function resize(src, w, h, outW, outH) {
  const verticalFirst = h - outH > 0 && h - outH > (w - outW) * 2;
  let img = src, cw = w, ch = h;
  const horizontal = () => { if (outW !== cw) { img = pass(img, cw, ch, outW, ch, true); cw = outW; } };
  const vertical = () => { if (outH !== ch) { img = pass(img, cw, ch, cw, outH, false); ch = outH; } };
  if (verticalFirst) { vertical(); horizontal(); } else { horizontal(); vertical(); }
  return img;
}

// mnist_like: grey (w x h) -> the 28 x 28 input as a Float32Array, or null if nothing is drawn.
function mnistLike(grey, w, h) {
  const border = [];
  for (let x = 0; x < w; x++) border.push(grey[x], grey[(h - 1) * w + x]);
  for (let y = 0; y < h; y++) border.push(grey[y * w], grey[y * w + w - 1]);
  // Polarity: the border is background; light paper is inverted so that ink is bright.
  const invert = border.reduce((a, b) => a + b, 0) / border.length > 0.5;
  const ink = new Float64Array(grey.length);
  const background = median(invert ? border.map(v => 1 - v) : border);
  let peak = -Infinity;
  for (let i = 0; i < ink.length; i++) {
    ink[i] = (invert ? 1 - grey[i] : grey[i]) - background;
    peak = Math.max(peak, ink[i]);
  }
  if (peak < MIN_CONTRAST) return null;
  // The strongest ink to 1; faint specks below the noise floor are paper, not ink.
  let top = h, bottom = -1, left = w, right = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x, v = Math.min(Math.max(ink[i] / peak, 0), 1);
      ink[i] = v < NOISE_FLOOR ? 0 : v;
      if (ink[i] > 0) { top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x); }
    }
  }
  // Crop to the ink, then scale its longer side to 20 px, in float32 as PIL's "F" image is.
  const cw = right - left + 1, ch = bottom - top + 1;
  const crop = new Float32Array(cw * ch);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = ink[(y + top) * w + x + left];
  const scale = BOX / Math.max(ch, cw);
  const sw = Math.max(1, roundHalfEven(cw * scale)), sh = Math.max(1, roundHalfEven(ch * scale));
  const small = resize(crop, cw, ch, sw, sh);
  let max = 0;
  for (let i = 0; i < small.length; i++) { small[i] = Math.min(Math.max(small[i], 0), 1); max = Math.max(max, small[i]); }
  if (max === 0) return null;
  for (let i = 0; i < small.length; i++) small[i] /= max;  // thin strokes back to full strength
  // Paste with the centre of mass on pixel (14, 14), never pushing ink off the edge.
  let total = 0, my = 0, mx = 0;
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) { const v = small[y * sw + x]; total += v; my += v * y; mx += v * x; }
  }
  const row0 = Math.min(Math.max(roundHalfEven(CENTRE - my / total), 0), SIDE - sh);
  const col0 = Math.min(Math.max(roundHalfEven(CENTRE - mx / total), 0), SIDE - sw);
  const field = new Float32Array(SIDE * SIDE);
  for (let y = 0; y < sh; y++) for (let x = 0; x < sw; x++) field[(y + row0) * SIDE + x + col0] = small[y * sw + x];
  return field;
}

// ---- the network (zerodl.net.TwoLayerNet.predict, then softmax) --------------------------------

function activation(a) {
  if (MODEL.activation === "relu") return a > 0 ? a : 0;
  return a >= 0 ? 1 / (1 + Math.exp(-a)) : Math.exp(a) / (1 + Math.exp(a));  // sigmoid, no overflow
}

function forward(x) {
  const hidden = Float64Array.from(b1), scores = Float64Array.from(b2);
  for (let i = 0; i < x.length; i++) {  // x·W1, skipping the many zero pixels
    if (x[i] === 0) continue;
    for (let j = 0, row = i * H; j < H; j++) hidden[j] += x[i] * W1[row + j];
  }
  for (let j = 0; j < H; j++) hidden[j] = activation(hidden[j]);
  const keep = 1 - MODEL.dropout_ratio;  // Dropout at test time: every unit kept, scaled (the book)
  for (let j = 0; j < H; j++) {
    const a = hidden[j] * keep;
    if (a !== 0) for (let k = 0, row = j * K; k < K; k++) scores[k] += a * W2[row + k];
  }
  const top = Math.max(...scores);  // softmax, shifted by the largest score so exp cannot overflow
  const e = scores.map(s => Math.exp(s - top)), sum = e.reduce((a, b) => a + b, 0);
  return { hidden, probabilities: Array.from(e, v => v / sum) };
}

// ---- the page ----------------------------------------------------------------------------------

const pad = document.getElementById("pad");
const pen = pad.getContext("2d", { willReadFrequently: true });
const PEN_WIDTH = pad.width / 12;  // about MNIST's stroke for a digit drawn two thirds as tall as the pad
const strokes = [];  // each a list of [x, y] in pad pixels; the picture is redrawn from them
let drawing = null;  // { id, stroke } while a pointer is down

// The test hook: what the page computed last, for tests/test_draw_page.py (and the curious).
window.drawPage = { input: null, probabilities: null, hidden: null, pending: true };

const bars = document.getElementById("bars");
for (let k = 0; k < K; k++) {
  bars.insertAdjacentHTML("beforeend",
    `<li><span class="digit">${k}</span><span class="track"><span class="fill"></span></span><span class="value">–</span></li>`);
}

const hiddenCanvas = document.getElementById("hidden");
const COLS = Math.min(H, Math.ceil(Math.sqrt(2 * H))), CELL = 10;  // a grid twice as wide as tall
hiddenCanvas.width = COLS * CELL;
hiddenCanvas.height = Math.ceil(H / COLS) * CELL;

function paint() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
  pen.fillStyle = pen.strokeStyle = "#fff";
  pen.lineWidth = PEN_WIDTH;
  pen.lineCap = pen.lineJoin = "round";
  for (const s of strokes) {
    pen.beginPath();
    if (s.length === 1) {  // a tap is a dot
      pen.arc(s[0][0], s[0][1], PEN_WIDTH / 2, 0, 2 * Math.PI);
      pen.fill();
      continue;
    }
    // Curves through the midpoints of the samples: smooth strokes from coarse pointer events.
    pen.moveTo(s[0][0], s[0][1]);
    for (let i = 1; i < s.length - 1; i++) {
      pen.quadraticCurveTo(s[i][0], s[i][1], (s[i][0] + s[i + 1][0]) / 2, (s[i][1] + s[i + 1][1]) / 2);
    }
    pen.lineTo(s[s.length - 1][0], s[s.length - 1][1]);
    pen.stroke();
  }
}

function show(x, result) {
  const seen = document.getElementById("seen").getContext("2d");
  const img = seen.createImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = x ? Math.round(255 * x[i]) : 0;
    img.data.set([v, v, v, 255], 4 * i);
  }
  seen.putImageData(img, 0, 0);

  const p = result ? result.probabilities : null;
  const best = p ? p.indexOf(Math.max(...p)) : -1;
  bars.querySelectorAll("li").forEach((li, k) => {
    li.classList.toggle("top", k === best);
    li.dataset.p = p ? String(p[k]) : "";
    li.style.setProperty("--p", p ? p[k] : 0);
    li.querySelector(".value").innerHTML = p ? `${(100 * p[k]).toFixed(1)}<span class="unit"> %</span>` : "–";
  });
  const guess = document.getElementById("guess");
  guess.textContent = p ? String(best) : "?";
  guess.classList.toggle("none", !p);
  if (!drawing) {  // the live region speaks once a stroke is done, not at every frame
    document.getElementById("verdict").textContent =
      p ? `The network says ${best}, ${(100 * p[best]).toFixed(1)} % sure.` : "Draw a digit to start.";
  }

  const cells = hiddenCanvas.getContext("2d");
  const h = result ? result.hidden : new Float64Array(H);
  // ReLU outputs have no upper bound: shade them relative to the strongest unit.
  const scale = MODEL.activation === "relu" ? Math.max(...h) || 1 : 1;
  cells.fillStyle = "#fff";
  cells.fillRect(0, 0, hiddenCanvas.width, hiddenCanvas.height);
  h.forEach((a, j) => {
    const t = a / scale;  // 0 -> pale grey-blue, 1 -> the accent blue
    cells.fillStyle = `rgb(${233 - 202 * t}, ${238 - 147 * t}, ${246 - 30 * t})`;
    cells.fillRect((j % COLS) * CELL + 1, Math.floor(j / COLS) * CELL + 1, CELL - 2, CELL - 2);
  });
  document.getElementById("hidden-note").textContent =
    `${H} units (${MODEL.activation === "relu" ? "ReLU" : "sigmoid"}), one square each; darker is stronger` +
    (MODEL.activation === "relu" && result ? `, up to ${scale.toFixed(2)} here.` : ".");
}

function update() {
  scheduled = false;
  paint();
  const x = mnistLike(toGrey(pen.getImageData(0, 0, pad.width, pad.height)), pad.width, pad.height);
  const result = x ? forward(x) : null;
  show(x, result);
  Object.assign(window.drawPage, { input: x, probabilities: result && result.probabilities,
                                   hidden: result && Array.from(result.hidden), pending: false });
  document.getElementById("undo").disabled = strokes.length === 0;
}

// At most one update per frame, however many pointer events arrive.
let scheduled = false;
function changed() {
  window.drawPage.pending = true;
  if (!scheduled) { scheduled = true; requestAnimationFrame(update); }
}

function where(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

pad.addEventListener("pointerdown", e => {
  if (drawing || (e.pointerType === "mouse" && e.button !== 0)) return;  // one pointer, left button
  pad.setPointerCapture(e.pointerId);  // the stroke goes on if the pointer leaves the pad
  if (e.pointerType === "touch") document.body.classList.add("touched");
  drawing = { id: e.pointerId, stroke: [where(e)] };
  strokes.push(drawing.stroke);
  e.preventDefault();
  changed();
});
pad.addEventListener("pointermove", e => {
  if (!drawing || e.pointerId !== drawing.id) return;
  for (const c of e.getCoalescedEvents ? e.getCoalescedEvents() : [e]) {
    const p = where(c), last = drawing.stroke[drawing.stroke.length - 1];
    if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 2) drawing.stroke.push(p);
  }
  changed();
});
function lift(e) {
  if (!drawing || e.pointerId !== drawing.id) return;
  drawing = null;
  changed();
}
pad.addEventListener("pointerup", lift);
pad.addEventListener("pointercancel", lift);
pad.addEventListener("lostpointercapture", lift);

function clear() { strokes.length = 0; drawing = null; changed(); }
function undo() { if (!drawing) { strokes.pop(); changed(); } }
document.getElementById("clear").addEventListener("click", clear);
document.getElementById("undo").addEventListener("click", undo);
document.addEventListener("keydown", e => {
  if (e.key === "Escape") clear();
  else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); undo(); }
});

changed();

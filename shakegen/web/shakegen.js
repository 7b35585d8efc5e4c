/* shakegen in the browser: a run's GRU model and its sampler, written by `shakegen export --format web`.
 *
 * No framework, nothing fetched: weights.js (loaded before this script) sets window.shakegenModel =
 * {manifest, weights}, the weights being the float16 values of every array, little-endian, as one
 * string of UTF-16 code units (weights.js is a UTF-16LE file, so it loads from file:// as from a server).
 *
 * It computes what shakegen's NumPy engine (shakegen/use/engine.py) computes, with V characters, units u,
 * k = 3u for gru/classic and u for gru1/gru2/gru3:
 *   table   = embedding @ W_0 + b_in_0                        (V, k)  once, float64, kept as float32
 *   x_t     = table[id_t] (first layer), h_{l-1} @ W_l + b_in_l (the others)        (k)
 *   h_t     = z * h_{t-1} + (1 - z) * h~                       (u)     gates per variant below
 *   logits  = h_L @ W_out + b_out                               (V)
 * and samples as the engine does: greedy below float32's smallest normal temperature, else
 * argmax(filter((logits - max) / T) + gumbel), the Gumbel noise -log(-log(u)) of the uniform of
 * MurmurHash3_x86_32(position, character; seed = random seed) (shakegen/use/noise.py), bit for bit.
 * Products accumulate in float32 (in another order than OpenBLAS's), elementwise steps run in float64
 * rounded to float32 where the engine keeps float32 arrays, so texts equal the engine's except where
 * two characters' scores are a float near-tie.
 *
 * API: window.shakegen.generate({seed, length, temperature, topK, topP, randomSeed, onText, signal})
 * returns a promise of the text (the seed, then the new characters); window.shakegen.ready resolves
 * once the weights are decoded; window.shakegen.card is the model card.
 */
(function () {
  "use strict";
  const GREEDY_BELOW = 1.1754943508222875e-38; // float32's smallest normal number
  const SLICE_MS = 12; // sampling runs in slices this long, then yields so the page stays responsive
  const fround = Math.fround;

  // --- weights -------------------------------------------------------------------------------------

  function halfToFloatTable() {
    const table = new Float32Array(65536); // every float16 bit pattern -> its float32 value (exact)
    for (let bits = 0; bits < 65536; bits++) {
      const sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 31, mantissa = bits & 1023;
      table[bits] = exponent === 0 ? sign * mantissa * 2 ** -24
        : exponent === 31 ? (mantissa ? NaN : sign * Infinity)
        : sign * (1024 + mantissa) * 2 ** (exponent - 25);
    }
    return table;
  }

  /** {name: {shape, data: Float32Array}} from the manifest's arrays and the float16 string. */
  function decodeArrays(manifest, weights) {
    const halfs = halfToFloatTable(), arrays = {};
    if (weights.length !== manifest.values) throw new Error(`weights.js holds ${weights.length} values; its manifest says ${manifest.values}.`);
    for (const entry of manifest.arrays) {
      const count = entry.shape.reduce((a, b) => a * b, 1), data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = halfs[weights.charCodeAt(entry.offset + i)];
      arrays[entry.name] = { shape: entry.shape, data };
    }
    return arrays;
  }

  // --- products: y = bias + x @ W, W (m, n) row-major as the checkpoint stores it ----------------------
  // A hand-assembled WebAssembly kernel (SIMD, 4 floats at a time) where the browser has it, plain
  // JavaScript loops otherwise. Every matrix, vector and state lives in one WebAssembly memory.
  // axpy(w, x, m, y, n): for i < m: y[0 .. n) += x[i] * w[i * n .. (i + 1) * n); addresses in bytes, n % 4 == 0.
  const KERNEL = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    0x01, 0x09, 0x01, 0x60, 0x05, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x00, // type: (i32 w, x, m, y, n) -> ()
    0x03, 0x02, 0x01, 0x00, // function 0 has type 0
    0x05, 0x03, 0x01, 0x00, 0x01, // one memory, at least 1 page
    0x07, 0x11, 0x02, 0x04, 0x61, 0x78, 0x70, 0x79, 0x00, 0x00, // export "axpy" = function 0
    0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, //        "memory" = memory 0
    0x0a, 0x68, 0x01, 0x66, // code: one body of 102 bytes
    0x02, 0x02, 0x7f, 0x01, 0x7b, // locals: i32 j (5), i32 rowBytes (6); v128 xi (7)
    0x20, 0x04, 0x41, 0x02, 0x74, 0x21, 0x06, // rowBytes = n << 2
    0x03, 0x40, // loop over i
    0x20, 0x01, 0x2a, 0x02, 0x00, 0xfd, 0x13, 0x21, 0x07, //   xi = f32x4.splat(f32.load(x))
    0x41, 0x00, 0x21, 0x05, //   j = 0
    0x03, 0x40, //   loop over j
    0x20, 0x03, 0x20, 0x05, 0x6a, //     y + j (where to store)
    0x20, 0x03, 0x20, 0x05, 0x6a, 0xfd, 0x00, 0x04, 0x00, //     v128.load(y + j)
    0x20, 0x07, 0x20, 0x00, 0x20, 0x05, 0x6a, 0xfd, 0x00, 0x04, 0x00, //     xi, v128.load(w + j)
    0xfd, 0xe6, 0x01, 0xfd, 0xe4, 0x01, 0xfd, 0x0b, 0x04, 0x00, //     store(y + j, y[j..] + xi * w[j..])
    0x20, 0x05, 0x41, 0x10, 0x6a, 0x22, 0x05, 0x20, 0x06, 0x49, 0x0d, 0x00, //     j += 16; again while j < rowBytes
    0x0b, //   end
    0x20, 0x00, 0x20, 0x06, 0x6a, 0x21, 0x00, //   w += rowBytes
    0x20, 0x01, 0x41, 0x04, 0x6a, 0x21, 0x01, //   x += 4
    0x20, 0x02, 0x41, 0x01, 0x6b, 0x22, 0x02, 0x0d, 0x00, //   m -= 1; again while m != 0
    0x0b, 0x0b, // end loop, end function
  ]);

  /** Float32 arrays carved out of one WebAssembly memory (16-byte aligned), or plain ones without it. */
  class Arena {
    constructor(floats) {
      const simd = typeof WebAssembly === "object" && WebAssembly.validate(KERNEL) && !window.shakegenNoWasm;
      if (simd) {
        const instance = new WebAssembly.Instance(new WebAssembly.Module(KERNEL), {});
        instance.exports.memory.grow(Math.ceil((4 * floats) / 65536));
        this.axpy = instance.exports.axpy;
        this.buffer = instance.exports.memory.buffer;
      } else {
        this.buffer = new ArrayBuffer(4 * floats);
      }
      this.used = 0;
      this.kind = simd ? "WebAssembly SIMD" : "JavaScript";
    }
    floats(count) {
      const view = new Float32Array(this.buffer, this.used, count);
      this.used += 16 * Math.ceil(count / 4);
      return view;
    }
    /** W (m, n) row-major, each row padded with zeros to a multiple of 4 columns: {data, m, n, stride}. */
    matrix(data, m, n, firstColumn = 0, columns = n) {
      const stride = 4 * Math.ceil(columns / 4), out = this.floats(m * stride);
      for (let i = 0; i < m; i++) out.set(data.subarray(i * n + firstColumn, i * n + firstColumn + columns), i * stride);
      return { data: out, m, n: columns, stride };
    }
    vector(length) { return this.floats(4 * Math.ceil(length / 4)); }

    /** y[0 .. n) = bias + x @ W, rounded to float32; x (m) and y (W.stride) from this arena. */
    gemv(W, x, y, bias) {
      const { data, m, n, stride } = W;
      if (bias) y.set(bias); else y.fill(0, 0, n);
      y.fill(0, n, stride);
      if (this.axpy) return this.axpy(data.byteOffset, x.byteOffset, m, y.byteOffset, stride);
      for (let i = 0; i < m; i++) {
        const xi = x[i], row = i * stride;
        if (xi !== 0) for (let j = 0; j < n; j++) y[j] += xi * data[row + j];
      }
    }
  }

  /** Floats an arena needs for these arrays (padded) and the model's vectors: a bound, not exact. */
  function arenaFloats(manifest) {
    let floats = 0, units = 0;
    for (const entry of manifest.arrays) {
      const [m, n] = entry.shape.length === 2 ? entry.shape : [1, entry.shape[0]];
      floats += m * (4 * Math.ceil(n / 4) + 4) + 8;
      units = Math.max(units, n);
    }
    const V = manifest.vocab.length;
    return floats + V * (units + 4) + 16 * (manifest.num_layers + 2) * (units + 4) + 4096;
  }

  const sigmoid = (x) => 0.5 + 0.5 * Math.tanh(0.5 * x); // the engine's (1 + tanh(x / 2)) / 2

  /** One GRU-family layer, its weights as the checkpoint stores them (see engine.Layer). */
  class Layer {
    constructor(arena, variant, kernel, recurrent, bias) {
      const u = recurrent.shape[0], b = bias.data;
      this.arena = arena; this.variant = variant; this.units = u;
      this.inputs = kernel.shape[0]; this.k = kernel.shape[1]; // k = 3u (gru, classic) or u
      this.kernel = arena.matrix(kernel.data, this.inputs, this.k); // (inputs, k)
      const [rows, cols] = recurrent.shape; // (u, 3u), or (u, u) for gru3
      if (variant === "gru") this.recurrent = arena.matrix(recurrent.data, rows, cols); // (u, 3u)
      else if (variant === "gru3") this.candidateKernel = arena.matrix(recurrent.data, rows, cols); // (u, u)
      else {
        this.gateKernel = arena.matrix(recurrent.data, rows, cols, 0, 2 * u); // (u, 2u)
        this.candidateKernel = arena.matrix(recurrent.data, rows, cols, 2 * u, u); // (u, u)
      }
      this.gateBias = this.recurrentBias = this.constantGates = null;
      if (variant === "gru") { // bias (2, 3u): input bias, recurrent bias
        this.inputBias = b.subarray(0, 3 * u); this.recurrentBias = b.subarray(3 * u, 6 * u);
      } else if (variant === "classic" || variant === "gru2") {
        this.inputBias = b; // (3u,) or (u,)
      } else { // gru1, gru3: (3u,) = gate biases (2u), then the candidate's input bias (u)
        this.inputBias = b.subarray(2 * u, 3 * u);
        if (variant === "gru1") this.gateBias = b.subarray(0, 2 * u);
        else this.constantGates = Float32Array.from(b.subarray(0, 2 * u), sigmoid); // σ(b_z), σ(b_r), as float32
      }
      this.x = arena.vector(this.k); // projected input (k)
      this.inner = arena.vector(3 * u); // h @ U (+ b) (3u)
      this.gates = new Float32Array(2 * u); // z, r
      this.resetH = arena.vector(u); // r * h
      this.state = arena.vector(u); // h (u)
    }

    /** The first layer's input projection of every character, embedding @ W + b_in: (V, k) float32 from float64. */
    table(embedding) {
      const [V, E] = embedding.shape, k = this.k, table = this.arena.floats(V * k), row = new Float64Array(k);
      const w = this.kernel.data, stride = this.kernel.stride;
      for (let c = 0; c < V; c++) {
        row.set(this.inputBias);
        for (let e = 0; e < E; e++) {
          const value = embedding.data[c * E + e];
          for (let j = 0; j < k; j++) row[j] += value * w[e * stride + j];
        }
        table.set(row, c * k);
      }
      return table;
    }

    project(h) { this.arena.gemv(this.kernel, h, this.x, this.inputBias); return this.x; }

    /** x (k) -> this.state, the new state (u), from the one it holds. */
    step(x) {
      const u = this.units, h = this.state, inner = this.inner, gates = this.gates, arena = this.arena;
      if (this.variant === "gru") { // z, r = σ(x_zr + h U_zr + b_zr); h~ = tanh(x_h + r (h U_h + b_h))
        arena.gemv(this.recurrent, h, inner, this.recurrentBias);
        for (let j = 0; j < u; j++) {
          const z = fround(sigmoid(fround(x[j] + inner[j]))), r = fround(sigmoid(fround(x[u + j] + inner[u + j])));
          const candidate = fround(Math.tanh(fround(x[2 * u + j] + fround(r * inner[2 * u + j]))));
          h[j] = candidate + z * (h[j] - candidate); // every read of h precedes this write
        }
        return h;
      }
      let xh = 0; // where the candidate's input starts in x
      if (this.variant === "gru3") {
        gates.set(this.constantGates);
      } else { // classic, gru1, gru2: z, r = σ(h U_zr [+ x_zr] [+ b_zr])
        arena.gemv(this.gateKernel, h, inner, this.gateBias);
        if (this.variant === "classic") { for (let j = 0; j < 2 * u; j++) inner[j] += x[j]; xh = 2 * u; }
        for (let j = 0; j < 2 * u; j++) gates[j] = sigmoid(inner[j]);
      }
      const resetH = this.resetH, candidate = inner; // h~ = tanh(x_h + (r h) U_h)
      for (let j = 0; j < u; j++) resetH[j] = gates[u + j] * h[j];
      arena.gemv(this.candidateKernel, resetH, candidate, null);
      for (let j = 0; j < u; j++) {
        const c = fround(Math.tanh(fround(candidate[j] + x[xh + j])));
        h[j] = c + gates[j] * (h[j] - c);
      }
      return h;
    }
  }

  /** The whole model: step(id) reads one character and returns the next one's logits (V). */
  class Model {
    constructor(manifest, arrays) {
      const get = (name) => {
        if (!arrays[name]) throw new Error(`weights.js has no array ${name}.`);
        return arrays[name];
      };
      const arena = (this.arena = new Arena(arenaFloats(manifest)));
      this.layers = [];
      for (let l = 0; l < manifest.num_layers; l++) {
        const p = `rnn_${l}/`;
        this.layers.push(new Layer(arena, manifest.cell, get(p + "kernel"), get(p + "recurrent_kernel"), get(p + "bias")));
      }
      const embedding = get("embedding"), output = get("logits/kernel");
      this.vocabSize = embedding.shape[0];
      this.table = this.layers[0].table(embedding); // the embedding folded into the first projection
      this.output = arena.matrix(output.data, output.shape[0], this.vocabSize); // (u, V)
      this.outputBias = get("logits/bias").data;
      this.logitsBuffer = arena.vector(this.vocabSize);
      this.logits = this.logitsBuffer.subarray(0, this.vocabSize);
    }

    reset() { for (const layer of this.layers) layer.state.fill(0); }

    step(id) {
      let h = null;
      this.layers.forEach((layer, l) => {
        h = layer.step(l === 0 ? this.table.subarray(id * layer.k, (id + 1) * layer.k) : layer.project(h));
      });
      this.arena.gemv(this.output, h, this.logitsBuffer, this.outputBias);
      return this.logits;
    }
  }

  // --- noise: MurmurHash3_x86_32 of (position, character) seeded by the random seed (noise.py) -------

  const rotl = (x, bits) => (x << bits) | (x >>> (32 - bits));
  const scramble = (k) => Math.imul(rotl(Math.imul(k, 0xcc9e2d51), 15), 0x1b873593);
  const absorb = (h, k) => (Math.imul(rotl(h ^ k, 13), 5) + 0xe6546b64) | 0;
  function finalize(h) {
    h ^= 8; // the message length in bytes
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }
  const hash = (key, position, character) => finalize(absorb(absorb(key | 0, scramble(position | 0)), scramble(character)));
  const uniform = (h) => ((h >>> 9) + 0.5) * 2 ** -23; // in (0, 1), exact in float32
  const gumbel = (h) => fround(-Math.log(-Math.log(uniform(h)))); // float64, rounded to float32

  /** The engine's choice (use/logits.py: choose and filter_logits) for one sample at one position. */
  function choose(logits, key, position, options, scratch) {
    const V = logits.length, { temperature, topK, topP } = options;
    let best = 0;
    if (temperature < GREEDY_BELOW) {
      for (let c = 1; c < V; c++) if (logits[c] > logits[best]) best = c;
      return best;
    }
    let max = -Infinity;
    for (let c = 0; c < V; c++) max = Math.max(max, logits[c]);
    const scaled = scratch.scaled, t = fround(temperature);
    for (let c = 0; c < V; c++) scaled[c] = fround(fround(logits[c] - max) / t); // float32 like the engine
    if (topK) { // -inf below the k-th largest (ties kept)
      const kth = Float32Array.from(scaled).sort()[V - topK];
      for (let c = 0; c < V; c++) if (scaled[c] < kth) scaled[c] = -Infinity;
    }
    if (topP !== null && topP !== undefined && topP < 1) { // -inf outside the smallest set reaching topP
      let top = -Infinity, sum = 0;
      for (let c = 0; c < V; c++) top = Math.max(top, scaled[c]);
      const probabilities = scratch.probabilities;
      for (let c = 0; c < V; c++) sum += (probabilities[c] = fround(Math.exp(fround(scaled[c] - top))));
      for (let c = 0; c < V; c++) probabilities[c] = fround(probabilities[c] / fround(sum));
      const ordered = Float32Array.from(probabilities).sort().reverse(), p = fround(topP);
      let before = 0, threshold = 1;
      for (let j = 0; j < V && before < p; j++) { threshold = Math.min(threshold, ordered[j]); before = fround(before + ordered[j]); }
      for (let c = 0; c < V; c++) if (probabilities[c] < threshold) scaled[c] = -Infinity;
    }
    const first = absorb(key | 0, scramble(position | 0)); // the hash's first block: one per position
    let bestScore = -Infinity;
    best = -1;
    for (let c = 0; c < V; c++) {
      if (scaled[c] === -Infinity) continue;
      const score = fround(scaled[c] + gumbel(finalize(absorb(first, scramble(c)))));
      if (score > bestScore || best < 0) { bestScore = score; best = c; }
    }
    return best;
  }

  // --- text in, text out ---------------------------------------------------------------------------

  const manifest = window.shakegenModel && window.shakegenModel.manifest;
  if (!manifest) throw new Error("shakegen: load weights.js before shakegen.js.");
  const vocab = manifest.vocab, ids = new Map(vocab.map((c, i) => [c, i]));
  let model = null;

  /** The seed cleaned as the run's corpus was (corpus.clean_text), and the characters the model does not know. */
  function cleanSeed(text) {
    const cleaning = manifest.cleaning;
    text = text.replace(/\r\n?/g, "\n").replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, "");
    if (cleaning.lowercase) text = text.toLowerCase();
    if (cleaning.strip_punctuation) text = text.replace(/\p{P}/gu, "");
    text = text.replace(/^\ufeff+/, "").normalize("NFC");
    const unknown = [...new Set(Array.from(text).filter((c) => !ids.has(c)))];
    return { text, unknown };
  }

  function checkOptions(o) {
    const V = vocab.length, whole = (x) => Number.isInteger(x);
    if (!whole(o.length) || o.length < 1) throw new Error(`length must be a positive integer, got ${o.length}.`);
    if (!(Number.isFinite(o.temperature) && o.temperature >= 0)) throw new Error(`temperature must be a finite number, 0 (greedy) or positive, got ${o.temperature}.`);
    if (o.topK !== null && !(whole(o.topK) && o.topK >= 1 && o.topK <= V)) throw new Error(`top-k must be between 1 and the vocabulary size ${V}, got ${o.topK}.`);
    if (o.topP !== null && !(Number.isFinite(o.topP) && o.topP > 0 && o.topP <= 1)) throw new Error(`top-p must be a number in (0, 1], got ${o.topP}.`);
    if (!(whole(o.randomSeed) && o.randomSeed >= 0 && o.randomSeed < 2 ** 32)) throw new Error(`random seed must be an integer from 0 to 4294967295, got ${o.randomSeed}.`);
  }

  const channel = new MessageChannel(), waiting = []; // a yield without setTimeout's 4 ms clamp
  channel.port1.onmessage = () => waiting.shift()();
  const yieldToPage = () => new Promise((resolve) => { waiting.push(resolve); channel.port2.postMessage(0); });

  const blank = (x) => x === undefined || x === null || x === "";
  let queue = Promise.resolve(); // one model, one state: generations run one after another
  function generate(request = {}) {
    const run = queue.then(() => sample(request));
    queue = run.catch(() => {});
    return run;
  }

  async function sample(request) {
    await api.ready;
    const options = {
      length: blank(request.length) ? 500 : Number(request.length),
      temperature: blank(request.temperature) ? 0.8 : Number(request.temperature),
      topK: blank(request.topK) || Number(request.topK) === 0 ? null : Number(request.topK),
      topP: blank(request.topP) ? null : Number(request.topP),
      randomSeed: blank(request.randomSeed) ? crypto.getRandomValues(new Uint32Array(1))[0] : Number(request.randomSeed),
    };
    checkOptions(options);
    api.lastRandomSeed = options.randomSeed;
    const seed = blank(request.seed) ? null : cleanSeed(String(request.seed));
    if (seed && seed.unknown.length) throw new Error(`Seed text has characters the model does not know: ${seed.unknown.map((c) => JSON.stringify(c)).join(", ")}. The model knows ${vocab.length} characters; remove them.`);
    if (seed && !seed.text) throw new Error("The seed text is empty after cleaning; give a seed the model knows.");
    const prefix = seed ? seed.text : "", primer = seed ? seed.text : "\n"; // no seed: primed with a newline, not shown
    const onText = request.onText || (() => {}), signal = request.signal;
    model.reset();
    const scratch = { scaled: new Float32Array(vocab.length), probabilities: new Float32Array(vocab.length) };
    const pieces = [prefix];
    let logits = null, position = 0;
    const seedIds = Array.from(primer, (c) => ids.get(c));
    if (seedIds.includes(undefined)) throw new Error("The model knows no newline to start from; give a seed.");
    if (prefix) onText(prefix);
    for (let s = 0; s < seedIds.length;) { // priming, in slices too: a seed may be long
      const start = performance.now();
      while (s < seedIds.length && performance.now() - start < SLICE_MS) logits = model.step(seedIds[s++]);
      if (s < seedIds.length) await yieldToPage();
    }
    while (position < options.length && !(signal && signal.aborted)) {
      const start = performance.now();
      let piece = "";
      while (position < options.length && performance.now() - start < SLICE_MS) {
        const id = choose(logits, options.randomSeed, position, options, scratch);
        piece += vocab[id];
        position += 1;
        if (position < options.length) logits = model.step(id); // the last character needs no step
      }
      pieces.push(piece);
      onText(piece);
      if (position < options.length) await yieldToPage();
    }
    api.lastStopped = position < options.length;
    return pieces.join("");
  }

  const api = {
    manifest, card: manifest.card, vocab, generate, cleanSeed, lastRandomSeed: null, lastStopped: false,
    internals: { hash, uniform, gumbel, choose, decodeArrays },
    timings: {},
  };
  api.ready = new Promise((resolve, reject) => setTimeout(() => { // after the page has painted
    try {
      const start = performance.now(), weights = window.shakegenModel.weights;
      model = new Model(manifest, decodeArrays(manifest, weights));
      delete window.shakegenModel.weights; // the string is decoded: let it go
      api.model = model;
      api.kernel = model.arena.kind;
      api.timings = { decodeMs: performance.now() - start, readyMs: performance.now() };
      resolve(api);
    } catch (error) { reject(error); }
  }, 0));
  window.shakegen = api;
})();

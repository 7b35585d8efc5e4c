/* shakegen in the browser: a run's GRU model and its sampler, written by `shakegen export --format web`.
 *
 * No framework, nothing fetched: weights.js (loaded before this script) sets window.shakegenModel =
 * {manifest, weights}, the weights being the float16 values of every array, little-endian, as one
 * string of UTF-16 code units (weights.js is a UTF-16LE file, so it loads from file:// as from a server).
 *
 * It computes what shakegen's NumPy engine (shakegen/engine.py) computes, with V characters, units u,
 * k = 3u for gru/classic and u for gru1/gru2/gru3:
 *   table   = embedding @ W_0 + b_in_0                        (V, k)  once, float64, kept as float32
 *   x_t     = table[id_t] (first layer), h_{l-1} @ W_l + b_in_l (the others)        (k)
 *   h_t     = z * h_{t-1} + (1 - z) * h~                       (u)     gates per variant below
 *   logits  = h_L @ W_out + b_out                               (V)
 * and samples as the engine does: greedy below float32's smallest normal temperature, else
 * argmax(filter((logits - max) / T) + gumbel), the Gumbel noise -log(-log(u)) of the uniform of
 * MurmurHash3_x86_32(position, character; seed = random seed) (shakegen/noise.py), bit for bit.
 * Products accumulate in float64 and are rounded to float32 where the engine keeps float32 arrays,
 * so texts equal the engine's except where two characters' scores are a float near-tie.
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

  /** (rows, cols) row-major -> (cols, rows) row-major: each output's weights become one contiguous row. */
  function transpose(data, rows, cols) {
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
    return out;
  }

  /** y[j] = bias[j] + sum_i x[i] * wt[(first + j) * m + i] for j < n: x (m), wt rows (n, m), float64 sums. */
  function matvec(wt, first, n, x, m, y, bias) {
    const m4 = m - (m % 4);
    for (let j = 0, row = first * m; j < n; j++, row += m) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
      for (; i < m4; i += 4) {
        s0 += wt[row + i] * x[i];
        s1 += wt[row + i + 1] * x[i + 1];
        s2 += wt[row + i + 2] * x[i + 2];
        s3 += wt[row + i + 3] * x[i + 3];
      }
      for (; i < m; i++) s0 += wt[row + i] * x[i];
      y[j] = (bias ? bias[j] : 0) + ((s0 + s1) + (s2 + s3));
    }
  }

  const sigmoid = (x) => 0.5 + 0.5 * Math.tanh(0.5 * x); // the engine's (1 + tanh(x / 2)) / 2

  /** One GRU-family layer, its weights as the checkpoint stores them (see engine.Layer). */
  class Layer {
    constructor(variant, kernel, recurrent, bias) {
      const u = recurrent.shape[0], b = bias.data;
      this.variant = variant; this.units = u;
      this.inputs = kernel.shape[0]; this.k = kernel.shape[1]; // k = 3u (gru, classic) or u
      this.kernelT = transpose(kernel.data, this.inputs, this.k); // (k, inputs)
      this.recurrentT = transpose(recurrent.data, u, recurrent.shape[1]); // (3u, u), or (u, u) for gru3
      const slice = (start, end) => Float64Array.from(b.subarray(start, end));
      this.gateBias = this.recurrentBias = this.constantGates = null;
      if (variant === "gru") { // bias (2, 3u): input bias, recurrent bias
        this.inputBias = slice(0, 3 * u); this.recurrentBias = slice(3 * u, 6 * u);
      } else if (variant === "classic" || variant === "gru2") {
        this.inputBias = slice(0, b.length); // (3u,) or (u,)
      } else { // gru1, gru3: (3u,) = gate biases (2u), then the candidate's input bias (u)
        this.inputBias = slice(2 * u, 3 * u);
        if (variant === "gru1") this.gateBias = slice(0, 2 * u);
        else this.constantGates = Float32Array.from(slice(0, 2 * u), sigmoid); // σ(b_z), σ(b_r)
      }
      this.x = new Float32Array(this.k); // projected input (k)
      this.inner = new Float32Array(3 * u); // h @ U (+ b) (3u)
      this.gates = new Float64Array(2 * u); // z, r
      this.resetH = new Float64Array(u); // r * h
    }

    /** The first layer's input projection of every character: (V, k) float32 from float64. */
    table(embedding) {
      const [V, E] = embedding.shape, table = new Float32Array(V * this.k), row = new Float64Array(this.k);
      for (let c = 0; c < V; c++) {
        matvec(this.kernelT, 0, this.k, embedding.data.subarray(c * E, (c + 1) * E), E, row, this.inputBias);
        table.set(row, c * this.k);
      }
      return table;
    }

    project(h) { matvec(this.kernelT, 0, this.k, h, this.inputs, this.x, this.inputBias); return this.x; }

    /** x (k) and h (u) -> the new state (u), written into out. */
    step(x, h, out) {
      const u = this.units, inner = this.inner, gates = this.gates;
      if (this.variant === "gru") { // z, r = σ(x_zr + h U_zr + b_zr); h~ = tanh(x_h + r (h U_h + b_h))
        matvec(this.recurrentT, 0, 3 * u, h, u, inner, this.recurrentBias);
        for (let j = 0; j < u; j++) {
          const z = sigmoid(fround(x[j] + inner[j])), r = sigmoid(fround(x[u + j] + inner[u + j]));
          const candidate = Math.tanh(x[2 * u + j] + r * inner[2 * u + j]);
          out[j] = candidate + z * (h[j] - candidate);
        }
        return out;
      }
      let xh = 0; // where the candidate's input starts in x
      if (this.variant === "gru3") {
        for (let j = 0; j < 2 * u; j++) gates[j] = this.constantGates[j];
      } else { // classic, gru1, gru2: z, r = σ(h U_zr [+ x_zr] [+ b_zr])
        matvec(this.recurrentT, 0, 2 * u, h, u, inner, this.gateBias);
        if (this.variant === "classic") { for (let j = 0; j < 2 * u; j++) inner[j] = fround(inner[j] + x[j]); xh = 2 * u; }
        for (let j = 0; j < 2 * u; j++) gates[j] = fround(sigmoid(inner[j]));
      }
      const resetH = this.resetH, candidate = inner; // h~ = tanh(x_h + (r h) U_h)
      for (let j = 0; j < u; j++) resetH[j] = fround(gates[u + j] * h[j]);
      matvec(this.recurrentT, this.variant === "gru3" ? 0 : 2 * u, u, resetH, u, candidate, null);
      for (let j = 0; j < u; j++) {
        const c = Math.tanh(fround(candidate[j] + x[xh + j]));
        out[j] = c + gates[j] * (h[j] - c);
      }
      return out;
    }
  }

  /** The whole model: step(id, states) reads one character and returns the next one's logits (V). */
  class Model {
    constructor(manifest, arrays) {
      const get = (name) => {
        if (!arrays[name]) throw new Error(`weights.js has no array ${name}.`);
        return arrays[name];
      };
      this.layers = [];
      for (let l = 0; l < manifest.num_layers; l++) {
        const p = `rnn_${l}/`;
        this.layers.push(new Layer(manifest.cell, get(p + "kernel"), get(p + "recurrent_kernel"), get(p + "bias")));
      }
      const embedding = get("embedding"), output = get("logits/kernel"), last = this.layers[this.layers.length - 1];
      this.vocabSize = embedding.shape[0];
      this.table = this.layers[0].table(embedding); // the embedding folded into the first projection
      this.outputT = transpose(output.data, last.units, this.vocabSize); // (V, u)
      this.outputBias = get("logits/bias").data;
      this.logits = new Float32Array(this.vocabSize);
    }

    zeroStates() { return this.layers.map((layer) => new Float32Array(layer.units)); }

    step(id, states) {
      let h = null;
      this.layers.forEach((layer, l) => {
        const x = l === 0 ? this.table.subarray(id * layer.k, (id + 1) * layer.k) : layer.project(h);
        h = layer.step(x, states[l], states[l]); // in place: every read of h[j] precedes its write
      });
      matvec(this.outputT, 0, this.vocabSize, h, h.length, this.logits, this.outputBias);
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

  /** The engine's choice (engine.choose and filter_logits) for one sample at one position. */
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
  async function generate(request = {}) {
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
    const states = model.zeroStates(), scratch = { scaled: new Float32Array(vocab.length), probabilities: new Float32Array(vocab.length) };
    const pieces = [prefix];
    let logits = null, position = 0;
    const seedIds = Array.from(primer, (c) => ids.get(c));
    if (prefix) onText(prefix);
    for (let s = 0; s < seedIds.length;) { // priming, in slices too: a seed may be long
      const start = performance.now();
      while (s < seedIds.length && performance.now() - start < SLICE_MS) logits = model.step(seedIds[s++], states);
      if (s < seedIds.length) await yieldToPage();
    }
    while (position < options.length && !(signal && signal.aborted)) {
      const start = performance.now();
      let piece = "";
      while (position < options.length && performance.now() - start < SLICE_MS) {
        const id = choose(logits, options.randomSeed, position, options, scratch);
        piece += vocab[id];
        position += 1;
        if (position < options.length) logits = model.step(id, states); // the last character needs no step
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
    internals: { hash, uniform, gumbel, choose, halfToFloatTable },
    timings: {},
  };
  api.ready = new Promise((resolve, reject) => setTimeout(() => { // after the page has painted
    try {
      const start = performance.now(), weights = window.shakegenModel.weights;
      model = new Model(manifest, decodeArrays(manifest, weights));
      delete window.shakegenModel.weights; // the string is decoded: let it go
      api.model = model;
      api.timings = { decodeMs: performance.now() - start, readyMs: performance.now() };
      resolve(api);
    } catch (error) { reject(error); }
  }, 0));
  window.shakegen = api;
})();

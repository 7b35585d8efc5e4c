// shakegen's inspect view: a text coloured by surprisal (or by one unit's activation), with the
// model's top guesses on hover or tap. Used by `shakegen inspect --html` (inlined) and the served page.
// data: {records: [{char, bits, rank, top: [{char, probability}], units: {"L:N": value}}], units: ["L:N", ...],
//        findings: [{property, unit, correlation}]}; a record may also come compact, as the HTML export
//        writes it: [char, bits, rank, [[guess, probability], ...], [value of each of data.units]].
(function (root) {
  "use strict";
  // Bins of bits per character, as the terminal legend: [upper bound, background, text colour].
  var BINS = [[1, "#ffffff", "#111"], [2, "#fde2c8", "#111"], [4, "#fbb47a", "#111"], [8, "#f0703c", "#111"],
              [Infinity, "#b3001b", "#fff"]];
  function surprisalColour(bits) {
    if (bits === null || bits === undefined) return ["#eeeeee", "#555"];
    for (var i = 0; i < BINS.length; i++) if (bits < BINS[i][0]) return [BINS[i][1], BINS[i][2]];
  }
  function activationColour(value) {
    // -1 blue, 0 white, +1 red
    var v = Math.max(-1, Math.min(1, value)), a = Math.abs(v);
    var low = Math.round(255 * (1 - a));
    var bg = v >= 0 ? "rgb(255," + low + "," + low + ")" : "rgb(" + low + "," + low + ",255)";
    return [bg, a > 0.6 ? "#fff" : "#111"];
  }
  function shown(c) {
    return c === "\n" ? "\u21b5" : c === " " ? "\u2423" : c === "\t" ? "\u21e5" : c;
  }
  var CSS = ".sg-inspect{position:relative}.sg-bar{margin:0 0 .6em;font:14px system-ui,sans-serif}" +
    ".sg-key{display:inline-block;padding:0 .4em;margin-left:.3em;border:1px solid #ccc;font-size:12px}" +
    ".sg-hint{color:#555;font-size:12px}" +
    ".sg-text{white-space:pre-wrap;font:15px/1.5 ui-monospace,Menlo,Consolas,monospace;word-break:break-all}" +
    ".sg-char{cursor:default}.sg-char:hover{outline:1px solid #333}" +
    ".sg-tip{position:absolute;z-index:10;background:#fff;border:1px solid #888;border-radius:4px;" +
    "padding:.4em .6em;font:13px ui-monospace,Menlo,Consolas,monospace;box-shadow:0 2px 6px rgba(0,0,0,.2);" +
    "white-space:pre}.sg-tip-head{font-weight:bold;margin-bottom:.2em}.sg-hit{color:#0a7a2a;font-weight:bold}";
  function style() {
    if (document.getElementById("sg-inspect-style")) return;
    var element = document.createElement("style");
    element.id = "sg-inspect-style";
    element.textContent = CSS;
    document.head.appendChild(element);
  }
  function normal(record, units) {
    if (!Array.isArray(record)) return record;
    var values = {};
    units.forEach(function (u, i) { values[u] = record[4][i]; });
    return {char: record[0], bits: record[1], rank: record[2], units: values,
            top: record[3] && record[3].map(function (g) { return {char: g[0], probability: g[1]}; })};
  }
  function render(container, data) {
    data = {records: data.records.map(function (r) { return normal(r, data.units || []); }),
            units: data.units || [], findings: data.findings || []};
    style();
    container.classList.add("sg-inspect");
    container.textContent = "";
    var bar = document.createElement("div");
    bar.className = "sg-bar";
    var label = document.createElement("label");
    label.textContent = "Colour by ";
    var select = document.createElement("select");
    select.className = "sg-view";
    var views = [["surprisal", "surprisal (bits)"]];
    (data.units || []).forEach(function (u) {
      var note = (data.findings || []).filter(function (f) { return f.unit === u; })
        .map(function (f) { return f.property + " r=" + f.correlation.toFixed(2); }).join(", ");
      views.push([u, "unit " + u + (note ? " (" + note + ")" : "")]);
    });
    views.forEach(function (v) {
      var option = document.createElement("option");
      option.value = v[0];
      option.textContent = v[1];
      select.appendChild(option);
    });
    label.appendChild(select);
    bar.appendChild(label);
    var legend = document.createElement("span");
    legend.className = "sg-legend";
    bar.appendChild(legend);
    container.appendChild(bar);
    var text = document.createElement("div");
    text.className = "sg-text";
    container.appendChild(text);
    var tip = document.createElement("div");
    tip.className = "sg-tip";
    tip.hidden = true;
    container.appendChild(tip);
    var spans = data.records.map(function (record, i) {
      var span = document.createElement("span");
      span.className = "sg-char";
      span.dataset.index = i;
      span.textContent = record.char === "\n" ? "\u21b5\n" : record.char;
      text.appendChild(span);
      return span;
    });
    function paint() {
      var view = select.value;
      spans.forEach(function (span, i) {
        var r = data.records[i];
        var colours = view === "surprisal" ? surprisalColour(r.bits) : activationColour(r.units[view]);
        span.style.background = colours[0];
        span.style.color = colours[1];
      });
      legend.textContent = "";
      var entries = view === "surprisal"
        ? BINS.map(function (b, i) {
            var lo = i === 0 ? 0 : BINS[i - 1][0];
            return [b[1], b[2], b[0] === Infinity ? "\u2265 " + lo + " bits" : lo + "\u2013" + b[0] + " bits"];
          })
        : [[activationColour(-1)[0], "#fff", "\u22121"], [activationColour(0)[0], "#111", "0"],
           [activationColour(1)[0], "#fff", "+1"]];
      entries.forEach(function (e) {
        var key = document.createElement("span");
        key.className = "sg-key";
        key.style.background = e[0];
        key.style.color = e[1];
        key.textContent = e[2];
        legend.appendChild(key);
      });
      if (view !== "surprisal") {
        var hint = document.createElement("span");
        hint.className = "sg-hint";
        hint.textContent = " A correlation is a hint where to look, not an explanation.";
        legend.appendChild(hint);
      }
    }
    function show(span) {
      var r = data.records[+span.dataset.index];
      tip.textContent = "";
      var head = document.createElement("div");
      head.className = "sg-tip-head";
      if (r.bits === null || r.bits === undefined) {
        head.textContent = "\u201c" + shown(r.char) + "\u201d: the first character, nothing predicts it";
      } else {
        head.textContent = "\u201c" + shown(r.char) + "\u201d: rank " + r.rank + ", " + r.bits.toFixed(2) +
          " bits (p = " + Math.pow(2, -r.bits).toFixed(4) + ")";
      }
      tip.appendChild(head);
      (r.top || []).forEach(function (g) {
        var row = document.createElement("div");
        row.className = "sg-guess" + (g.char === r.char ? " sg-hit" : "");
        row.textContent = shown(g.char) + "  " + (100 * g.probability).toFixed(1) + "%";
        tip.appendChild(row);
      });
      Object.keys(r.units || {}).forEach(function (u) {
        var row = document.createElement("div");
        row.className = "sg-unit";
        row.textContent = "unit " + u + ": " + r.units[u].toFixed(3);
        tip.appendChild(row);
      });
      var box = span.getBoundingClientRect(), outer = container.getBoundingClientRect();
      tip.style.left = Math.max(0, box.left - outer.left) + "px";
      tip.style.top = (box.bottom - outer.top + 4) + "px";
      tip.hidden = false;
    }
    text.addEventListener("mouseover", function (e) { if (e.target.dataset.index !== undefined) show(e.target); });
    text.addEventListener("click", function (e) { if (e.target.dataset.index !== undefined) show(e.target); });
    text.addEventListener("mouseleave", function () { tip.hidden = true; });
    select.addEventListener("change", paint);
    paint();
    return {select: select, spans: spans, tip: tip};
  }
  root.shakegenInspect = render;
})(window);

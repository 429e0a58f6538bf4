// dyno's page script: sortable and filterable tables, switchable table
// rows, and SVG charts drawn from the JSON embedded in the page, each
// mark carrying its values in `data-tip`, shown on hover. No network, no
// library: the page is one file.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#2f5fb3", "#d35400", "#1e8449", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#b7950b"];
  var OUTCOME = [["#2f5fb3", "counted"], ["#9aa3b5", "warm-up / cool-down"], ["#c0392b", "failed"]];
  var dataNode = document.getElementById("dyno-data");
  var DATA = dataNode ? JSON.parse(dataNode.textContent) : {};

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function fmt(v, unit) {
    if (v === null || v === undefined || !isFinite(v)) { return "–"; }
    if (unit === "ms") { return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(1) + " ms"; }
    if (unit === "%") { return (v * 100).toFixed(1) + "%"; }
    if (unit === "×") { return v.toFixed(3) + "×"; }
    return v.toFixed(Math.abs(v) >= 100 ? 0 : 2) + (unit ? " " + unit : "");
  }
  function ticks(lo, hi, n, log) {
    var out = [];
    if (log && hi / lo >= 10) {
      for (var e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        [1, 2, 5].forEach(function (m) { var t = m * Math.pow(10, e); if (t >= lo && t <= hi) { out.push(t); } });
      }
      return out;
    }
    var raw = (hi - lo) / n || 1, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (k) { return k * mag; }).filter(function (s) { return s >= raw; })[0];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) { out.push(+t.toPrecision(12)); }
    return out;
  }
  // A frame: scales and axes in a fresh SVG inside `host`.
  function frame(host, o) {
    var W = o.width || 540, H = o.height || 300, m = { l: o.left || 62, r: 14, t: 12, b: 40 };
    var svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" }, host);
    svg.classList.add("chart-svg");
    var sx = function (v) {
      var a = o.logx ? Math.log10(v) : v, lo = o.logx ? Math.log10(o.x[0]) : o.x[0], hi = o.logx ? Math.log10(o.x[1]) : o.x[1];
      return m.l + (a - lo) / ((hi - lo) || 1) * (W - m.l - m.r);
    };
    var sy = function (v) { return H - m.b - (v - o.y[0]) / ((o.y[1] - o.y[0]) || 1) * (H - m.t - m.b); };
    var axis = el("g", { "class": "axis" }, svg);
    ticks(o.x[0], o.x[1], 6, o.logx).forEach(function (t) {
      el("line", { x1: sx(t), x2: sx(t), y1: m.t, y2: H - m.b, "class": "grid" }, axis);
      el("text", { x: sx(t), y: H - m.b + 14, "text-anchor": "middle" }, axis).textContent = o.xfmt ? o.xfmt(t) : t;
    });
    if (!o.ycats) {
      ticks(o.y[0], o.y[1], 5).forEach(function (t) {
        el("line", { x1: m.l, x2: W - m.r, y1: sy(t), y2: sy(t), "class": "grid" }, axis);
        el("text", { x: m.l - 5, y: sy(t) + 4, "text-anchor": "end" }, axis).textContent = o.yfmt ? o.yfmt(t) : t;
      });
    }
    el("path", { d: "M" + m.l + "," + m.t + "V" + (H - m.b) + "H" + (W - m.r), fill: "none" }, axis);
    el("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle" }, axis).textContent = o.xlabel;
    el("text", { x: 12, y: (m.t + H - m.b) / 2, transform: "rotate(-90 12 " + (m.t + H - m.b) / 2 + ")", "text-anchor": "middle" }, axis).textContent = o.ylabel;
    return { svg: svg, sx: sx, sy: sy, m: m, W: W, H: H };
  }
  function legend(host, names) {
    var div = document.createElement("div");
    div.className = "legend";
    names.forEach(function (name, i) {
      var n = Array.isArray(name) ? name : [name];
      var s = document.createElement("span");
      var sw = document.createElement("i");
      sw.style.background = n[1] || COLORS[i % COLORS.length];
      s.appendChild(sw);
      s.appendChild(document.createTextNode(n[0]));
      div.appendChild(s);
    });
    host.appendChild(div);
  }
  function point(f, x, y, color, tip, r) {
    var c = el("circle", { cx: f.sx(x), cy: f.sy(y), r: r || 3, fill: color, "class": "pt", "data-tip": tip }, f.svg);
    return c;
  }
  function extent(values, pad) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    if (!isFinite(lo)) { return [0, 1]; }
    if (lo === hi) { hi = lo + 1; }
    return [lo - (hi - lo) * (pad || 0), hi + (hi - lo) * (pad || 0)];
  }
  function done(host) { host.setAttribute("data-drawn", "1"); }

  var draw = {};
  // Empirical CDF of one metric, one line per summary row.
  function cdf(host, metric, label) {
    var series = (DATA.cdfs || []).filter(function (c) { return c[metric].length; });
    var xs = [];
    series.forEach(function (c) { c[metric].forEach(function (p) { xs.push(p[0]); }); });
    var x = extent(xs), log = x[0] > 0 && x[1] / x[0] > 20;
    if (!log) { x = [0, x[1]]; }
    var f = frame(host, { x: x, y: [0, 1], logx: log, xlabel: label + (log ? " (log scale)" : ""), ylabel: "share of requests", xfmt: function (t) { return fmt(t, "ms"); }, yfmt: function (t) { return Math.round(t * 100) + "%"; } });
    series.forEach(function (c, i) {
      var color = COLORS[i % COLORS.length], d = "";
      c[metric].forEach(function (p, j) { d += (j ? "L" : "M") + f.sx(p[0]).toFixed(1) + "," + f.sy(p[1]).toFixed(1); });
      el("path", { d: d, fill: "none", stroke: color, "stroke-width": 1.6 }, f.svg);
      c[metric].forEach(function (p) { point(f, p[0], p[1], color, c.label + "\n" + label + " " + fmt(p[0], "ms") + " at " + (p[1] * 100).toFixed(1) + "%", 2.2); });
    });
    legend(host, series.map(function (c) { return c.label; }));
  }
  draw["cdf-ttft"] = function (host) { cdf(host, "ttft_ms", "TTFT"); };
  draw["cdf-e2e"] = function (host) { cdf(host, "e2e_ms", "E2E"); };
  // A row's p50 TTFT against its p50 decode speed.
  draw["ttft-vs-tps"] = function (host) {
    var rows = (DATA.rows || []).filter(function (r) { return r.ttft_p50 !== null && r.decode_p50 !== null; });
    var f = frame(host, { x: extent(rows.map(function (r) { return r.ttft_p50; }).concat([0]), 0.08), y: extent(rows.map(function (r) { return r.decode_p50; }).concat([0]), 0.08), xlabel: "TTFT p50", ylabel: "decode tok/s p50", xfmt: function (t) { return fmt(t, "ms"); } });
    rows.forEach(function (r, i) { point(f, r.ttft_p50, r.decode_p50, COLORS[i % COLORS.length], r.label + "\nTTFT p50 " + fmt(r.ttft_p50, "ms") + "\ndecode " + fmt(r.decode_p50, "tok/s"), 5); });
    legend(host, rows.map(function (r) { return r.label; }));
  };
  // Horizontal bars: p50 with a whisker to p95 (E2E) per row.
  draw["latency-bars"] = function (host) {
    var rows = (DATA.rows || []).filter(function (r) { return r.e2e_p50 !== null; });
    var hi = Math.max.apply(null, rows.map(function (r) { return r.e2e_p95 || r.e2e_p50; }).concat([1]));
    var longest = Math.max.apply(null, rows.map(function (r) { return r.label.length; }).concat([8]));
    var f = frame(host, { x: [0, hi * 1.05], y: [0, rows.length], ycats: true, left: Math.min(320, 16 + 6.4 * longest), width: 540 + Math.max(0, 6.4 * longest - 154), height: 60 + rows.length * 28, xlabel: "E2E latency: bar p50, whisker p95", ylabel: "", xfmt: function (t) { return fmt(t, "ms"); } });
    rows.forEach(function (r, i) {
      var y = f.sy(rows.length - i) + 4, color = COLORS[i % COLORS.length];
      el("text", { x: f.m.l - 6, y: y + 12, "text-anchor": "end" }, f.svg).textContent = r.label;
      el("rect", { x: f.sx(0), y: y, width: f.sx(r.e2e_p50) - f.sx(0), height: 16, fill: color, "class": "pt", "data-tip": r.label + "\nE2E p50 " + fmt(r.e2e_p50, "ms") + "\nE2E p95 " + fmt(r.e2e_p95, "ms") }, f.svg);
      if (r.e2e_p95 !== null) { el("line", { x1: f.sx(r.e2e_p50), x2: f.sx(r.e2e_p95), y1: y + 8, y2: y + 8, stroke: "#1d2330" }, f.svg); }
    });
  };
  // One load point's requests: a bar per request from send to first token
  // (light) to end (dark), coloured by outcome.
  draw.timeline = function (host) {
    var t = (DATA.timelines || [])[+host.getAttribute("data-index")];
    var end = Math.max.apply(null, t.bars.map(function (b) { return b[2]; }).concat([1]));
    var rowH = Math.max(1, Math.min(6, 260 / Math.max(t.bars.length, 1)));
    var f = frame(host, { x: [0, end], y: [0, t.bars.length], ycats: true, width: 1100, height: 60 + Math.max(120, t.bars.length * rowH), left: 40, xlabel: "time since the point started", ylabel: "requests", xfmt: function (v) { return fmt(v, "ms"); } });
    var g = el("g", { "class": "timeline" }, f.svg);
    t.bars.forEach(function (b, i) {
      var y = f.sy(t.bars.length - i), color = OUTCOME[b[3]][0];
      var bar = el("g", { "class": "req pt", "data-tip": "request " + (i + 1) + " (" + OUTCOME[b[3]][1] + ")\nsent at " + fmt(b[0], "ms") + "\nfirst token +" + fmt(b[1] - b[0], "ms") + "\nend +" + fmt(b[2] - b[0], "ms") }, g);
      el("rect", { x: f.sx(b[0]), y: y, width: Math.max(0.5, f.sx(b[1]) - f.sx(b[0])), height: rowH, fill: color, opacity: 0.35 }, bar);
      el("rect", { x: f.sx(b[1]), y: y, width: Math.max(0.5, f.sx(b[2]) - f.sx(b[1])), height: rowH, fill: color }, bar);
    });
    legend(host, OUTCOME.map(function (o) { return [o[1], o[0]]; }));
  };
  // Latency against throughput, one line per model over its load points.
  draw["latency-throughput"] = function (host) {
    var pts = (DATA.points || []).filter(function (p) { return p.e2e_p50 !== null; });
    var models = [];
    pts.forEach(function (p) { if (models.indexOf(p.model) < 0) { models.push(p.model); } });
    var f = frame(host, { x: extent(pts.map(function (p) { return p.output_tps; }).concat([0]), 0.05), y: extent(pts.map(function (p) { return p.e2e_p95 || p.e2e_p50; }).concat([0]), 0.05), xlabel: "output tokens/s", ylabel: "E2E (p50 ●, p95 ○)", yfmt: function (t) { return fmt(t, "ms"); } });
    models.forEach(function (name, i) {
      var color = COLORS[i % COLORS.length], mine = pts.filter(function (p) { return p.model === name; });
      mine.sort(function (a, b) { return a.output_tps - b.output_tps; });
      el("path", { d: mine.map(function (p, j) { return (j ? "L" : "M") + f.sx(p.output_tps).toFixed(1) + "," + f.sy(p.e2e_p50).toFixed(1); }).join(""), fill: "none", stroke: color }, f.svg);
      mine.forEach(function (p) {
        var tip = name + " " + p.point + (p.client_bound ? " (client-bound)" : "") + "\n" + fmt(p.output_tps, "tok/s") + ", " + fmt(p.request_tps, "req/s") + "\nE2E p50 " + fmt(p.e2e_p50, "ms") + ", p95 " + fmt(p.e2e_p95, "ms") + "\nTTFT p50 " + fmt(p.ttft_p50, "ms");
        point(f, p.output_tps, p.e2e_p50, color, tip, 4);
        if (p.e2e_p95 !== null) { el("circle", { cx: f.sx(p.output_tps), cy: f.sy(p.e2e_p95), r: 4, fill: "#fff", stroke: color, "class": "pt", "data-tip": tip }, f.svg); }
      });
    });
    legend(host, models);
  };
  // Ratio and 95% CI per row on a log axis, the noise band shaded.
  draw.forest = function (host) {
    var rows = (DATA[host.getAttribute("data-set")] || []).filter(function (r) { return r.ratio !== null && r.ratio > 0; });
    var vals = [];
    rows.forEach(function (r) { vals.push(r.ratio, r.lo || r.ratio, r.hi || r.ratio, 1 + r.noise, 1 / (1 + r.noise)); });
    var x = extent(vals.filter(function (v) { return v > 0; }));
    x = [Math.min(x[0], 0.9) / 1.05, Math.max(x[1], 1.1) * 1.05];
    var f = frame(host, { x: x, y: [0, rows.length], ycats: true, logx: true, width: 1000, left: 330, height: 60 + rows.length * 22, xlabel: "new ÷ base (log scale); shaded: noise band", ylabel: "", xfmt: function (t) { return t.toFixed(t < 1 ? 2 : 1) + "×"; } });
    el("line", { x1: f.sx(1), x2: f.sx(1), y1: f.m.t, y2: f.H - f.m.b, stroke: "#1d2330", "stroke-dasharray": "3,3" }, f.svg);
    rows.forEach(function (r, i) {
      var y = f.sy(rows.length - i) + 11, color = VERDICT[r.verdict] || "#6b7385";
      var lo = Math.max(1 / (1 + r.noise), x[0]), hi = Math.min(1 + r.noise, x[1]);
      el("rect", { x: f.sx(lo), y: y - 9, width: f.sx(hi) - f.sx(lo), height: 18, fill: "#eef0f4" }, f.svg);
      el("text", { x: f.m.l - 6, y: y + 4, "text-anchor": "end" }, f.svg).textContent = r.label;
      if (r.lo !== null && r.hi !== null) { el("line", { x1: f.sx(Math.max(r.lo, x[0])), x2: f.sx(Math.min(r.hi, x[1])), y1: y, y2: y, stroke: color, "stroke-width": 2 }, f.svg); }
      el("rect", { x: f.sx(r.ratio) - 4, y: y - 4, width: 8, height: 8, fill: color, "class": "pt", "data-tip": r.label + "\n" + r.verdict + ": " + fmt(r.ratio, "×") + (r.lo !== null ? " (95% CI " + fmt(r.lo, "×") + " – " + fmt(r.hi, "×") + ")" : "") + "\nnoise ±" + (r.noise * 100).toFixed(0) + "%" }, f.svg);
    });
    legend(host, Object.keys(VERDICT).map(function (v) { return [v, VERDICT[v]]; }));
  };
  var VERDICT = { REGRESSED: "#c0392b", IMPROVED: "#1e8449", NOISY: "#b9770e", INCONCLUSIVE: "#6b7385", MACHINE: "#7d3c98", UNCHANGED: "#2f5fb3" };

  document.querySelectorAll("[data-chart]").forEach(function (host) {
    draw[host.getAttribute("data-chart")](host);
    done(host);
  });

  // Tables: click a header to sort (numbers by their `data-v`), type to filter.
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("thead th").forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var key = function (r) {
          var c = r.cells[col]; if (!c) { return ""; }
          var v = c.getAttribute("data-v");
          return v === null ? c.textContent.trim().toLowerCase() : (isFinite(parseFloat(v)) ? parseFloat(v) : null);
        };
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
      });
    });
  });
  // Switches: a checkbox shows or hides the rows that name it.
  document.querySelectorAll("input[data-toggle]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("[data-dimension=\"" + box.getAttribute("data-toggle") + "\"]").forEach(function (r) {
        r.style.display = box.checked ? "" : "none";
      });
    });
  });
  // Hover: the value of the mark under the pointer.
  var tip = document.getElementById("tip");
  document.addEventListener("mouseover", function (e) {
    var t = e.target.closest ? e.target.closest("[data-tip]") : null;
    if (!t) { tip.style.display = "none"; return; }
    tip.textContent = t.getAttribute("data-tip");
    tip.style.display = "block";
    tip.style.left = Math.min(e.clientX + 12, window.innerWidth - 260) + "px";
    tip.style.top = (e.clientY + 12) + "px";
  });
  document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
  document.body.setAttribute("data-ready", "1");
})();

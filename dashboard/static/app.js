// The dashboard's charts. Each <figure data-chart=KIND data-src=URL> is
// drawn with uPlot from the JSON at URL (the insights package's answer for
// the page's window). Each chart publishes the numbers it drew in
// window.fredtel.charts[KIND] = {labels or t, series: {name: values}}, so a
// test can check them against the insights JSON.
(function () {
  "use strict";

  var reg = (window.fredtel = { charts: {}, errors: [], pending: 0, ready: false });

  // Okabe-Ito: told apart by people with any common colour blindness.
  var C = {
    blue: "#0072B2", orange: "#E69F00", green: "#009E73", red: "#D55E00",
    purple: "#CC79A7", sky: "#56B4E9", brown: "#8C6D1F", grey: "#5F5F5F",
  };
  var palette = [C.blue, C.orange, C.green, C.red, C.purple, C.sky, C.brown, C.grey];

  var loads = {};
  function load(src) {
    if (!loads[src]) {
      loads[src] = fetch(src, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
        if (!r.ok) {
          return r.json().then(function (b) { throw new Error(b.error || "HTTP " + r.status); }, function () { throw new Error("HTTP " + r.status); });
        }
        return r.json();
      });
    }
    return loads[src];
  }

  function num(v) {
    if (v == null || isNaN(v)) return "–";
    return Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : String(Math.round(v * 10) / 10);
  }

  // ms prints milliseconds in the unit that reads best.
  function ms(v) {
    if (v == null || isNaN(v)) return "–";
    if (v >= 60000) return num(v / 60000) + " min";
    if (v >= 1000) return num(v / 1000) + " s";
    return num(v) + " ms";
  }

  function size(el) {
    var w = Math.max(260, el.clientWidth || 600);
    return { width: w, height: w < 500 ? 200 : 240 };
  }

  // Charts follow their figure's width (narrow windows, resizes).
  var observed = [];
  var ro = typeof ResizeObserver === "function" ? new ResizeObserver(function () {
    observed.forEach(function (o) {
      var s = size(o.el);
      if (Math.abs(s.width - o.u.width) > 4) o.u.setSize(s);
    });
  }) : null;
  function mount(el, opts, data) {
    var s = size(el);
    opts.width = s.width;
    opts.height = s.height;
    var u = new uPlot(opts, data, el);
    observed.push({ el: el, u: u });
    if (ro) ro.observe(el);
    return u;
  }

  var axisStyle = { stroke: "#333", grid: { stroke: "#e4e4e4", width: 1 }, ticks: { stroke: "#ccc", width: 1 } };
  function axis(extra) {
    var a = {};
    for (var k in axisStyle) a[k] = axisStyle[k];
    for (var k2 in extra || {}) a[k2] = extra[k2];
    return a;
  }

  // timeChart draws lines over bucket starts t (Unix seconds). series:
  // [{label, values, color, dash?}]; bands: [[upperIndex, lowerIndex]]
  // (1-based, as uPlot counts series).
  function timeChart(el, t, series, o) {
    o = o || {};
    var opts = {
      series: [{ label: "time" }].concat(series.map(function (s) {
        return {
          label: s.label, stroke: s.color, width: 2, dash: s.dash, spanGaps: false,
          fill: s.fill, points: { show: t.length < 40, size: 5 },
          value: function (u, v) { return o.unit === " ms" ? ms(v) : num(v) + (o.unit || ""); },
        };
      })),
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [axis(), axis({ values: function (u, vs) { return vs.map(function (v) { return o.unit === " ms" ? ms(v) : num(v) + (o.unit || ""); }); }, size: 70 })],
      bands: (o.bands || []).map(function (b) { return { series: b, fill: "rgba(0,114,178,0.12)" }; }),
    };
    if (o.bars) {
      opts.series.forEach(function (s, i) {
        if (i > 0) { s.paths = uPlot.paths.bars({ size: [0.8, 40] }); s.fill = s.stroke; s.width = 0; s.points = { show: false }; }
      });
    }
    return mount(el, opts, [t].concat(series.map(function (s) { return s.values; })));
  }

  // barChart draws bars per category (labels), stacked in the order of
  // series (the first at the bottom). series: [{label, values, color}].
  function barChart(el, labels, series, o) {
    o = o || {};
    var n = labels.length;
    var x = labels.map(function (_, i) { return i; });
    var acc = labels.map(function () { return 0; });
    var stacked = series.map(function (s) {
      acc = acc.map(function (a, i) { return a + (s.values[i] || 0); });
      return acc.slice();
    });
    // The top of the stack is drawn first; each lower segment paints over.
    var order = series.map(function (_, i) { return i; }).reverse();
    // Labels turn when they would not fit side by side (about 7 px a letter).
    var letters = labels.reduce(function (a, l) { return a + String(l).length + 2; }, 0);
    var many = letters * 7 > size(el).width - 80;
    var opts = {
      series: [{ label: o.xLabel || "", value: function (u, v) { return v == null ? "" : labels[v]; } }].concat(order.map(function (i) {
        var s = series[i];
        return {
          label: s.label, stroke: s.color, fill: s.color, width: 0, points: { show: false },
          paths: uPlot.paths.bars({ size: [0.7, 60] }),
          value: function (u, v, si, idx) { return idx == null ? "" : num(s.values[idx]); },
        };
      })),
      scales: {
        x: { time: false, range: function () { return [-0.5, n - 0.5]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
      },
      axes: [
        axis({
          splits: function () { return x; },
          values: function (u, vs) { return vs.map(function (v) { return labels[v] == null ? "" : String(labels[v]); }); },
          rotate: many ? -40 : 0, size: many ? 90 : 40, grid: { show: false },
        }),
        axis({ size: 60, values: function (u, vs) { return vs.map(num); } }),
      ],
      legend: { live: true },
    };
    return mount(el, opts, [x].concat(order.map(function (i) { return stacked[i]; })));
  }

  function publish(kind, labelsOrT, series, isTime) {
    var out = { series: {} };
    out[isTime ? "t" : "labels"] = labelsOrT;
    series.forEach(function (s) { out.series[s.key || s.label] = s.values; });
    reg.charts[kind] = out;
  }

  function col(list, f) { return list.map(f); }

  function ratio(a, b) {
    return a.map(function (v, i) { return b[i] > 0 ? (100 * v) / b[i] : null; });
  }

  var draw = {
    // ---- overview (trends) ----
    activity: function (el, tr) {
      var s = [{ key: "sessions", label: "sessions", values: tr.sessions, color: C.blue }];
      // Self-hosted tables have no user id: "users" would only repeat sessions.
      if (tr.counted === "users") s.push({ key: "users", label: "users", values: tr.users, color: C.orange, dash: [6, 3] });
      publish("activity", tr.t, s, true);
      timeChart(el, tr.t, s);
    },
    volume: function (el, tr) {
      var s = [
        { key: "turns", label: "turns", values: tr.turns, color: C.blue },
        { key: "tool_calls", label: "tool calls", values: tr.tool_calls, color: C.green },
      ];
      publish("volume", tr.t, s, true);
      timeChart(el, tr.t, s);
    },
    rates: function (el, tr) {
      var s = [
        { key: "turn_error_pct", label: "turns ending in an API error", values: ratio(tr.turn_errors, tr.turns), color: C.red },
        { key: "tool_error_pct", label: "tool calls failing", values: ratio(tr.tool_errors, tr.tool_calls), color: C.orange },
        { key: "retries_per_100_turns", label: "API retries per 100 turns", values: ratio(tr.retries, tr.turns), color: C.purple, dash: [6, 3] },
        { key: "denied_pct", label: "tool calls denied", values: ratio(tr.denied, tr.tool_calls), color: C.grey, dash: [2, 3] },
      ];
      publish("rates", tr.t, s, true);
      timeChart(el, tr.t, s, { unit: "" });
    },
    // ---- stuck ----
    "duration-bands": function (el, tr) {
      var s = [
        { key: "p99", label: "p99", values: tr.duration_p99, color: C.sky },
        { key: "p95", label: "p95", values: tr.duration_p95, color: C.orange, dash: [6, 3] },
        { key: "p50", label: "p50", values: tr.duration_p50, color: C.blue },
      ];
      publish("duration-bands", tr.t, s, true);
      timeChart(el, tr.t, s, { bands: [[1, 3]], unit: " ms" });
    },
    "finish-reasons": function (el, r) {
      var models = r.stuck.models;
      var reasons = {};
      models.forEach(function (m) { Object.keys(m.finish_reasons).forEach(function (k) { reasons[k] = true; }); });
      var names = Object.keys(reasons).sort();
      var s = names.map(function (k, i) {
        return { key: k, label: k, values: col(models, function (m) { return m.finish_reasons[k] || 0; }), color: palette[i % palette.length] };
      });
      var labels = col(models, function (m) { return m.model; });
      publish("finish-reasons", labels, s);
      barChart(el, labels, s);
    },
    "duration-hist": function (el, tr) {
      var s = function (e) { return e >= 1000 ? e / 1000 + " s" : e + " ms"; };
      hist(el, "duration-hist", tr, tr.duration_edges_ms, "duration", function (e, next) { return next == null ? "≥ " + s(e) : s(e) + "–" + s(next); });
    },
    "toolcall-hist": function (el, tr) {
      hist(el, "toolcall-hist", tr, tr.tool_call_edges, "tool_calls", function (e, next) {
        return next == null ? "≥ " + e : next - e === 1 ? String(e) : e + "–" + (next - 1);
      });
    },
    // ---- commands ----
    "command-uses": function (el, r) {
      var cs = r.dead_commands.commands;
      var labels = col(cs, function (c) { return "/" + c.command; });
      var s = [{ key: "uses", label: "uses", values: col(cs, function (c) { return c.uses; }), color: C.blue }];
      publish("command-uses", labels, s);
      barChart(el, labels, s);
    },
    // ---- retries ----
    "retries-time": function (el, tr) {
      var s = [
        { key: "retries", label: "API retries", values: tr.retries, color: C.purple },
        { key: "turn_errors", label: "turns ending in an API error", values: tr.turn_errors, color: C.red, dash: [6, 3] },
      ];
      publish("retries-time", tr.t, s, true);
      timeChart(el, tr.t, s);
    },
    "retry-errors": function (el, r) {
      var es = r.retry_storms.error_types;
      var labels = col(es, function (e) { return e.error_type; });
      var s = [{ key: "retries", label: "retries", values: col(es, function (e) { return e.retries; }), color: C.purple }];
      publish("retry-errors", labels, s);
      barChart(el, labels, s);
    },
    "retry-attempts": function (el, r) {
      var as = r.retry_storms.attempts;
      var labels = col(as, function (a) { return String(a.attempt); });
      var s = [{ key: "retries", label: "retries", values: col(as, function (a) { return a.retries; }), color: C.blue }];
      publish("retry-attempts", labels, s);
      barChart(el, labels, s, { xLabel: "attempt" });
    },
    // ---- loops ----
    "loops-by-tool": function (el, r) {
      var bt = r.tool_loops.by_tool;
      var byTool = {};
      r.tool_loops.loops.forEach(function (l) {
        var k = byTool[l.tool_name] || (byTool[l.tool_name] = { stuck: 0, polling: 0, unknown: 0 });
        k[l.kind]++;
      });
      var labels = col(bt, function (b) { return b.tool_name; });
      var s = [
        { key: "stuck", label: "stuck", values: col(bt, function (b) { return b.stuck; }), color: C.red },
        { key: "polling", label: "polling", values: col(bt, function (b) { return (byTool[b.tool_name] || {}).polling || 0; }), color: C.sky },
        { key: "unknown", label: "unknown", values: col(bt, function (b) { return (byTool[b.tool_name] || {}).unknown || 0; }), color: C.grey },
      ];
      publish("loops-by-tool", labels, s);
      barChart(el, labels, s);
    },
    "loop-repeats": function (el, r) {
      var counts = {};
      var maxRep = 0;
      r.tool_loops.loops.forEach(function (l) { counts[l.repeats] = (counts[l.repeats] || 0) + 1; maxRep = Math.max(maxRep, l.repeats); });
      var labels = [], values = [];
      for (var k = r.tool_loops.min_repeats; k <= maxRep; k++) { labels.push(String(k)); values.push(counts[k] || 0); }
      var s = [{ key: "loops", label: "loops", values: values, color: C.red }];
      publish("loop-repeats", labels, s);
      barChart(el, labels, s, { xLabel: "calls in the run" });
    },
    // ---- plan ----
    "plan-funnel": function (el, r) {
      var p = r.plan_mode;
      var labels = ["sessions", "plan sessions", "acted after planning", "left plan without acting", "back to plan within 2 turns"];
      var s = [{ key: "sessions", label: "sessions", values: [p.sessions, p.plan_sessions, p.plan_to_act, p.left_plan_without_acting, p.back_to_plan_within_2_turns], color: C.blue }];
      publish("plan-funnel", labels, s);
      barChart(el, labels, s);
    },
    // ---- permissions ----
    permissions: function (el, r) {
      var ts = r.permissions.tools;
      var labels = col(ts, function (t) { return t.tool_name; });
      var s = [
        { key: "auto_allowed", label: "auto-allowed", values: col(ts, function (t) { return t.auto_allowed; }), color: C.green },
        { key: "user_allowed", label: "user-allowed", values: col(ts, function (t) { return t.user_allowed; }), color: C.blue },
        { key: "denied", label: "denied", values: col(ts, function (t) { return t.denied; }), color: C.red },
      ];
      publish("permissions", labels, s);
      barChart(el, labels, s);
    },
    // ---- session ----
    "session-turns": function (el, tl) {
      var labels = col(tl.turns, function (t) { return String(t.seq); });
      var s = [
        { key: "duration_ms", label: "duration (ms)", values: col(tl.turns, function (t) { return t.duration_ms; }), color: C.blue },
      ];
      var calls = col(tl.turns, function (t) { return t.calls.length; });
      var loops = col(tl.turns, function (t) { return t.calls.filter(function (c) { return c.loop != null; }).length; });
      publish("session-turns", labels, s.concat([{ key: "tool_calls", values: calls }, { key: "loop_calls", values: loops }]));
      barChart(el, labels, s, { xLabel: "turn" });
    },
  };

  // hist stacks the models' histograms over the bins of edges.
  function hist(el, kind, tr, edges, field, fmt) {
    var labels = edges.map(function (e, i) { return fmt(e, i + 1 < edges.length ? edges[i + 1] : null); });
    var s = tr.models.map(function (m, i) {
      return { key: m.model, label: m.model, values: m[field], color: palette[i % palette.length] };
    });
    publish(kind, labels, s);
    barChart(el, labels, s);
  }

  function fail(fig, err) {
    reg.errors.push(String(err && err.message || err));
    var p = document.createElement("p");
    p.className = "chart-error";
    p.textContent = "This chart could not be drawn: " + (err && err.message || err);
    fig.appendChild(p);
  }

  function start() {
    var figs = document.querySelectorAll("figure[data-chart]");
    reg.pending = figs.length;
    if (!figs.length) { reg.ready = true; return; }
    Array.prototype.forEach.call(figs, function (fig) {
      var kind = fig.getAttribute("data-chart");
      var plot = fig.querySelector(".plot");
      load(fig.getAttribute("data-src")).then(function (data) {
        if (!draw[kind]) throw new Error("unknown chart " + kind);
        draw[kind](plot, data);
      }).catch(function (err) { fail(fig, err); }).then(function () {
        reg.pending--;
        if (reg.pending === 0) reg.ready = true;
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

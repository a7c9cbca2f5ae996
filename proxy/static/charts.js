// The status page's charts, drawn by uPlot (static/vendor/) from /api/v6/usage and
// /api/v6/budgets: the last day by hour, or the last 30 days by day (the range picker). Each
// chart's data stays on window.l104Charts[id].data, so what a chart shows can be checked against
// the API.
"use strict";

window.l104Charts = {};
const HOUR = 3600;
const RANGES = { day: { span: 24 * HOUR, step: "hour", size: HOUR }, month: { span: 30 * 24 * HOUR, step: "day", size: 24 * HOUR } };

function range() {
  const picker = document.getElementById("range");
  return RANGES[picker ? picker.value : "day"] || RANGES.day;
}
const COLORS = ["#58a6ff", "#f85149", "#3fb950", "#d29922", "#bc8cff", "#39c5cf", "#ff7b72"];

function usageHeaders() {
  const key = document.getElementById("key");
  return key && key.value ? { "x-goog-api-key": key.value } : {};
}

async function getJSON(path) {
  const answer = await fetch(path, { headers: usageHeaders(), credentials: "same-origin" });
  return answer.ok ? answer.json() : null;
}

// rows of {at, <group>, ...} as uPlot's columns: the buckets, then one series per (group, field).
function columns(rows, group, fields, since) {
  const size = range().size;
  const hours = [];
  for (let t = since - (since % size); t <= Date.now() / 1000; t += size) hours.push(t);
  const names = [...new Set(rows.map((r) => r[group]))].sort();
  const series = [];
  const data = [hours];
  for (const name of names) {
    for (const [field, label] of fields) {
      const byHour = new Map(rows.filter((r) => r[group] === name).map((r) => [r.at, r[field] ?? 0]));
      data.push(hours.map((h) => byHour.get(h) ?? 0));
      series.push(name + " " + label);
    }
  }
  return { data, series };
}

// Small numbers (dollars of a few requests) keep two significant digits on the axis.
const compact = (u, ticks) => ticks.map((v) => (Math.abs(v) >= 1 || v === 0 ? String(v) : v.toPrecision(2)));

function draw(id, title, columnsOf) {
  const el = document.getElementById(id);
  if (!el || typeof uPlot === "undefined") return;
  el.replaceChildren();
  const opts = {
    title,
    width: Math.min(900, el.clientWidth || 900),
    height: 220,
    series: [{}, ...columnsOf.series.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2 }))],
    axes: [{ stroke: "#8b93a7" }, { stroke: "#8b93a7", values: compact, size: 84 }],
  };
  const chart = new uPlot(opts, columnsOf.data, el);
  window.l104Charts[id] = { data: columnsOf.data, series: columnsOf.series, chart };
}

async function refreshCharts() {
  const { span, step } = range();
  const since = Math.floor(Date.now() / 1000) - span;
  const byModel = await getJSON(`/api/v6/usage?by=model&step=${step}&from=${since}`);
  const byClient = await getJSON(`/api/v6/usage?by=client&step=${step}&from=${since}`);
  const budgets = await getJSON("/api/v6/budgets");
  if (byModel) {
    draw("chart-requests", "Requests and 429s per model",
      columns(byModel.rows, "model", [["requests", "requests"], ["rate_limited", "429s"]], since));
    draw("chart-rotations", "Rotations per model",
      columns(byModel.rows, "model", [["rotations", "rotations"]], since));
  }
  if (byClient) {
    const withTokens = byClient.rows.map((r) => ({ ...r, tokens: r.input_tokens + r.output_tokens }));
    draw("chart-tokens", "Tokens per client", columns(withTokens, "client", [["tokens", "tokens"]], since));
    draw("chart-cost", "Cost per client (USD)", columns(byClient.rows, "client", [["cost_usd", "USD"]], since));
  }
  if (byClient && budgets) {
    // Each money budget against what its client spent in that budget's period: by the hour a
    // day's running sum, by the day each day's spend (a day budget) or the running sum (a month
    // budget); beside the budget's own line.
    const hourly = range().step === "hour";
    const limits = budgets.budgets.filter(
      (b) => b.budget === "usd_per_day" || (b.budget === "usd_per_month" && !hourly)
    );
    const base = columns(byClient.rows, "client", [["cost_usd", "USD"]], since);
    const data = [base.data[0]];
    const series = [];
    for (const b of limits) {
      const at = base.series.indexOf(b.client + " USD");
      const spent = at < 0 ? base.data[0].map(() => 0) : base.data[at + 1];
      const running = hourly || b.budget === "usd_per_month";
      let sum = 0;
      data.push(running ? spent.map((v) => (sum += v)) : spent);
      data.push(base.data[0].map(() => b.limit));
      series.push(b.client + " spent", b.client + " " + b.budget);
    }
    if (series.length) draw("chart-budget", "Spend against budget (USD)", { data, series });
  }
  const table = document.getElementById("budgets");
  if (budgets && table) {
    table.replaceChildren();
    for (const b of budgets.budgets) {
      const row = document.createElement("tr");
      row.dataset.client = b.client;
      row.dataset.budget = b.budget;
      const share = b.limit ? Math.min(100, (100 * b.spent) / b.limit) : 0;
      for (const text of [b.client, b.budget, String(b.spent), String(b.limit)]) {
        const td = document.createElement("td");
        td.textContent = text;
        row.appendChild(td);
      }
      const bar = document.createElement("td");
      const meter = document.createElement("meter");
      meter.min = 0; meter.max = 100; meter.value = share;
      bar.appendChild(meter);
      row.appendChild(bar);
      table.appendChild(row);
    }
  }
  document.body.dataset.chartsDrawn = String(Date.now());
}

refreshCharts();
setInterval(refreshCharts, 60000);
// A client key typed into the page shows that client's own usage; the picker, another range.
document.getElementById("key")?.addEventListener("change", refreshCharts);
document.getElementById("range")?.addEventListener("change", refreshCharts);

// The status page: a snapshot, then live updates over SSE; the prompt streams over SSE too.
"use strict";

const $ = (id) => document.getElementById(id);
let chains = [];
let lastCounts = null;

function fmtSeconds(s) {
  s = Math.max(0, Math.ceil(s));
  if (s < 120) return s + "s";
  if (s < 7200) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function renderChains() {
  const root = $("chains");
  root.replaceChildren();
  const select = $("chain");
  const chosen = select.value;
  select.replaceChildren();
  for (const chain of chains) {
    const option = document.createElement("option");
    option.value = option.textContent = chain.name;
    select.appendChild(option);
    const table = document.createElement("table");
    const caption = document.createElement("caption");
    caption.textContent = chain.name;
    table.appendChild(caption);
    const head = document.createElement("tr");
    for (const h of ["member", "state", "cooldown", "keys", "learned pace"]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    }
    table.appendChild(head);
    for (const m of chain.members) {
      const row = document.createElement("tr");
      row.dataset.model = m.model;
      cell(row, m.label);
      cell(row, m.state, "state " + m.state);
      const cd = cell(row, m.state === "cooling" ? fmtSeconds(m.cooldown_s) : "–", "cooldown");
      cd.dataset.until = m.state === "cooling" ? String(Date.now() + m.cooldown_s * 1000) : "";
      cell(row, (m.keys || []).map(describeKey).join(", ") || "–", "keys");
      cell(row, m.pace ? m.pace.requests_per_minute + "/min (" + m.pace.source + ")" : "–");
      table.appendChild(row);
    }
    root.appendChild(table);
  }
  if (chosen) select.value = chosen;
}

function describeKey(k) {
  // Keys are named by their position, never their value.
  const wait = k.cooldown_s ?? k.for_s ?? k.wait_s;
  return "#" + k.key + " " + k.state + (wait ? " " + fmtSeconds(wait) : "");
}

function renderCounts(c) {
  lastCounts = c;
  $("requests_total").textContent = c.requests_total;
  $("model_rotations").textContent = c.model_rotations;
  $("quota_429").textContent = Object.values(c.model_429_count).reduce((a, b) => a + b, 0);
  $("rate_limited_total").textContent = c.rate_limited_total;
  $("uptime").textContent = fmtSeconds(c.uptime_s);
}

function applySnapshot(s) {
  chains = s.chains;
  $("key-label").hidden = !s.auth;
  renderChains();
  renderCounts(s.counts);
}

function updateMember(change) {
  for (const chain of chains) {
    for (const m of chain.members) {
      if (m.model === change.model) Object.assign(m, change);
    }
  }
  renderChains();
}

function tick() {
  for (const td of document.querySelectorAll("td.cooldown")) {
    if (td.dataset.until) td.textContent = fmtSeconds((Number(td.dataset.until) - Date.now()) / 1000);
  }
}

function live() {
  const source = new EventSource("/api/v6/events");
  source.addEventListener("open", () => { $("live").textContent = "live"; $("live").className = "badge on"; });
  source.addEventListener("error", () => { $("live").textContent = "reconnecting…"; $("live").className = "badge off"; });
  source.addEventListener("snapshot", (e) => applySnapshot(JSON.parse(e.data)));
  source.addEventListener("counts", (e) => renderCounts(JSON.parse(e.data)));
  source.addEventListener("state", (e) => updateMember(JSON.parse(e.data)));
}

function ask(event) {
  event.preventDefault();
  const params = new URLSearchParams({ signal: $("signal").value, model: $("chain").value });
  if ($("session").value) params.set("session", $("session").value);
  if ($("key").value) params.set("key", $("key").value);
  const answer = $("answer");
  const meta = $("answer-meta");
  answer.textContent = "";
  answer.className = "";
  meta.textContent = "…";
  $("send").disabled = true;
  const source = new EventSource("/api/v6/stream?" + params.toString());
  const finish = () => { source.close(); $("send").disabled = false; };
  source.addEventListener("chunk", (e) => { answer.textContent += JSON.parse(e.data).text; });
  source.addEventListener("done", (e) => {
    const d = JSON.parse(e.data);
    meta.textContent = "answered by " + d.model + " · " + (d.usage.totalTokenCount || 0) + " tokens";
    finish();
  });
  source.addEventListener("error", (e) => {
    if (e.data) {
      const err = JSON.parse(e.data);
      answer.className = "error";
      answer.textContent = err.status + ": " + err.message;
      meta.textContent = "";
    } else if (meta.textContent === "…") {
      meta.textContent = "the stream closed";
    }
    finish();
  });
}

fetch("/api/v6/status").then((r) => r.json()).then(applySnapshot);
live();
setInterval(tick, 1000);
$("prompt").addEventListener("submit", ask);

// The energy platform's page: pick a property, submit readings (one, or a CSV file), see the
// property's consumption and carbon as charts, its recommendations, and RED alerts that arrive
// over the WebSocket without a reload. Every refusal shows the API's own error body.
"use strict";

const REFRESH_MS = 5000;
const RECONNECT_MAX_MS = 10000;
const state = { property: null, since: 0, socket: null, reconnectMs: 500, charts: {}, seenAlerts: new Set() };

const $ = (id) => document.getElementById(id);

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// datetime-local gives a wall-clock time; send it with this browser's offset at that instant,
// so readings keep the time zone they were taken in (DST included).
function withOffset(local) {
  const date = new Date(local);
  const minutes = -date.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  const pad = (n) => String(n).padStart(2, "0");
  return `${local.length === 16 ? `${local}:00` : local}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function showFieldErrors(error) {
  for (const span of document.querySelectorAll("#reading-form .error")) span.textContent = "";
  for (const input of document.querySelectorAll("#reading-form [aria-invalid]")) {
    input.removeAttribute("aria-invalid");
  }
  if (!error) return;
  const field = error.field && $(`${error.field}-error`);
  if (field) {
    field.textContent = error.message;
    $(error.field).setAttribute("aria-invalid", "true");
  }
}

async function submitReading(event) {
  event.preventDefault();
  const status = $("reading-status");
  if (!state.property) {
    status.textContent = "Choose a property first.";
    return;
  }
  const form = event.target;
  const body = {
    propertyId: state.property,
    kwh: form.kwh.value === "" ? null : Number(form.kwh.value),
    kind: form.kind.value,
    periodStart: form.periodStart.value ? withOffset(form.periodStart.value) : null,
    periodEnd: form.periodEnd.value ? withOffset(form.periodEnd.value) : null,
  };
  if (form.region.value.trim()) body.region = form.region.value.trim();
  for (const key of Object.keys(body)) if (body[key] === null) delete body[key];

  const response = await fetch("api/v1/consumption", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID(), ...authHeaders() },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.ok) {
    showFieldErrors(null);
    status.textContent = `Accepted (event ${answer.eventId}).`;
    status.className = "ok";
    setTimeout(refresh, 300);
  } else {
    showFieldErrors(answer.error);
    const where = answer.error && answer.error.field ? `${answer.error.field}: ` : "";
    status.textContent = `Refused: ${where}${answer.error ? answer.error.message : response.statusText}`;
    status.className = "error";
  }
}

function uploadCsv(event) {
  event.preventDefault();
  const file = $("csv-file").files[0];
  const status = $("csv-status");
  const progress = $("csv-progress");
  if (!file) return;
  const request = new XMLHttpRequest();
  request.open("POST", "api/v1/consumption/batch");
  request.setRequestHeader("Content-Type", "text/csv");
  for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
  progress.hidden = false;
  progress.value = 0;
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
  };
  request.onload = () => {
    progress.value = 100;
    let answer = {};
    try { answer = JSON.parse(request.responseText); } catch { /* shown below */ }
    if (answer.items) {
      const refused = answer.items.filter((i) => i.error).slice(0, 5)
        .map((i) => `row ${i.index + 1}: ${i.error.field ? `${i.error.field}: ` : ""}${i.error.message}`);
      status.textContent = `${answer.accepted} accepted, ${answer.rejected} refused. ${refused.join("; ")}`;
    } else {
      status.textContent = `Refused: ${answer.error ? answer.error.message : request.statusText}`;
    }
    setTimeout(refresh, 300);
  };
  request.onerror = () => { status.textContent = "Upload failed: the server could not be reached."; };
  request.send(file);
}

async function getJson(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function lineChart(canvasId, label, color) {
  return new Chart($(canvasId), {
    type: "line",
    data: { datasets: [{ label, data: [], borderColor: color, backgroundColor: color, tension: 0.2 }] },
    options: {
      animation: false,
      parsing: false,
      scales: {
        x: {
          type: "linear",
          ticks: {
            maxTicksLimit: 6,
            callback: (v) => new Date(v).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }),
          },
        },
        y: { beginAtZero: true, title: { display: true, text: label } },
      },
      plugins: { tooltip: { callbacks: { title: (items) => new Date(items[0].parsed.x).toLocaleString() } } },
    },
  });
}

// Keeps a lone point (or a short series) away from the chart's edges: an hour either side.
function fitTimeAxis(chart) {
  const xs = chart.data.datasets[0].data.map((p) => p.x);
  if (xs.length === 0) return;
  chart.options.scales.x.min = Math.min(...xs) - 3600 * 1000;
  chart.options.scales.x.max = Math.max(...xs) + 3600 * 1000;
}

function renderHistory(items) {
  const body = $("history").querySelector("tbody");
  body.replaceChildren(...items.slice(-20).reverse().map((r) => {
    const row = document.createElement("tr");
    for (const text of [new Date(r.periodStart).toLocaleString(), new Date(r.periodEnd).toLocaleString(),
      r.kwh.toFixed(3), r.kind, r.region]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
  state.charts.energy.data.datasets[0].data =
    items.map((r) => ({ x: Date.parse(r.periodStart), y: r.kwh }));
  fitTimeAxis(state.charts.energy);
  state.charts.energy.update();
}

function renderRecommendations(items, readings) {
  const startOf = new Map(readings.map((r) => [r.eventId, Date.parse(r.periodStart)]));
  state.charts.carbon.data.datasets[0].data = items
    .filter((r) => startOf.has(r.eventId))
    .map((r) => ({ x: startOf.get(r.eventId), y: r.kgCo2e }))
    .sort((a, b) => a.x - b.x);
  fitTimeAxis(state.charts.carbon);
  state.charts.carbon.update();

  const list = $("recommendations");
  list.replaceChildren(...items.slice(-5).reverse().map((r) => {
    const item = document.createElement("li");
    const advice = Array.isArray(r.advice) ? r.advice : [];
    if (r.suspicion) advice.push({ action: `Check this reading: ${r.suspicion}.`, savingKwh: 0, savingKgCo2e: 0 });
    const lines = advice.map((a) => `${a.action} (saves ${Number(a.savingKwh).toFixed(2)} kWh, ` +
      `${Number(a.savingKgCo2e).toFixed(2)} kgCO2e)`);
    item.textContent = `${r.kwh.toFixed(2)} kWh = ${r.kgCo2e.toFixed(2)} kgCO2e (rating ${r.rating}). ` +
      (lines.length ? lines.join(" ") : "No advice for this reading.");
    return item;
  }));
}

function addAlert(alert, live) {
  if (state.seenAlerts.has(alert.alertId)) return;
  state.seenAlerts.add(alert.alertId);
  const item = document.createElement("li");
  item.textContent = `${new Date(alert.raisedAt).toLocaleString()}: ${alert.reason} ` +
    `(${alert.kwh.toFixed(2)} kWh, limit ${alert.threshold.toFixed(2)} kWh)`;
  $("alerts").prepend(item);
  if (live) {
    const banner = $("alert-banner");
    banner.textContent = `RED alert for ${alert.propertyId}: ${alert.reason}`;
    banner.hidden = false;
  }
}

async function refresh() {
  if (!state.property) return;
  const base = `api/v1/properties/${encodeURIComponent(state.property)}`;
  try {
    const [readings, recommendations, alerts] = await Promise.all([
      getJson(`${base}/consumption?limit=200`),
      getJson(`${base}/recommendations?limit=200`),
      getJson(`${base}/alerts?limit=50`),
    ]);
    renderHistory(readings.items);
    renderRecommendations(recommendations.items, readings.items);
    // An alert raised since the property was opened is news, whichever path brought it first
    // (the socket or this poll); older ones only fill the list.
    for (const alert of alerts.items) {
      addAlert({ ...alert, propertyId: state.property }, Date.parse(alert.raisedAt) >= state.since);
    }
  } catch (error) {
    $("reading-status").textContent = `Could not load the property: ${error.message}`;
  }
}

function connectAlerts() {
  if (state.socket) state.socket.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const params = new URLSearchParams({ propertyId: state.property });
  const token = $("token").value.trim();
  if (token) params.set("token", token);
  const socket = new WebSocket(`${scheme}://${location.host}/ws/alerts?${params}`);
  state.socket = socket;
  socket.onopen = () => {
    state.reconnectMs = 500;
    $("connection").textContent = "Live alerts: connected";
  };
  socket.onmessage = (message) => {
    try { addAlert(JSON.parse(message.data), true); } catch { /* not an alert */ }
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    $("connection").textContent = "Live alerts: reconnecting";
    setTimeout(() => state.socket === socket && connectAlerts(), state.reconnectMs);
    state.reconnectMs = Math.min(state.reconnectMs * 2, RECONNECT_MAX_MS);
  };
}

function choose(event) {
  event.preventDefault();
  const input = $("property");
  if (!input.checkValidity()) {
    input.reportValidity();
    return;
  }
  state.property = input.value.trim();
  state.since = Date.now();
  state.seenAlerts.clear();
  $("alerts").replaceChildren();
  $("alert-banner").hidden = true;
  const known = new Set(JSON.parse(localStorage.getItem("properties") || "[]"));
  known.add(state.property);
  localStorage.setItem("properties", JSON.stringify([...known]));
  fillKnown();
  connectAlerts();
  refresh();
}

function fillKnown() {
  const known = JSON.parse(localStorage.getItem("properties") || "[]");
  $("known-properties").replaceChildren(...known.map((p) => Object.assign(document.createElement("option"), { value: p })));
}

document.addEventListener("DOMContentLoaded", () => {
  state.charts.energy = lineChart("energy-chart", "kWh", "#2b6cb0");
  state.charts.carbon = lineChart("carbon-chart", "kgCO2e", "#c05621");
  fillKnown();
  $("property-form").addEventListener("submit", choose);
  $("reading-form").addEventListener("submit", submitReading);
  $("csv-form").addEventListener("submit", uploadCsv);
  setInterval(refresh, REFRESH_MS);
});

// The live page: polls /api/status every second and draws every pipeline,
// its queues and what it did last. Everything it shows is text: names,
// routing keys, reasons and payloads come from messages and are never
// taken for markup.
"use strict";

let previous = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  }
  return e;
}

function rate(name, field, now, value) {
  if (!previous) return "";
  const p = previous.status.pipelines.find((x) => x.name === name);
  const seconds = (now - previous.at) / 1000;
  if (!p || seconds <= 0) return "";
  return ((value - p[field]) / seconds).toFixed(1) + "/s";
}

// when is a time with its date, in UTC, as the logs write it.
function when(at) {
  return new Date(at).toISOString().replace("T", " ").slice(0, 19);
}

// Counters that need an operator's eye when they are not zero.
const alarming = new Set(["parked", "refused"]);

function counters(p, now) {
  const box = el("div", { class: "counters" });
  for (const [field, label] of [["consumed", "consumed"], ["published", "published"], ["dropped", "dropped"],
    ["parked", "parked"], ["waited", "sent to wait"], ["retried", "retried"],
    ["refused", "refused by a consumer's queue"], ["in_flight", "in flight"]]) {
    const cls = alarming.has(field) && p[field] > 0 ? "counter alert" : "counter";
    box.append(el("div", { class: cls, "data-counter": field },
      el("div", { class: "value" }, p[field]),
      el("div", { class: "label" }, label),
      el("div", { class: "rate" }, field === "in_flight" ? "" : rate(p.name, field, now, p[field]))));
  }
  return box;
}

function queues(p) {
  const t = el("table", { class: "queues" }, el("tr", {}, el("th", {}, "queue"), el("th", {}, "role"),
    el("th", {}, "messages"), el("th", {}, "cap"), el("th", {}, "")));
  for (const q of p.queues) {
    const known = q.messages >= 0;
    const share = known && q.max_length > 0 ? Math.min(1, q.messages / q.max_length) : 0;
    // A queue that holds anything shows at least a sliver.
    const width = share > 0 ? Math.max(share * 100, 2) : 0;
    const bar = el("div", { class: share > 0.8 ? "bar high" : "bar", title: (known ? q.messages : "?") + " of " + q.max_length },
      el("div", { style: "width:" + width.toFixed(1) + "%" }));
    t.append(el("tr", { "data-queue": q.name },
      el("td", { class: "mono" }, q.name), el("td", {}, q.role),
      el("td", { class: "num depth" }, known ? q.messages : "…"), el("td", { class: "num" }, q.max_length), el("td", { class: "barcell" }, bar)));
  }
  return t;
}

function outputs(p) {
  if (!p.outputs || p.outputs.length === 0) return el("p", { class: "empty" }, "nothing published yet");
  const t = el("table", { class: "outputs" }, el("tr", {}, el("th", {}, "time (UTC)"), el("th", {}, "routing key · from"),
    el("th", {}, "CC"), el("th", {}, "payload")));
  for (const o of p.outputs.slice().reverse()) {
    const cc = el("td", { class: "mono cc" });
    for (const route of o.cc || []) cc.append(el("div", { title: route }, route));
    t.append(el("tr", {}, el("td", { class: "time" }, when(o.at)),
      el("td", { class: "mono" }, o.routing_key, el("div", { class: "source" }, "from " + o.source), el("div", { class: "source" }, "id " + o.message_id)),
      cc, el("td", { class: "mono preview" }, el("div", { title: o.preview }, o.preview))));
  }
  return t;
}

function parks(p) {
  if (!p.parks || p.parks.length === 0) return el("p", { class: "empty" }, "nothing parked");
  const t = el("table", { class: "parks" }, el("tr", {}, el("th", {}, "time (UTC)"), el("th", {}, "class"),
    el("th", {}, "source routing key"), el("th", {}, "reason")));
  for (const x of p.parks.slice().reverse()) {
    t.append(el("tr", {}, el("td", { class: "time" }, when(x.at)), el("td", { class: "class" }, x.class),
      el("td", { class: "mono" }, x.routing_key), el("td", {}, x.reason)));
  }
  return t;
}

function draw(status, now) {
  document.getElementById("client").textContent = status.client_id;
  const state = document.getElementById("state");
  state.textContent = status.ready ? "ready · connected to " + status.node : "not ready: connecting to the broker or starting consumers";
  state.className = status.ready ? "state ready" : "state down";
  if (status.blocked) {
    state.textContent += " · RabbitMQ blocks publishing (a memory or disk alarm): messages wait until it clears";
    state.className = "state down";
  }
  const main = document.getElementById("pipelines");
  main.replaceChildren(...status.pipelines.map((p) => el("section", { class: "pipeline", "data-pipeline": p.name },
    el("h2", {}, "pipeline " + p.name + " · translator " + p.translator),
    counters(p, now),
    // What needs action first: the parked messages, then the queues.
    el("h3", { class: p.parks && p.parks.length ? "attention" : "" }, "last parked (pulsetranslator dead list shows them all)"), parks(p),
    el("h3", {}, "queues"), queues(p),
    el("h3", {}, "last outputs"), outputs(p))));
}

async function poll() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    const status = await response.json();
    const now = Date.now();
    draw(status, now);
    previous = { status, at: now };
  } catch (e) {
    const state = document.getElementById("state");
    state.textContent = "the page lost the translator: " + e.message;
    state.className = "state down";
  }
}

poll();
setInterval(poll, 1000);

// The live page's script (served at /live.js; see live.html).
"use strict";
const SECOND = 1000;
// The chart's span, in one-second columns.
const CHART_SECONDS = 60;
// The headline grabs/s is taken over this much of the latest history.
const RATE_WINDOW = 3 * SECOND;
// How long a finished card stays, faded, before it moves to "Finished".
const LEAVE_AFTER = 1500;
// "Finished" keeps this many; the page may stay open for days.
const FINISHED_KEPT = 20;
const FINISHED = new Set(["sold_out", "expired", "cancelled", "drawn"]);
const SVG = "http://www.w3.org/2000/svg";
const CHART_W = 600, CHART_H = 64;

// promotionId -> { card, source, data, leaving, samples: [[ms, granted]] }
// (samples: one per event and one per second, oldest first, kept for the
// chart's minute plus the one before it as its baseline).
const cards = new Map();
// Ids that left the active list: a refresh must not bring them back, as the
// server's clock and the browser's may disagree by a moment.
const finished = new Set();
// promotionId -> label, for the coupon list (finished promotions included).
const names = new Map();
const list = document.getElementById("promotions");
const finishedList = document.getElementById("finished");
const select = document.getElementById("grab-promotion");

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, cls) {
  const e = document.createElementNS(SVG, tag);
  if (cls) e.setAttribute("class", cls);
  return e;
}

function when(iso) { return new Date(iso).toLocaleString(); }
function pay(discount) { return "pay " + Math.round(discount * 100) + " %"; }
function label(p) { return p.name || "Promotion " + p.promotionId.slice(0, 8); }

// Coupons granted at time `t`: the newest sample not after it. Before the
// first sample (the page was not open yet) the first one counts, so nothing
// from before the page opened shows as grabs.
function grantedAt(samples, t) {
  let granted = samples[0][1];
  for (const [time, g] of samples) {
    if (time > t) break;
    granted = g;
  }
  return granted;
}

// grabs/s over the last RATE_WINDOW (shorter just after the page opened).
function rate(samples, now) {
  const from = Math.max(now - RATE_WINDOW, samples[0][0]);
  return now > from ? (grantedAt(samples, now) - grantedAt(samples, from)) * SECOND / (now - from) : 0;
}

// Grabs in each second of the last minute, oldest first.
function perSecond(samples, now) {
  const columns = [];
  for (let i = CHART_SECONDS; i > 0; i--) {
    columns.push(grantedAt(samples, now - (i - 1) * SECOND) - grantedAt(samples, now - i * SECOND));
  }
  return columns;
}

function record(entry, now) {
  entry.samples.push([now, entry.data.granted]);
  const oldest = now - (CHART_SECONDS + 1) * SECOND;
  while (entry.samples.length > 2 && entry.samples[1][0] < oldest) entry.samples.shift();
}

// The server sends an update when a commit changes a promotion; opening and
// closing by the clock commit nothing, so the page moves those on itself.
function statusNow(p) {
  const now = Date.now();
  // A draw is drawn at its close, a moment later: until then it is drawing.
  if (p.draw && p.status === "active" && now >= Date.parse(p.draw.closesAt)) return "drawing";
  if (p.status === "upcoming" && now >= Date.parse(p.publishTime)) return "active";
  if (p.status === "active" && now >= Date.parse(p.finishTime)) return "expired";
  return p.status;
}

function drawChart(entry, now) {
  const columns = perSecond(entry.samples, now);
  const peak = Math.max(...columns);
  const total = columns.reduce((sum, n) => sum + n, 0);
  const scale = Math.max(peak, 1);
  const points = columns.map((n, i) =>
    ((i + 0.5) * CHART_W / CHART_SECONDS).toFixed(1) + "," + (CHART_H - 2 - (CHART_H - 8) * n / scale).toFixed(1));
  const chart = entry.card.querySelector("svg");
  chart.querySelector(".line").setAttribute("points", points.join(" "));
  chart.querySelector(".area").setAttribute("points", "0," + CHART_H + " " + points.join(" ") + " " + CHART_W + "," + CHART_H);
  chart.dataset.grabs = total;
  chart.dataset.peak = peak;
  entry.card.querySelector(".chart-caption").textContent =
    total === 0 ? "no grabs in the last minute" : total + " grabs in the last minute · peak " + peak + "/s";
}

function render(entry) {
  const p = entry.data, c = entry.card, now = Date.now();
  c.querySelector(".name").textContent = label(p);
  const badge = c.querySelector(".badge");
  const status = statusNow(p);
  badge.textContent = status.replace("_", " ");
  badge.className = "badge " + status;
  if (p.draw) {
    // A draw: its entries, the time to its close, and once drawn the winners.
    const left = Math.max(0, Math.ceil((Date.parse(p.draw.closesAt) - now) / SECOND));
    c.querySelector(".remaining").textContent = p.draw.entries;
    c.querySelector(".of").textContent = (p.draw.entries === 1 ? "entry" : "entries") + " for " + p.numberOfCoupons + " coupons";
    c.querySelector(".draw").textContent = p.draw.secret
      ? "drawn: " + p.granted + " won · secret " + p.draw.secret.slice(0, 16) + "…"
      : left > 0 ? "draw in " + Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0")
      : "drawing…";
  } else {
    c.querySelector(".remaining").textContent = p.remaining;
    c.querySelector(".of").textContent = "of " + p.numberOfCoupons + " left";
  }
  c.querySelector(".bar div").style.width = (100 * p.granted / p.numberOfCoupons).toFixed(1) + "%";
  c.querySelector(".rate b").textContent = rate(entry.samples, now).toFixed(0);
  drawChart(entry, now);
  c.querySelector(".meta").textContent =
    pay(p.discount) + " · opens " + when(p.publishTime) + " · closes " + when(p.finishTime);
  if (FINISHED.has(status) && !entry.leaving) leave(entry, status);
}

function card(p) {
  const article = el("article", "promotion");
  article.dataset.id = p.promotionId;
  const top = el("div", "top");
  top.append(el("span", "name"), el("span", "id", p.promotionId), el("span", "badge"));
  const counts = el("div", "counts");
  counts.append(el("span", "remaining"), el("span", "of"));
  const r = el("div", "rate"); r.append(el("b", "", "0"), " grabs/s now");
  const bar = el("div", "bar"); bar.append(el("div"));
  const left = el("div"); left.append(counts, r, bar);
  // SVG rather than canvas: it scales with the card and its numbers are in
  // the DOM, where a test (or a screen reader, via the caption) finds them.
  const chart = svg("svg");
  chart.setAttribute("viewBox", "0 0 " + CHART_W + " " + CHART_H);
  chart.setAttribute("preserveAspectRatio", "none");
  chart.setAttribute("role", "img");
  chart.setAttribute("aria-label", "grabs per second, last minute");
  chart.append(svg("polygon", "area"), svg("polyline", "line"));
  const caption = el("figcaption");
  caption.append(el("span", "chart-caption"), el("span", "", "grabs/s · 60 s ago → now"));
  const figure = el("figure", "chart"); figure.append(chart, caption);
  const body = el("div", "body"); body.append(left, figure);
  article.append(top, body, el("div", "draw"), el("div", "meta"));
  return article;
}

function track(p) {
  if (cards.has(p.promotionId) || finished.has(p.promotionId)) return;
  names.set(p.promotionId, label(p));
  list.querySelector(".empty")?.remove();
  const entry = { card: card(p), data: p, leaving: false, samples: [[Date.now(), p.granted]] };
  list.append(entry.card);

  const option = el("option", "", label(p) + (p.draw ? " (draw)" : "") + " · " + p.promotionId.slice(0, 8));
  option.value = p.promotionId;
  select.append(option);

  cards.set(p.promotionId, entry);
  labelSubmit();
  // EventSource reconnects by itself; each (re)connect starts with the current state.
  entry.source = new EventSource("/query/promotions/" + p.promotionId + "/events");
  entry.source.addEventListener("promotion", (event) => {
    entry.data = JSON.parse(event.data);
    record(entry, Date.now());
    render(entry);
  });
  render(entry);
}

// A finished promotion fades for a moment where it was, so the change is
// seen, then moves to "Finished" with its reason and final count.
function leave(entry, status) {
  entry.leaving = true;
  entry.card.classList.add("leaving");
  setTimeout(() => {
    const p = entry.data;
    entry.source.close();
    cards.delete(p.promotionId);
    finished.add(p.promotionId);
    entry.card.remove();
    [...select.options].find((o) => o.value === p.promotionId)?.remove();
    labelSubmit();
    if (cards.size === 0) list.append(el("div", "empty", "No active promotion: create one."));

    const item = el("li", "finished-item");
    item.dataset.id = p.promotionId;
    const at = p.finishedAt || (status === "expired" ? p.finishTime : new Date().toISOString());
    item.append(
      el("span", "name", label(p)),
      el("span", "badge reason " + status, status.replace("_", " ")),
      el("span", "final", p.granted + " of " + p.numberOfCoupons + " granted"),
      el("span", "at", new Date(at).toLocaleTimeString()));
    finishedList.querySelector(".empty")?.remove();
    finishedList.prepend(item);
    while (finishedList.children.length > FINISHED_KEPT) finishedList.lastElementChild.remove();
  }, LEAVE_AFTER);
}

// Once a second: the rate decays to zero and the chart moves on when no
// updates come, and the status follows the clock.
setInterval(() => {
  const now = Date.now();
  for (const entry of cards.values()) {
    record(entry, now);
    render(entry);
  }
}, SECOND);

async function refresh() {
  try {
    const response = await fetch("/query/promotions");
    if (response.ok) (await response.json()).forEach(track);
  } catch (_) { /* the server restarts; the next tick tries again */ }
}

// A problem+json answer as one line: its title and detail.
async function describe(response) {
  try { const p = await response.json(); return p.title + ": " + p.detail; }
  catch (_) { return "HTTP " + response.status; }
}

document.getElementById("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = document.getElementById("create-result");
  const opens = new Date(Date.now() + 1000 * Number(document.getElementById("create-opens").value || 0));
  const finish = new Date(opens.getTime() + 60000 * Number(document.getElementById("create-runs").value || 60));
  const body = {
    numberOfCoupons: Number(document.getElementById("create-coupons").value),
    discount: Number(document.getElementById("create-discount").value),
    publishTime: opens.toISOString(),
    finishTime: finish.toISOString(),
  };
  const name = document.getElementById("create-name").value.trim();
  if (name) body.name = name;
  const draw = Number(document.getElementById("create-draw").value || 0);
  if (draw > 0) body.drawClosesAt = new Date(opens.getTime() + 1000 * draw).toISOString();
  // The admin token goes in the header of this one request; the page keeps
  // it nowhere else.
  const token = document.getElementById("create-token").value.trim();
  const response = await fetch("/admin/promotions/", {
    method: "POST",
    headers: { "content-type": "application/json", "authorization": "Bearer " + token },
    body: JSON.stringify(body),
  });
  if (response.status === 201) {
    const p = await response.json();
    track(p);
    select.value = p.promotionId;
    labelSubmit();
    out.className = "result won"; out.textContent = "Created " + p.promotionId;
  } else {
    out.className = "result lost"; out.textContent = await describe(response);
  }
});

// The form grabs a first-come promotion and enters a draw.
function isDraw(id) { return Boolean(cards.get(id)?.data.draw); }
function labelSubmit() {
  document.getElementById("grab-submit").textContent = isDraw(select.value) ? "Enter the draw" : "Grab";
}
select.addEventListener("change", labelSubmit);

document.getElementById("grab-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = document.getElementById("grab-result");
  const draw = isDraw(select.value);
  const response = await fetch(draw ? "/command/entries/" : "/command/coupons/", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ promotionId: select.value, customerId: document.getElementById("grab-customer").value }),
  });
  if (response.status === 201 && draw) {
    const entry = await response.json();
    out.className = "result won"; out.textContent = "Entered as #" + entry.number + " for " + entry.customerId + "; see My coupons after the draw";
  } else if (response.status === 201) {
    const coupon = await response.json();
    out.className = "result won"; out.textContent = "Won coupon #" + coupon.number + " for " + coupon.customerId;
  } else {
    out.className = "result lost"; out.textContent = response.status + " · " + await describe(response);
  }
});

// Labels for promotions the page has not seen (finished before it opened).
async function learnNames(ids) {
  await Promise.all([...new Set(ids)].filter((id) => !names.has(id)).map(async (id) => {
    try {
      const response = await fetch("/query/promotions/" + id);
      names.set(id, response.ok ? label(await response.json()) : "Promotion " + id.slice(0, 8));
    } catch (_) { /* shown by id this time; asked again next time */ }
  }));
}

// Only the newest lookup may fill the list: answers can arrive out of order.
let lookups = 0;
document.getElementById("coupons-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const lookup = ++lookups;
  const customer = document.getElementById("coupons-customer").value;
  const out = document.getElementById("coupons-result");
  const shown = document.getElementById("coupons-list");
  const show = (cls, text) => { out.className = "result " + cls; out.textContent = text; };
  shown.replaceChildren();
  show("", "Looking up " + customer + "…");
  let response, coupons;
  try {
    response = await fetch("/query/coupons/" + encodeURIComponent(customer));
    if (response.ok) {
      coupons = await response.json();
      await learnNames(coupons.map((c) => c.promotionId));
    }
  } catch (_) {
    if (lookup === lookups) show("lost", "The server did not answer; try again.");
    return;
  }
  if (lookup !== lookups) return;
  if (!response.ok) return show("lost", response.status + " · " + await describe(response));
  if (coupons.length === 0) return show("", customer + " holds no coupon yet.");
  show("won", customer + " holds " + coupons.length + (coupons.length === 1 ? " coupon" : " coupons") + ":");
  for (const c of coupons) {
    const item = el("li", "coupon");
    item.append(
      el("span", "coupon-number", "#" + c.number),
      el("span", "coupon-promotion", names.get(c.promotionId) || "Promotion " + c.promotionId.slice(0, 8)),
      el("span", "coupon-discount", pay(c.discount)),
      el("span", "coupon-time", "grabbed " + when(c.grabbedAt)));
    shown.append(item);
  }
});

refresh();
setInterval(refresh, 5000);

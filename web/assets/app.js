// uneventful's web page: open or create a wallet, see its balance,
// transactions, event log and state log, credit and debit it, and watch the
// live feed of every recorded event. Plain JavaScript, no build step.
"use strict";

const PAGE = 50; // rows fetched at a time per table
const FEED_ROWS = 200; // rows the live feed keeps
const KSUID = /^[0-9A-Za-z]{27}$/;

const $ = (sel) => document.querySelector(sel);

// Money is exact: every number in an answer is read as its text, never as a
// binary float, so 0.3 stays "0.3" and large balances keep every digit.
function parseExact(text) {
  return JSON.parse(text.replace(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g,
    (m) => (m[0] === '"' ? m : '"' + m + '"')));
}

// ---- API ----------------------------------------------------------------

let apiKey = sessionStorage.getItem("uneventful.key") || "";

function authHeaders(extra) {
  const h = Object.assign({}, extra);
  if (apiKey) h["Authorization"] = "Bearer " + apiKey;
  return h;
}

// api sends a request and returns {ok, status, body}; status 0 means no
// answer. Error answers carry the API's words in body.detail.
async function api(method, path, body, headers) {
  const h = authHeaders(headers);
  if (body !== undefined) h["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers: h, body, cache: "no-store" });
  } catch (err) {
    return { ok: false, status: 0, body: { detail: "the server did not answer (" + err.message + ")" } };
  }
  const text = await res.text();
  let parsed;
  try {
    parsed = parseExact(text);
  } catch (err) {
    parsed = { detail: "the server answered " + res.status + " with something that is not JSON" };
  }
  if (res.status === 401 || res.status === 403) askForKey(parsed.detail);
  return { ok: res.ok, status: res.status, body: parsed };
}

function askForKey(why) {
  $("#key-why").textContent = why || "This server needs an API key.";
  $("#key-form").hidden = false;
}

$("#key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  apiKey = $("#key").value.trim();
  sessionStorage.setItem("uneventful.key", apiKey);
  $("#key-form").hidden = true;
  feed.restart();
  if (current) openWallet(current.id);
});

// ---- formatting -----------------------------------------------------------

function pad(n, w) { return String(n).padStart(w || 2, "0"); }

function fmtTime(ts, withDate) {
  const d = new Date(ts);
  if (isNaN(d)) return String(ts);
  const t = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  if (!withDate) return t;
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + t;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c === undefined || c === null ? "" : c);
  return e;
}

function cell(text, cls, title) {
  const td = el("td", cls ? { class: cls } : {}, text);
  if (title) td.title = title;
  return td;
}

function timeCell(ts, withDate) { return cell(fmtTime(ts, withDate), "time", ts); }

function idCell(id) { return cell(el("code", {}, id), "id", id); }

function badge(outcome) { return el("span", { class: "badge " + outcome }, outcome); }

// summary renders an event's data for a table cell: the amount of a wallet
// event, else its fields.
function summary(data) {
  if (data === null || typeof data !== "object") return data === undefined || data === null ? "" : String(data);
  if ("amount" in data) return String(data.amount);
  return Object.entries(data).filter(([k]) => k !== "scale").map(([k, v]) => k + " " + v).join(", ");
}

// ---- the open wallet ------------------------------------------------------

// current is the open wallet: its id, the version shown, and per table the
// cursor of the last row shown, whether more pages wait, and a queue that
// keeps loads of one table in order (so no row is shown twice).
let current = null;

const tables = {
  transactions: {
    list: "transactions",
    cursor: (t) => t.version,
    row: (t) => el("tr", {},
      cell(t.version, "num"), timeCell(t.timestamp, true), cell(t.type),
      cell(String(t.amount), "num" + (String(t.amount).startsWith("-") ? " neg" : "")), idCell(t.event_id)),
    empty: "No transactions yet.",
  },
  events: {
    list: "events",
    cursor: (e) => e.sequence,
    row: (e) => el("tr", {},
      cell(e.sequence, "num"), timeCell(e.timestamp, true), cell(e.command),
      cell(summary(e.data), "num"), el("td", { class: "outcome" }, badge(e.outcome)), cell(e.version, "num"),
      e.reason ? el("td", { class: "reason" }, el("span", { class: "code" }, e.reason), " ", e.message || "") : cell("")),
    empty: "No attempts yet.",
  },
  states: {
    list: "states",
    cursor: (s) => s.version,
    row: (s) => el("tr", {},
      cell(s.version, "num"), timeCell(s.timestamp, true),
      cell(s.data && typeof s.data === "object" && "balance" in s.data ? String(s.data.balance) : JSON.stringify(s.data), "num"),
      idCell(s.event_id)),
    empty: "No accepted change yet.",
  },
};

function openWallet(id) {
  id = id.trim();
  $("#open-error").hidden = true;
  if (!KSUID.test(id)) {
    showOpenError("“" + id + "” is not a wallet id: want a 27-character KSUID, or press New wallet.");
    return;
  }
  current = { id, version: -1, tables: {}, pending: {} };
  for (const name of Object.keys(tables)) {
    current.tables[name] = { after: "0", more: false, unavailable: false, rows: 0, chain: Promise.resolve(), queued: false };
    $("#" + name + " tbody").replaceChildren();
    $("#" + name + "-more").hidden = true;
    $("#" + name + "-note").hidden = true;
    $("#" + name).hidden = false;
  }
  $("#wallet-id").value = id;
  $("#shown-id").textContent = id;
  $("#balance").textContent = "–";
  $("#version").textContent = "–";
  $("#balance-note").textContent = "";
  $("#command-result").hidden = true;
  $("#wallet").hidden = false;
  if (location.hash !== "#" + id) history.replaceState(null, "", "#" + id);
  for (const row of document.querySelectorAll("#feed tbody tr")) {
    row.classList.toggle("mine", row.dataset.entity === id);
  }
  refresh(current);
}

function showOpenError(text) {
  $("#open-error").textContent = text;
  $("#open-error").hidden = false;
}

// refresh reloads the balance and appends what is new to each table that
// shows its last page.
function refresh(w) {
  loadBalance(w);
  for (const name of Object.keys(tables)) {
    const t = w.tables[name];
    if (!t.more && !t.unavailable) enqueue(w, name);
  }
}

async function loadBalance(w) {
  const r = await api("GET", "/wallet/" + w.id + "/balance");
  if (w !== current) return;
  if (r.ok) {
    setBalance(w, r.body.balance, r.body.version);
  } else if (r.status === 404) {
    setBalance(w, "0", "0");
    $("#balance-note").textContent = "No accepted transaction yet.";
  } else if (r.status === 400) {
    $("#wallet").hidden = true;
    showOpenError(r.body.detail);
  } else {
    $("#balance-note").textContent = r.body.detail;
  }
}

// setBalance shows a balance unless a newer version is shown already.
function setBalance(w, balance, version) {
  if (Number(version) < w.version) return;
  w.version = Number(version);
  $("#balance").textContent = String(balance);
  $("#version").textContent = String(version);
  $("#balance-note").textContent = "";
}

function enqueue(w, name) {
  const t = w.tables[name];
  if (t.queued) return; // a load that has not started will see the news
  t.queued = true;
  t.chain = t.chain.then(() => {
    t.queued = false;
    return loadPage(w, name);
  }).catch((err) => console.error(err));
}

async function loadPage(w, name) {
  const cfg = tables[name];
  const t = w.tables[name];
  const r = await api("GET", "/wallet/" + w.id + "/" + name + "?limit=" + PAGE + "&after=" + t.after);
  if (w !== current) return;
  const note = $("#" + name + "-note");
  if (r.status === 404 && name === "transactions") {
    r.ok = true; // a wallet with no accepted change has no transactions yet
    r.body = { transactions: [], next_after: null };
  }
  if (!r.ok) {
    note.textContent = r.body.detail || "failed: " + r.status;
    note.hidden = false;
    if (r.status === 501) {
      // Not available from this role: say so, and stop asking.
      t.unavailable = true;
      $("#" + name).hidden = true;
    }
    return;
  }
  const items = r.body[cfg.list] || [];
  const tbody = $("#" + name + " tbody");
  for (const item of items) {
    const row = cfg.row(item);
    if (t.rows > 0) row.classList.add("fresh");
    tbody.append(row);
    t.after = cfg.cursor(item);
  }
  t.rows += items.length;
  t.more = r.body.next_after !== null && r.body.next_after !== undefined;
  $("#" + name + "-more").hidden = !t.more;
  note.hidden = t.rows > 0;
  note.textContent = t.rows > 0 ? "" : cfg.empty;
}

for (const name of Object.keys(tables)) {
  $("#" + name + "-more").addEventListener("click", () => {
    if (current) enqueue(current, name);
  });
}

// ---- commands -------------------------------------------------------------

function newKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function command(form) {
  const w = current;
  if (!w) return;
  const cmd = form.dataset.command;
  const input = form.elements.amount;
  const raw = input.value.trim();
  // A number goes as it was typed, so that the server sees its exact text;
  // anything else goes as a string, and the server says what is wrong.
  const body = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(raw) ? '{"amount": ' + raw + "}" : JSON.stringify({ amount: raw });
  // The same command sent again after no answer carries the same
  // Idempotency-Key, so it is never applied twice.
  let p = w.pending[cmd];
  if (!p || p.body !== body) p = w.pending[cmd] = { body, key: newKey() };
  const button = form.querySelector("button");
  button.disabled = true;
  const r = await api("POST", "/wallet/" + w.id + "/" + cmd, body, { "Idempotency-Key": p.key });
  button.disabled = false;
  const unknown = r.status === 0 || r.status === 504;
  if (!unknown) delete w.pending[cmd];
  if (w !== current) return;
  const out = $("#command-result");
  out.hidden = false;
  if (r.ok) {
    out.className = "result ok";
    out.textContent = (cmd === "credit" ? "Credited " : "Debited ") + raw + ": the balance is " + r.body.balance + " (version " + r.body.version + ").";
    input.value = "";
    setBalance(w, r.body.balance, r.body.version);
    refresh(w);
  } else {
    out.className = "result bad";
    let text = r.body.detail || "the " + cmd + " failed (" + r.status + ")";
    if (unknown) text += " Press " + cmd[0].toUpperCase() + cmd.slice(1) + " again to retry safely: it is sent with the same Idempotency-Key.";
    out.textContent = text;
    if (r.status === 409) refresh(w); // the rejected attempt is in the event log
  }
}

for (const form of document.querySelectorAll("form.command")) {
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    command(form);
  });
}

$("#open-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  openWallet($("#wallet-id").value);
});

$("#new-wallet").addEventListener("click", async () => {
  const r = await api("GET", "/ksuid");
  if (!r.ok) {
    showOpenError(r.body.detail);
    return;
  }
  openWallet(r.body.id);
});

window.addEventListener("hashchange", () => {
  const id = location.hash.slice(1);
  if (id && (!current || current.id !== id)) openWallet(id);
});

// ---- live feed ------------------------------------------------------------

function setLive(cls, text, title) {
  const l = $("#live");
  l.className = "live " + cls;
  l.textContent = text;
  l.title = title || "the live feed";
}

function showEvent(e) {
  $("#feed-empty").hidden = true;
  const entity = e.domain === "wallet"
    ? el("a", { class: "entity mono", href: "#" + e.entity_id, title: e.entity_id }, e.entity_id)
    : el("span", { class: "mono", title: e.entity_id }, e.entity_id);
  const outcome = el("td", { class: "outcome" }, badge(e.outcome));
  if (e.reason) outcome.append(" ", el("span", { class: "code", title: e.message || "" }, e.reason));
  const row = el("tr", { class: "fresh" },
    timeCell(e.timestamp), cell(e.domain + "." + e.command),
    el("td", { class: "id" }, entity), cell(summary(e.data), "num"), outcome);
  row.dataset.entity = e.entity_id;
  row.dataset.eventId = e.event_id;
  if (current && e.entity_id === current.id) row.classList.add("mine");
  const tbody = $("#feed tbody");
  tbody.prepend(row);
  while (tbody.rows.length > FEED_ROWS) tbody.deleteRow(-1);
  if (current && e.domain === "wallet" && e.entity_id === current.id) refresh(current);
}

// The feed is read with fetch rather than EventSource so that it can send
// the API key. It reconnects by itself, and on every (re)connection reloads
// the open wallet, since what happened meanwhile is not replayed.
const feed = {
  abort: null,
  async run() {
    for (let delay = 1000; ; delay = Math.min(delay * 2, 15000)) {
      const ctl = new AbortController();
      this.abort = ctl;
      let watchdog;
      try {
        setLive("off", "connecting…");
        const res = await fetch("/events/stream", { headers: authHeaders(), cache: "no-store", signal: ctl.signal });
        if (!res.ok) {
          let detail = "the live feed answered " + res.status;
          try { detail = parseExact(await res.text()).detail || detail; } catch (err) { /* keep the status */ }
          if (res.status === 401 || res.status === 403) askForKey(detail);
          setLive("error", "live feed off", detail);
          $("#feed-note").textContent = detail;
          $("#feed-note").hidden = false;
          if (res.status === 501) return;
        } else {
          $("#feed-note").hidden = true;
          setLive("on", "live");
          delay = 1000;
          if (current) refresh(current);
          let silence = 45000; // until the hello says the heartbeat
          const arm = () => {
            clearTimeout(watchdog);
            watchdog = setTimeout(() => ctl.abort(), silence);
          };
          arm();
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            arm();
            buf += value;
            let end;
            while ((end = buf.indexOf("\n\n")) >= 0) {
              const msg = parseMessage(buf.slice(0, end));
              buf = buf.slice(end + 2);
              if (msg.event === "recorded") showEvent(parseExact(msg.data));
              else if (msg.event === "hello") silence = 3 * Number(parseExact(msg.data).heartbeat_ms) || silence;
              else if (msg.event === "dropped" || msg.event === "closing") setLive("off", "reconnecting…", parseExact(msg.data).detail);
            }
          }
        }
      } catch (err) {
        // The connection broke or the watchdog fired: reconnect.
      }
      clearTimeout(watchdog);
      if (this.abort !== ctl) return; // restarted: the new run owns the feed
      setLive("off", "reconnecting…");
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.abort !== ctl) return;
    }
  },
  restart() {
    const old = this.abort;
    this.abort = null;
    if (old) old.abort();
    this.run();
  },
};

// parseMessage reads one Server-Sent Events message: its event and data.
function parseMessage(block) {
  const msg = { event: "message", data: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") msg.event = value;
    else if (field === "data") data.push(value);
  }
  msg.data = data.join("\n");
  return msg;
}

// ---- start ----------------------------------------------------------------

feed.run();
if (location.hash.length > 1) openWallet(location.hash.slice(1));
else $("#wallet-id").focus();

// The Optivex market page: every instrument's book and latest trades, live from /ws.
// Messages (see optivex/web/market.py): {"t": "s"|"u", "c": connected to info, "h": hidden count,
// "i": {symbol: {"l": listing, "b": {"b": [[price, qty]], "a": [...]}, "r": replace tape, "tr": [trades]}}}.
// A trade is [trade_id, ms since the epoch, price, quantity, "B"|"S" aggressor].
"use strict";

const TRADES_SHOWN = 12;
const TRADES_KEPT = 200;
const instruments = new Map(); // symbol -> {listing, book, trades, card, dirty, last, prev}
const dirty = new Set();
let infoConnected = false;
let hidden = 0;
let socketOpen = false;
let retryDelay = 250;
let frameRequested = false;
let messages = 0;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function timeOf(ms) {
  const d = new Date(ms);
  const pad = (n, w) => String(n).padStart(w, "0");
  return `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.${pad(d.getMilliseconds(), 3)}`;
}

function newCard(symbol) {
  const card = el("section", "card");
  card.dataset.symbol = symbol;
  const title = el("h2");
  const name = el("span", "sym", symbol);
  const last = el("span", "last", "");
  title.append(name, last);
  const cols = el("div", "cols");
  const ladder = el("table", "ladder");
  const lhead = el("thead");
  const lrow = el("tr");
  lrow.append(el("th", "", "price"), el("th", "", "qty"));
  lhead.append(lrow);
  const lbody = el("tbody");
  ladder.append(lhead, lbody);
  const tape = el("table", "tape");
  const thead = el("thead");
  const trow = el("tr");
  trow.append(el("th", "", "time"), el("th", "", "price"), el("th", "", "qty"));
  thead.append(trow);
  const tbody = el("tbody");
  tape.append(thead, tbody);
  cols.append(ladder, tape);
  card.append(title, cols);
  return { card, last, lbody, tbody };
}

function placeCard(symbol, card) {
  const books = document.getElementById("books");
  // keep cards sorted by symbol
  let before = null;
  for (const other of books.children) {
    if (other.dataset.symbol > symbol) { before = other; break; }
  }
  books.insertBefore(card, before);
}

function apply(message) {
  messages += 1;
  if (message.t === "s") {
    for (const state of instruments.values()) state.view.card.remove();
    instruments.clear();
    dirty.clear();
  }
  infoConnected = message.c;
  hidden = message.h;
  for (const [symbol, entry] of Object.entries(message.i)) {
    let state = instruments.get(symbol);
    if (state === undefined) {
      if (!entry.l) continue; // never happens: a new instrument comes with its listing
      state = { listing: entry.l, book: { b: [], a: [] }, trades: [], view: newCard(symbol) };
      instruments.set(symbol, state);
      placeCard(symbol, state.view.card);
    }
    if (entry.b) state.book = entry.b;
    if (entry.tr) {
      state.trades = entry.r ? entry.tr.slice() : state.trades.concat(entry.tr);
      if (state.trades.length > TRADES_KEPT) state.trades.splice(0, state.trades.length - TRADES_KEPT);
    }
    dirty.add(symbol);
  }
  requestRender();
}

function requestRender() {
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(render);
  }
}

function syncRows(tbody, rows) {
  // rows: [{cls, cells: [[className, text]], bar}], reusing the existing <tr>s
  while (tbody.rows.length > rows.length) tbody.deleteRow(-1);
  rows.forEach((row, i) => {
    let tr = tbody.rows[i];
    if (tr === undefined || tr.cells.length !== row.cells.length) {
      const fresh = el("tr");
      for (const [cls] of row.cells) fresh.append(el("td", cls));
      if (tr === undefined) tbody.append(fresh); else tbody.replaceChild(fresh, tr);
      tr = fresh;
    }
    if (tr.className !== row.cls) tr.className = row.cls;
    for (const [key, value] of Object.entries(row.data || {})) tr.dataset[key] = value;
    row.cells.forEach(([cls, text, bar], j) => {
      const td = tr.cells[j];
      if (td.className !== cls) td.className = cls;
      if (bar === undefined) {
        if (td.textContent !== text) td.textContent = text;
        return;
      }
      let span = td.querySelector("span");
      let barNode = td.querySelector(".bar");
      if (span === null) {
        td.textContent = "";
        barNode = el("div", "bar");
        span = el("span");
        td.append(barNode, span);
      }
      if (span.textContent !== text) span.textContent = text;
      barNode.style.width = `${bar}%`;
    });
  });
}

function renderCard(symbol, state) {
  const { book, trades, view } = state;
  const asks = book.a, bids = book.b;
  let maxQty = 1;
  for (const [, q] of asks) maxQty = Math.max(maxQty, q);
  for (const [, q] of bids) maxQty = Math.max(maxQty, q);
  const rows = [];
  for (let i = asks.length - 1; i >= 0; i--) {
    const [p, q] = asks[i];
    rows.push({ cls: "ask", data: { side: "ask", price: p, qty: q },
      cells: [["p", p], ["q", String(q), (100 * q) / maxQty]] });
  }
  rows.push({ cls: "spread", data: { side: "", price: "", qty: "" }, cells: [["", ""], ["", ""]] });
  for (const [p, q] of bids) {
    rows.push({ cls: "bid", data: { side: "bid", price: p, qty: q },
      cells: [["p", p], ["q", String(q), (100 * q) / maxQty]] });
  }
  if (asks.length === 0 && bids.length === 0) {
    rows.length = 0;
    rows.push({ cls: "none", data: {}, cells: [["none", "empty book"]] });
  }
  syncRows(view.lbody, rows);
  const shown = trades.slice(-TRADES_SHOWN).reverse();
  const tradeRows = shown.map(([id, ms, p, q, side]) => ({
    cls: side, data: { tradeId: String(id), price: p, qty: String(q) },
    cells: [["t", timeOf(ms)], ["p", p], ["q", String(q)]],
  }));
  if (tradeRows.length === 0) tradeRows.push({ cls: "none", data: {}, cells: [["none", "no trades yet"]] });
  syncRows(view.tbody, tradeRows);
  const last = trades.length ? trades[trades.length - 1] : null;
  const prev = trades.length > 1 ? trades[trades.length - 2] : null;
  view.last.textContent = last ? `${last[2]}` : "";
  view.last.className = "last" + (last && prev ? (Number(last[2]) > Number(prev[2]) ? " up" : Number(last[2]) < Number(prev[2]) ? " down" : "") : "");
}

function render() {
  frameRequested = false;
  for (const symbol of dirty) {
    const state = instruments.get(symbol);
    if (state !== undefined) renderCard(symbol, state);
  }
  dirty.clear();
  const status = document.getElementById("status");
  const state = !socketOpen ? "offline" : infoConnected ? "live" : "reconnecting";
  status.dataset.state = state;
  status.textContent = { offline: "page offline: reconnecting…", live: "live", reconnecting: "info unreachable: reconnecting…" }[state];
  const summary = document.getElementById("summary");
  summary.textContent = `${instruments.size} instruments` + (hidden ? ` (${hidden} more not shown)` : "");
  document.getElementById("empty").classList.toggle("hidden", instruments.size > 0);
  document.body.dataset.messages = String(messages);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws`);
  socket.onopen = () => { socketOpen = true; retryDelay = 250; requestRender(); };
  socket.onmessage = (event) => apply(JSON.parse(event.data));
  socket.onclose = () => {
    socketOpen = false;
    requestRender();
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 4000);
  };
}

connect();
requestRender();

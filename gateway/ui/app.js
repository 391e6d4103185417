// The session trace viewer. Talks to this gateway's /v1 API with the key the user typed, sent as x-api-key (never
// in a URL); kept in this tab's sessionStorage only. Every value from the API is inserted as text, never as HTML.
"use strict";

const KEY = "corral.apiKey";
const $ = (id) => document.getElementById(id);
let current = null; // { id, abort } of the session being followed
let streamUsage = null; // the latest session.usage of the followed session (when the Session's status has none)
let lastSession = null; // the latest Session object of the followed session

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function key() { return sessionStorage.getItem(KEY); }

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "x-api-key": key(), "anthropic-version": "2023-06-01", ...(options.headers || {}) },
  });
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    throw new Error("The key was refused (401).");
  }
  if (!response.ok && !options.stream) {
    let message = `${response.status}`;
    try { message += `: ${(await response.json()).error.message}`; } catch (_) { /* not the envelope */ }
    throw new Error(message);
  }
  return response;
}

function show(section) {
  for (const id of ["login", "list", "session"]) $(id).hidden = id !== section;
  $("forget-key").hidden = section === "login";
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

// Figures ------------------------------------------------------------------------------------------------------

function tokens(usage) {
  if (!usage) return null;
  const parts = [usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
    usage.cache_creation && usage.cache_creation.ephemeral_5m_input_tokens,
    usage.cache_creation && usage.cache_creation.ephemeral_1h_input_tokens];
  if (parts.every((p) => p == null)) return null;
  return parts.reduce((a, b) => a + (b || 0), 0);
}

function cost(usage) {
  const amount = usage && usage.list_cost && Number(usage.list_cost.amount);
  return Number.isFinite(amount) ? `$${(amount / 100).toFixed(4)}` : "–";
}

function age(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString(undefined, { hour12: false }) : "";
}

function statusChip(status) { return el("span", { class: `status ${status}`, text: status }); }

// The list -----------------------------------------------------------------------------------------------------

async function showList() {
  show("list");
  const body = $("sessions").querySelector("tbody");
  const page = await (await api("/v1/sessions?limit=100")).json();
  body.replaceChildren();
  for (const s of page.data) {
    const link = el("a", { href: `#/sessions/${encodeURIComponent(s.id)}`, text: s.id });
    const active = s.stats && s.stats.active_seconds;
    body.append(el("tr", { "data-session": s.id },
      el("td", {}, link),
      el("td", { text: s.title || "" }),
      el("td", {}, statusChip(s.status)),
      el("td", { class: "num", text: tokens(s.usage) ?? "–" }),
      el("td", { class: "num", text: cost(s.usage) }),
      el("td", { class: "num", text: active != null ? `${active.toFixed(3)} s` : "–" }),
      el("td", { class: "num", text: age(s.created_at) })));
  }
  $("list-empty").hidden = page.data.length > 0;
}

// One session --------------------------------------------------------------------------------------------------

function summary(s) {
  lastSession = s;
  const usage = s.usage && Object.keys(s.usage).some((k) => k !== "active_seconds") ? s.usage : streamUsage;
  s = { ...s, usage };
  const items = [["Status", s.status], ["Agent", `${s.agent.name || s.agent.id} v${s.agent.version}`],
    ["Tokens", tokens(s.usage) ?? "–"], ["Cost", cost(s.usage)],
    ["Active", s.stats && s.stats.active_seconds != null ? `${s.stats.active_seconds.toFixed(3)} s` : "–"],
    ["Age", age(s.created_at)]];
  if (s.budget && s.budget.max_list_cost) items.push(["Budget", `$${(Number(s.budget.max_list_cost.amount) / 100).toFixed(2)}`]);
  if (s.budget && s.budget.max_tokens) items.push(["Token budget", s.budget.max_tokens]);
  $("session-summary").replaceChildren(...items.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: String(v) }))));
  $("session-title").textContent = s.title || s.id;
}

async function refreshSummary(id) {
  try { summary(await (await api(`/v1/sessions/${encodeURIComponent(id)}`)).json()); } catch (_) { /* next event */ }
}

function textOf(content) {
  return (content || []).filter((b) => b.type === "text").map((b) => b.text).join("\n");
}

function item(kind, cls, event, ...body) {
  const li = el("li", { class: cls, "data-type": event.type, "data-id": event.id },
    el("div", { class: "head" }, el("span", { class: "kind", text: kind }), el("span", { class: "time", text: clock(event.processed_at) })),
    ...body);
  $("timeline").append(li);
  return li;
}

function render(event, state) {
  const t = event.type;
  switch (t) {
    case "user.message":
      item("you", "user", event, el("div", { class: "text", text: textOf(event.content) }));
      break;
    case "agent.message":
      item("agent", "agent", event, el("div", { class: "text", text: textOf(event.content) }));
      break;
    case "agent.thinking":
      item("thinking", "thinking", event, el("div", { class: "text", text: "The model thought before answering." }));
      break;
    case "agent.tool_use": case "agent.custom_tool_use": case "agent.mcp_tool_use": {
      const li = item(`tool · ${event.name}`, "tool", event,
        el("div", { class: "muted", text: t === "agent.tool_use" ? `permission: ${event.evaluated_permission || "allow"}` : t }),
        el("pre", { class: "input", text: JSON.stringify(event.input, null, 2) }));
      state.tools.set(event.id, li);
      break;
    }
    case "agent.tool_result": case "agent.mcp_tool_result": case "user.custom_tool_result": case "user.tool_result": {
      const useId = event.tool_use_id || event.mcp_tool_use_id || event.custom_tool_use_id;
      const result = el("div", { class: `result${event.is_error ? " is-error" : ""}` },
        el("div", { class: "muted", text: event.is_error ? "error result" : "result" }),
        el("pre", { class: "output", text: textOf(event.content) }));
      const li = state.tools.get(useId);
      if (li) { li.append(result); if (event.is_error) li.classList.add("error"); }
      else item("tool result", "tool", event, result);
      break;
    }
    case "span.model_request_start":
      state.spans.set(event.id, event.processed_at);
      break;
    case "span.model_request_end": {
      const started = state.spans.get(event.model_request_start_id);
      const ms = started && event.processed_at ? Date.parse(event.processed_at) - Date.parse(started) : null;
      const u = event.model_usage || {};
      const figures = [ms != null ? `${ms} ms` : null, `${u.input_tokens || 0} in`, `${u.output_tokens || 0} out`,
        u.cache_read_input_tokens ? `${u.cache_read_input_tokens} cache read` : null,
        u.cache_creation_input_tokens ? `${u.cache_creation_input_tokens} cache write` : null].filter(Boolean).join(" · ");
      item(event.is_error ? "model request failed" : "model request", `model${event.is_error ? " error" : ""}`, event,
        el("span", { class: "muted figures", text: figures }));
      break;
    }
    case "session.error":
      item(`error · ${event.error.type}`, "error", event, el("div", { class: "text", text: event.error.message }));
      break;
    case "session.status_idle": {
      const reason = event.stop_reason && event.stop_reason.type;
      item("idle", `status${reason === "budget_reached" ? " error" : ""}`, event, el("span", { class: "muted", text: reason || "" }));
      break;
    }
    case "session.status_running": case "session.status_rescheduled": case "session.status_terminated":
      item(t.replace("session.status_", ""), "status", event);
      break;
    case "session.usage":
      streamUsage = event.usage;
      if (lastSession) summary(lastSession);
      break;
    case "session.updated":
      break;
    default:
      item(t, "status", event);
  }
  if (t.startsWith("session.status_") || t === "session.usage" || t === "session.updated") refreshSummary(state.id);
}

// Follows the SSE stream from the log's start: fetch() with the key in a header (EventSource cannot send one).
async function follow(id, signal) {
  const state = { id, tools: new Map(), spans: new Map() };
  let last = "0-0";
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      const response = await api(`/v1/sessions/${encodeURIComponent(id)}/events/stream`,
        { signal, stream: true, headers: { accept: "text/event-stream", "last-event-id": last } });
      if (!response.ok) throw new Error(`stream: ${response.status}`);
      $("stream-state").textContent = "live";
      attempt = 0;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let type = "message", data = "", cursor = null;
          for (const line of message.split("\n")) {
            if (line.startsWith("event:")) type = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
            else if (line.startsWith("id:")) cursor = line.slice(3).trim();
          }
          if (cursor) last = cursor;
          if (type === "ping" || !data) continue;
          render(JSON.parse(data), state);
        }
      }
      $("stream-state").textContent = "stream ended";
      return;
    } catch (err) {
      if (signal.aborted) return;
      $("stream-state").textContent = `reconnecting (${err.message})`;
      await new Promise((r) => setTimeout(r, Math.min(10000, 500 * 2 ** attempt)));
    }
  }
}

async function showSession(id) {
  show("session");
  $("timeline").replaceChildren();
  streamUsage = null;
  lastSession = null;
  $("stream-state").textContent = "connecting";
  await refreshSummary(id);
  const abort = new AbortController();
  current = { id, abort };
  follow(id, abort.signal);
}

// Routing ------------------------------------------------------------------------------------------------------

async function route() {
  if (current) { current.abort.abort(); current = null; }
  showError("");
  if (!key()) { show("login"); $("key").focus(); return; }
  const match = location.hash.match(/^#\/sessions\/([^/]+)$/);
  try {
    if (match) await showSession(decodeURIComponent(match[1]));
    else await showList();
  } catch (err) {
    if (!key()) { show("login"); $("login-error").textContent = err.message; $("login-error").hidden = false; return; }
    showError(err.message);
  }
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  $("key").value = "";
  $("login-error").hidden = true;
  route();
});
$("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); route(); });
window.addEventListener("hashchange", route);
route();

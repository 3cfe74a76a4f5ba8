// The live viewer: session, task list, and one task's event stream.
//
// The stream is the browser's own EventSource: when a response ends or the network drops,
// it reconnects by itself and sends Last-Event-ID, which the server honours over `after`,
// so the view resumes exactly where it stopped. Only `completed` ends it for good.
// Every URL is relative to the page (/ui), so the viewer also works behind a path prefix.

import { EVENT_TYPES, Transcript, el, seconds } from "./transcript.js";

const $ = (id) => document.getElementById(id);
const LIST_POLL_MS = 3000;
const MODES = new Set(["core", "chunk", "output", "chunk_output", "all"]);
// What is drawn by default: everything (usage is `debug`, the result `output`, neither in
// `core`). The stream itself is always read in `all`: the chosen mode filters the drawing
// (transcript.js), so the stats count model calls and tokens in every mode.
const DEFAULT_MODE = "all";

const state = {
  session: null,
  taskId: null,
  mode: DEFAULT_MODE,
  source: null,
  transcript: null,
  opens: 0,
  streams: 0, // streams this page opened: marks which one the view shows
  listTimer: null,
  scrollPending: false,
};

class Unauthorized extends Error {}

async function request(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", ...(options.headers ?? {}) },
  });
  if (response.status === 401) throw new Unauthorized();
  return response;
}

// ------------------------------------------------------------------------- session

async function boot() {
  let response;
  try {
    response = await request("ui/session");
  } catch (error) {
    if (error instanceof Unauthorized) return showLogin("");
    return showLogin(`cannot reach the server: ${error.message}`);
  }
  if (!response.ok) return showLogin(`the server answered ${response.status}`);
  showApp(await response.json());
}

function showLogin(message) {
  closeStream();
  clearTimeout(state.listTimer);
  state.session = null;
  state.taskId = null;
  $("app").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message ?? "";
  $("api-key").focus();
}

function showApp(session) {
  state.session = session;
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("tenant").textContent = session.tenant;
  $("logout").hidden = session.open_mode;
  refreshList();
  route();
}

async function logIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  let response;
  try {
    response = await request("ui/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ api_key: key, can_answer: $("can-answer").checked }),
    });
  } catch (error) {
    $("login-error").textContent = error instanceof Unauthorized ? "Unknown API key." : error.message;
    return;
  }
  if (!response.ok) {
    $("login-error").textContent = `The server answered ${response.status}.`;
    return;
  }
  $("api-key").value = "";
  showApp(await response.json());
}

async function logOut() {
  await fetch("ui/session", { method: "DELETE", credentials: "same-origin" });
  showLogin("Logged out.");
}

// ------------------------------------------------------------------------ task list

function age(iso) {
  const ms = Date.parse(iso ?? "");
  if (Number.isNaN(ms)) return "";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return new Date(ms).toLocaleString();
}

async function refreshList() {
  clearTimeout(state.listTimer);
  if (!document.hidden && state.session) {
    try {
      const response = await request("v1/tasks?limit=50");
      if (response.ok) {
        renderList((await response.json()).tasks);
        $("list-state").textContent = "";
      } else {
        $("list-state").textContent = `list: ${response.status}`;
      }
    } catch (error) {
      if (error instanceof Unauthorized) return showLogin("Your session ended: sign in again.");
      $("list-state").textContent = "offline, retrying";
    }
  }
  if (state.session) state.listTimer = setTimeout(refreshList, LIST_POLL_MS);
}

function renderList(tasks) {
  const list = $("task-list");
  list.replaceChildren();
  if (!tasks.length) list.append(el("li", "empty", "No tasks yet."));
  for (const task of tasks) {
    const item = el("li", "task-item");
    item.dataset.taskId = task.task_id;
    if (task.task_id === state.taskId) item.classList.add("selected");
    const link = el("a", "task-link");
    link.href = `#task=${encodeURIComponent(task.task_id)}&mode=${state.mode}`;
    const head = el("div", "task-line");
    head.append(el("span", `badge badge-${task.status}`, task.status), el("span", "age", age(task.created_at)));
    const meta = el("div", "task-sub", `${task.agent} · ${task.task_id}`);
    link.append(head, el("div", "task-input", task.input ?? task.task_id), meta);
    item.append(link);
    list.append(item);
  }
}

// ------------------------------------------------------------------------ one task

function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  const taskId = params.get("task");
  const mode = MODES.has(params.get("mode")) ? params.get("mode") : DEFAULT_MODE;
  if (!state.session) return;
  if (!taskId) {
    closeStream();
    state.taskId = null;
    $("task").hidden = true;
    $("placeholder").hidden = false;
    return;
  }
  if (taskId !== state.taskId || mode !== state.mode || !state.source) openTask(taskId, mode);
}

function closeStream() {
  if (state.source) state.source.close();
  state.source = null;
}

function setConn(text, kind) {
  const conn = $("conn");
  conn.textContent = text;
  conn.dataset.state = kind ?? text;
}

/** Watch ``taskId`` in ``mode`` from the start of its stream. */
function openTask(taskId, mode) {
  closeStream();
  state.taskId = taskId;
  state.mode = mode;
  state.opens = 0;
  state.streams += 1;
  $("task").dataset.stream = String(state.streams);
  $("task").dataset.mode = mode;
  for (const item of document.querySelectorAll(".task-item")) {
    item.classList.toggle("selected", item.dataset.taskId === taskId);
  }
  $("placeholder").hidden = true;
  $("task").hidden = false;
  $("mode").value = mode;
  $("task-id").textContent = taskId;
  $("task-title").textContent = taskId;
  $("task-agent").textContent = "";
  $("task-attempt").textContent = "";
  $("cursor").textContent = "–";
  $("reconnects").textContent = "0";
  $("raw").replaceChildren();
  $("transcript").replaceChildren();
  state.transcript = new Transcript($("transcript"), mode, { canAnswer: Boolean(state.session?.can_answer) });
  renderStats();
  setConn("connecting");
  loadHeader(taskId);

  const query = new URLSearchParams({ mode: "all", after: "0" });
  const source = new EventSource(`v1/tasks/${encodeURIComponent(taskId)}/events?${query}`);
  state.source = source;
  source.onopen = () => {
    if (state.source !== source) return;
    state.opens += 1;
    $("reconnects").textContent = String(Math.max(0, state.opens - 1));
    setConn("live");
  };
  source.onerror = (event) => {
    // A task's own `event: error` frame reaches this handler too (same event name):
    // it carries data, a dropped connection does not.
    if (event instanceof MessageEvent) return;
    if (state.source !== source) return;
    if (source.readyState === EventSource.CLOSED) diagnose(taskId);
    else setConn("reconnecting…", "reconnecting");
  };
  const receive = (message) => onMessage(source, message);
  for (const type of EVENT_TYPES) source.addEventListener(type, receive);
  source.onmessage = receive;
}

async function loadHeader(taskId) {
  try {
    const response = await request(`v1/tasks/${encodeURIComponent(taskId)}`);
    if (state.taskId !== taskId) return;
    if (response.status === 404) {
      setConn("no such task", "error");
      closeStream();
      return;
    }
    if (!response.ok) return;
    const task = await response.json();
    $("task-agent").textContent = task.agent;
    $("task-attempt").textContent = `attempt ${task.attempt}`;
    if (!state.transcript.status) setBadge(task.status);
  } catch (error) {
    if (error instanceof Unauthorized) showLogin("Your session ended: sign in again.");
  }
}

async function diagnose(taskId) {
  // EventSource gives up only on an HTTP error; say which one.
  closeStream();
  try {
    const response = await request(`v1/tasks/${encodeURIComponent(taskId)}`);
    setConn(response.status === 404 ? "no such task" : "disconnected", "error");
  } catch (error) {
    if (error instanceof Unauthorized) return showLogin("Your session ended: sign in again.");
    setConn("disconnected", "error");
  }
}

function onMessage(source, message) {
  if (state.source !== source) return;
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    return;
  }
  if (!event.type) event.type = message.type;
  const viewer = $("viewer");
  const atBottom = viewer.scrollHeight - viewer.scrollTop - viewer.clientHeight < 48;
  state.transcript.add(event, message.lastEventId);
  if (event.type !== "gap" && message.lastEventId) $("cursor").textContent = message.lastEventId;
  appendRaw(event, event.type === "gap" ? "" : message.lastEventId);
  renderStats();
  if (atBottom && !state.scrollPending) {
    state.scrollPending = true;
    requestAnimationFrame(() => {
      state.scrollPending = false;
      viewer.scrollTop = viewer.scrollHeight;
    });
  }
  if (event.type === "completed") {
    source.close(); // else EventSource would reconnect to a stream that has ended
    state.source = null;
    setConn("ended");
    refreshList();
  }
}

function appendRaw(event, cursor) {
  const raw = $("raw");
  const line = el("li", "", `${event.seq ?? "–"}  ${event.type}  ${cursor || "(no cursor)"}`);
  line.title = JSON.stringify(event);
  raw.append(line);
  if (raw.childElementCount > 2000) raw.firstElementChild.remove();
  $("raw-count").textContent = String(state.transcript.events);
}

function setBadge(status) {
  const badge = $("task-status");
  badge.textContent = status ?? "";
  badge.className = `badge badge-${status}`;
}

function renderStats() {
  const t = state.transcript;
  if (t.input) $("task-title").textContent = t.input;
  if (t.status) {
    setBadge(t.status);
    // the list polls every few seconds; the open task's row need not wait for it
    const row = document.querySelector(`.task-item.selected .badge`);
    if (row && row.textContent !== t.status) {
      row.textContent = t.status;
      row.className = `badge badge-${t.status}`;
    }
  }
  if (t.attempt) $("task-attempt").textContent = `attempt ${t.attempt}`;
  $("stat-elapsed").textContent = t.elapsed === null ? "–" : seconds(t.elapsed);
  $("stat-events").textContent = String(t.events);
  $("stat-iterations").textContent =
    t.iteration === null ? "–" : `${t.iteration}${t.maxIterations ? ` / ${t.maxIterations}` : ""}`;
  $("stat-tools").textContent = String(t.toolCalls);
  $("stat-calls").textContent = String(t.modelCalls);
  const u = t.usage;
  $("stat-usage").textContent = u.total ? `${u.total} (${u.prompt} in + ${u.completion} out)` : "–";
}

// ------------------------------------------------------------------- answering a wait

// A waiting call's form (transcript.js) is sent here: the viewer's own route, a same-origin
// JSON POST with the session's CSRF token (the cookie alone cannot answer) and an
// idempotency key, so a retried click counts once. The `input` event that follows in the
// stream closes the form.
async function answer(event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains("answer")) return;
  event.preventDefault();
  const action = event.submitter?.value;
  const callId = form.dataset.call;
  const text = form.querySelector(".answer-text")?.value.trim() ?? "";
  let body;
  if (action === "answer") body = { message: text, tool_call_id: callId };
  else body = { approvals: [{ tool_call_id: callId, approved: action === "approve", ...(text ? { reason: text } : {}) }] };
  const status = form.querySelector(".answer-status");
  for (const control of form.querySelectorAll("button")) control.disabled = true;
  status.textContent = "sending…";
  const key = crypto.randomUUID();
  try {
    const response = await request(`ui/tasks/${encodeURIComponent(state.taskId)}/input`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-CSRF-Token": state.session?.csrf_token ?? "",
        "Idempotency-Key": key,
      },
      body: JSON.stringify(body),
    });
    if (response.ok) {
      // the stream's `input` event may have closed the form already; it says more
      if (!form.classList.contains("answered")) status.textContent = "sent";
      return;
    }
    const error = await response.json().catch(() => ({}));
    status.textContent = `refused (${response.status}): ${error.error?.message ?? ""}`;
  } catch (error) {
    if (error instanceof Unauthorized) return showLogin("Your session ended: sign in again.");
    status.textContent = `not sent: ${error.message}`;
  }
  if (!form.classList.contains("answered")) {
    for (const control of form.querySelectorAll("button")) control.disabled = false;
  }
}

// --------------------------------------------------------------------------- wiring

$("login-form").addEventListener("submit", logIn);
$("transcript").addEventListener("submit", answer);
$("logout").addEventListener("click", logOut);
$("replay").addEventListener("click", () => state.taskId && openTask(state.taskId, state.mode));
$("mode").addEventListener("change", () => {
  location.hash = `task=${encodeURIComponent(state.taskId)}&mode=${$("mode").value}`;
});
window.addEventListener("hashchange", route);
document.addEventListener("visibilitychange", () => !document.hidden && state.session && refreshList());
boot();

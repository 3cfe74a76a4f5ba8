// Turns a task's events (PROTOCOL section 3) into the transcript the viewer shows, one
// event at a time. No network here: app.js feeds it. Everything from an event becomes a
// text node (never markup), so an event cannot inject HTML.
//
// The viewer reads every event (mode `all`) and applies the chosen streaming mode here,
// to what it draws only: its stats (model calls, tokens, tool calls, status) come from
// every event whatever the mode, and the protocol's mode table stays as it is.

import { CATEGORIES, shows } from "./modes.js";

/** An element with a class and optional text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function json(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

/** ``{"result": x}`` as ``x``, a bare value as is, anything else as JSON. */
function toolOutput(result) {
  if (result && typeof result === "object" && !Array.isArray(result)) {
    const keys = Object.keys(result);
    if (keys.length === 1 && keys[0] === "result") return json(result.result);
  }
  return json(result);
}

export function seconds(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function millis(timestamp) {
  const ms = Date.parse(timestamp ?? "");
  return Number.isNaN(ms) ? null : ms;
}

/** The rendering state of one stream read from one cursor. */
export class Transcript {
  /** Draws into ``root`` the events that ``mode`` shows; counts every event. */
  constructor(root, mode = "all", { canAnswer = false } = {}) {
    this.root = root;
    this.mode = mode;
    this.canAnswer = canAnswer; // the session may approve, deny and answer
    this.waits = new Map(); // tool_call_id -> the form of a call that waits for a person
    this.startedAt = null; // ms of the first event
    this.lastAt = null;
    this.events = 0;
    this.status = null;
    this.input = null;
    this.agent = null;
    this.attempt = null;
    this.iteration = null;
    this.maxIterations = null;
    this.toolCalls = 0;
    this.calledIds = new Set(); // ids of counted tool calls (`action` and `tool_call` name the same)
    this.modelCalls = 0;
    this.usage = { prompt: 0, completion: 0, total: 0 };
    this.done = false;
    this.discarded = 0; // characters the last retry removed
    // Blocks of the model turn in progress: its text, thinking and tool calls being
    // composed. A turn is complete once its tool calls are ready; on `retry` the
    // interrupted turn's partial output is reset (PROTOCOL section 3, rule 4).
    this.turn = [];
    this.text = null; // the open text block {body, node, turnText}
    this.thinking = null;
    this.refusalNode = null; // the open refusal text, if the model refused
    this.turnText = "";
    this.lastTurnText = ""; // the text of the last completed turn
    this.cards = new Map(); // tool_call_id -> card
    this.composing = new Map(); // delta index -> card of the turn in progress
  }

  /** Add one event (``cursor`` is its stream id, ``""`` for a gap marker). */
  add(event, cursor) {
    const kind = event.type;
    if (kind !== "gap") this.events += 1;
    const at = millis(event.timestamp);
    if (at !== null) {
      if (this.startedAt === null) this.startedAt = at;
      this.lastAt = at;
    }
    if (typeof event.attempt === "number") this.attempt = event.attempt;
    STATS[kind]?.call(this, event);
    if (shows(this.mode, kind)) {
      const handler = HANDLERS[kind];
      if (handler) handler.call(this, event, at);
      else this.entry("other", at).append(el("span", "dim", `${kind} `), el("code", "", JSON.stringify(event)));
    }
    // a turn whose tool calls are recorded is complete, drawn or not: a retry keeps it
    if (kind === "tool_calls_ready") this.endTurn();
  }

  /** Seconds from the first event to the last (the offsets' scale, queueing included). */
  get elapsed() {
    if (this.startedAt === null || this.lastAt === null) return null;
    return (this.lastAt - this.startedAt) / 1000;
  }

  /** The answer text on screen, as a user reads it. */
  get shownText() {
    return [...this.root.querySelectorAll(".text-body")].map((node) => node.textContent).join("");
  }

  // ---------------------------------------------------------------- building blocks

  entry(kind, at) {
    const item = el("li", `entry entry-${kind}`);
    const offset = at !== null && this.startedAt !== null ? `+${((at - this.startedAt) / 1000).toFixed(2)}s` : "";
    item.append(el("span", "offset", offset));
    const body = el("div", "entry-body");
    item.append(body);
    this.root.append(item);
    return body;
  }

  closeText() {
    this.text = null;
    this.thinking = null;
    this.refusalNode = null;
  }

  endTurn() {
    this.closeText();
    this.turn = [];
    if (this.turnText) this.lastTurnText = this.turnText;
    this.turnText = "";
    this.composing = new Map();
  }

  card(event, at) {
    const id = event.tool_call_id;
    let card = id ? this.cards.get(id) : undefined;
    if (card === undefined && typeof event.index === "number") {
      card = this.composing.get(event.index);
    }
    if (card === undefined) {
      const body = this.entry("tool", at);
      const head = el("div", "tool-head");
      const name = el("span", "tool-name", event.tool_name ?? "tool");
      const state = el("span", "tool-state", "composing");
      head.append(el("span", "tool-icon", "⚙"), name, state);
      const args = el("pre", "tool-args", "");
      const result = el("pre", "tool-result");
      result.hidden = true;
      body.append(head, args, result);
      card = { item: body.parentElement, name, state, args, result, calledAt: null };
      this.turn.push(card.item);
    }
    // Deltas after the first name their call by index only.
    if (typeof event.index === "number") this.composing.set(event.index, card);
    if (id && !this.cards.has(id)) this.cards.set(id, card);
    if (event.tool_name) card.name.textContent = event.tool_name;
    return card;
  }

  /** A call that waits for a person: what it waits for, and the form that answers it
   * (app.js sends it), or a note when this session is read-only. */
  wait(event, at, title, kind) {
    this.closeText();
    const body = this.entry("wait", at);
    body.append(el("div", "wait-title", title));
    const form = el("form", "answer");
    form.dataset.call = event.tool_call_id ?? "";
    form.dataset.kind = kind;
    const status = el("span", "answer-status", "");
    if (!this.canAnswer) {
      form.append(el("span", "dim", "read-only viewer: answer with the API key, or sign in with answering allowed"));
    } else if (kind === "approval") {
      const reason = el("input", "answer-text");
      reason.name = "reason";
      reason.placeholder = "reason (optional)";
      const approve = el("button", "approve", "Approve");
      approve.type = "submit";
      approve.value = "approve";
      const deny = el("button", "deny", "Deny");
      deny.type = "submit";
      deny.value = "deny";
      form.append(reason, approve, deny);
    } else {
      const text = el("input", "answer-text");
      text.name = "message";
      text.required = true;
      text.placeholder = "your answer";
      const send = el("button", "approve", "Answer");
      send.type = "submit";
      send.value = "answer";
      form.append(text, send);
    }
    form.append(status);
    body.append(form);
    this.waits.set(form.dataset.call, form);
  }

  /** A recorded answer closes its call's form. */
  answered(callId, text) {
    const form = this.waits.get(callId);
    if (!form) return;
    for (const control of form.querySelectorAll("input, button")) control.disabled = true;
    form.classList.add("answered");
    form.querySelector(".answer-status").textContent = text;
  }

  banner(kind, at, text) {
    this.closeText();
    this.entry(kind, at).append(el("div", "banner", text));
  }
}

const HANDLERS = {
  approval_required(event, at) {
    const args = JSON.stringify(event.parameters ?? {});
    this.wait(event, at, `Waits for approval: ${event.tool_name}(${args})`, "approval");
  },
  input_required(event, at) {
    this.wait(event, at, `The agent asks: ${event.prompt ?? ""}`, "question");
  },
  input(event, at) {
    const parts = [];
    for (const item of event.approvals ?? []) {
      const text = item.approved ? "✓ approved" : `✗ denied${item.reason ? `: ${item.reason}` : ""}`;
      this.answered(item.tool_call_id, text);
      parts.push(text);
    }
    if (event.message !== undefined && event.message !== null) {
      // with a tool call id it answers a question; without, it is a message to the task
      const text = event.tool_call_id ? `answered: ${event.message}` : `message: ${event.message}`;
      if (event.tool_call_id) this.answered(event.tool_call_id, text);
      parts.push(text);
    }
    this.entry("lifecycle", at).append(el("span", "dim", `input · ${parts.join(", ")}`));
  },
  queued(event, at) {
    const body = this.entry("queued", at);
    body.append(el("span", "dim", `queued · ${event.agent ?? "agent"}`));
    if (event.input) body.append(el("div", "input", event.input));
  },
  status(event, at) {
    this.entry("lifecycle", at).append(el("span", "dim", event.status ?? "started"));
  },
  started(event, at) {
    this.entry("lifecycle", at).append(el("span", "dim", `started · ${event.agent ?? event.agent_id ?? ""}`));
  },
  retry(event, at) {
    const note = this.discarded ? ` — partial output of the interrupted turn reset` : "";
    this.banner("retry", at, `↻ attempt ${event.attempt}: ${event.reason ?? "retry"}${note}`);
  },
  iteration_start(event, at) {
    this.closeText();
    const total = event.max_iterations ? ` of ${event.max_iterations}` : "";
    this.entry("iteration", at).append(el("span", "iteration", `Iteration ${event.iteration}${total}`));
  },
  token(event, at) {
    this.thinking = null;
    if (this.text === null) {
      const body = this.entry("text", at);
      const node = el("p", "text-body", "");
      body.append(node);
      this.text = { node, content: document.createTextNode("") };
      node.append(this.text.content);
      this.turn.push(body.parentElement);
    }
    const content = String(event.content ?? "");
    this.text.content.appendData(content);
    this.turnText += content;
  },
  thinking_token(event, at) {
    this.text = null;
    if (this.thinking === null) {
      const body = this.entry("thinking", at);
      body.append(el("span", "label", "thinking"));
      const node = el("p", "thinking-body", "");
      body.append(node);
      this.thinking = { content: document.createTextNode("") };
      node.append(this.thinking.content);
      this.turn.push(body.parentElement);
    }
    this.thinking.content.appendData(String(event.content ?? ""));
  },
  refusal(event, at) {
    // The model refused: its words stream like tokens, marked as a refusal.
    this.text = null;
    if (this.refusalNode === null) {
      const body = this.entry("refusal", at);
      body.append(el("span", "label", "refusal"));
      const node = el("p", "text-body error-text", "");
      body.append(node);
      this.refusalNode = document.createTextNode("");
      node.append(this.refusalNode);
      this.turn.push(body.parentElement);
    }
    this.refusalNode.appendData(String(event.content ?? ""));
  },
  custom(event, at) {
    // A tool's own event (ctx.emit): its name and data, under the tool's card time.
    this.closeText();
    const body = this.entry("custom", at);
    body.append(el("span", "chip", `${event.tool_name ?? "tool"} · ${event.name ?? "event"}`));
    body.append(el("span", "dim", ` ${json(event.data ?? null)}`));
  },
  tool_call_delta(event, at) {
    this.closeText();
    const card = this.card(event, at);
    if (card.calledAt === null) card.args.textContent = String(event.arguments ?? "");
  },
  tool_calls_ready(event, at) {
    for (const call of event.tool_calls ?? []) {
      const card = this.card(call, at);
      card.args.textContent = json(call.parameters ?? {});
      card.state.textContent = "ready";
    }
  },
  thought(event, at) {
    const content = String(event.content ?? "");
    // The thought repeats the turn's streamed tokens (it follows the turn's tool calls,
    // if any); show it only when they were not streamed.
    const streamed = (this.turnText || this.lastTurnText).trim();
    if (content && content.trim() !== streamed) {
      this.closeText();
      const body = this.entry("thought", at);
      body.append(el("span", "label", "thought"), el("p", "thought-body", content));
    }
    this.closeText();
  },
  action(event, at) {
    HANDLERS.tool_call.call(this, event, at);
  },
  tool_call(event, at) {
    this.closeText();
    const card = this.card(event, at);
    if (card.calledAt === null) card.calledAt = at;
    card.args.textContent = json(event.parameters ?? {});
    card.state.textContent = "running…";
    card.item.dataset.state = "running";
  },
  tool_result(event, at) {
    if (event.success === false) return; // a failed call's twin: its tool_error shows it
    const card = this.card(event, at);
    const took = card.calledAt !== null && at !== null ? ` · ${seconds((at - card.calledAt) / 1000)}` : "";
    card.state.textContent = `✓ done${took}`;
    card.item.dataset.state = "ok";
    card.result.hidden = false;
    card.result.textContent = `→ ${toolOutput(event.result)}`;
  },
  tool_error(event, at) {
    const card = this.card(event, at);
    card.state.textContent = "✗ failed";
    card.item.dataset.state = "error";
    card.result.hidden = false;
    card.result.textContent = `✗ ${event.error ?? "error"}`;
  },
  observation(event, at) {
    this.closeText();
    const cls = event.has_error ? "observation error-text" : "observation dim";
    this.entry("observation", at).append(el("span", cls, `observation: ${event.content ?? ""}`));
  },
  usage(event, at) {
    this.closeText();
    const body = this.entry("usage", at);
    const counts = `${event.prompt_tokens ?? "?"} prompt + ${event.completion_tokens ?? "?"} completion`;
    body.append(el("span", "chip", `model call ${this.modelCalls}: ${counts} = ${event.total_tokens ?? "?"} tokens`));
  },
  result(event, at) {
    this.closeText();
    const body = this.entry("result", at);
    body.append(el("div", "result-head", event.success === false ? "Result (failed)" : "Result"));
    const output = event.output;
    if (output !== undefined && output !== null && output !== "") {
      body.append(el("div", "result-output", json(output)));
    }
    const facts = [`execution ${seconds(event.execution_time)}`];
    if (event.iterations !== undefined) facts.push(plural(event.iterations, "iteration"));
    if (event.tool_calls_count !== undefined) facts.push(plural(event.tool_calls_count, "tool call"));
    if (event.usage) {
      const u = event.usage;
      facts.push(`${u.prompt_tokens} + ${u.completion_tokens} = ${u.total_tokens} tokens`);
    }
    if (event.reason) facts.push(`reason: ${event.reason}`);
    body.append(el("div", "result-facts", facts.join(" · ")));
  },
  error(event, at) {
    this.closeText();
    const retry = event.retryable ? " (retryable)" : "";
    this.entry("error", at).append(
      el("div", "banner", `✗ ${event.error_type ?? "Error"}${retry}: ${event.error ?? ""}`),
    );
  },
  cancelled(event, at) {
    this.banner("cancelled", at, `cancelled: ${event.reason ?? ""}`);
  },
  completed(event, at) {
    this.closeText();
    const mark = this.status === "succeeded" ? "✓" : "✗";
    this.entry("completed", at).append(
      el("div", `final final-${this.status}`, `${mark} ${this.status} in ${seconds(event.execution_time)}`),
    );
  },
  gap(event, at) {
    this.banner(
      "gap",
      at,
      `⚠ gap: events before ${event.first_cursor} have expired (retention); the stream continues at seq ${event.first_seq}`,
    );
  },
  dawp_run_started(event, at) {
    this.entry("lifecycle", at).append(el("span", "dim", `workflow ${event.workflow_id ?? ""} started`));
  },
  dawp_step_started(event, at) {
    this.entry("lifecycle", at).append(el("span", "dim", `▸ step ${event.step_index}: ${event.step_id}`));
  },
  dawp_step_completed(event, at) {
    const mark = event.success === false ? "✗" : "✓";
    this.entry("lifecycle", at).append(el("span", "dim", `${mark} step ${event.step_index}: ${event.step_id}`));
  },
  dawp_run_completed(event, at) {
    const mark = event.success === false ? "✗" : "✓";
    this.entry("lifecycle", at).append(el("span", "dim", `${mark} workflow finished`));
  },
};

function running() {
  this.status = "running";
}

// What every event tells the stats and the header, drawn or not.
const STATS = {
  queued(event) {
    this.status = "queued";
    this.input = event.input ?? this.input;
    this.agent = event.agent ?? this.agent;
  },
  status: running,
  started: running,
  approval_required() {
    this.status = "waiting";
  },
  input_required() {
    this.status = "waiting";
  },
  retry() {
    // The interrupted turn's partial output goes, whatever the mode draws (PROTOCOL rule 4).
    this.status = "running";
    this.discarded = 0;
    for (const item of this.turn) {
      this.discarded += item.textContent.length;
      item.remove();
    }
    for (const [id, card] of this.cards) if (!card.item.isConnected) this.cards.delete(id);
    this.endTurn();
  },
  iteration_start(event) {
    this.iteration = event.iteration ?? this.iteration;
    this.maxIterations = event.max_iterations ?? this.maxIterations;
  },
  action(event) {
    STATS.tool_call.call(this, event);
  },
  tool_call(event) {
    const id = event.tool_call_id;
    if (id && this.calledIds.has(id)) return;
    if (id) this.calledIds.add(id);
    this.toolCalls += 1;
  },
  usage(event) {
    this.modelCalls += 1;
    this.usage.prompt += event.prompt_tokens ?? 0;
    this.usage.completion += event.completion_tokens ?? 0;
    this.usage.total += event.total_tokens ?? 0;
  },
  result(event) {
    if (event.usage && !this.modelCalls) {
      // no usage events (an agent that reports none): the result's totals are all there is
      this.usage = {
        prompt: event.usage.prompt_tokens ?? 0,
        completion: event.usage.completion_tokens ?? 0,
        total: event.usage.total_tokens ?? 0,
      };
    }
  },
  cancelled() {
    this.status = "cancelled";
  },
  completed(event) {
    this.done = true;
    this.status = event.status ?? (event.success ? "succeeded" : "failed");
  },
};

/** Every event type the server may name in an SSE ``event:`` line (``gap`` included). */
export const EVENT_TYPES = [...new Set([...Object.keys(HANDLERS), ...Object.keys(CATEGORIES)])];

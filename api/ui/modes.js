// The streaming modes of PROTOCOL section 5, as the viewer applies them to what it draws.
// The server's tables are the source (streams/events.py, agentstream/protocol.py); a
// browser test checks that these are equal to them.

/** Category of every known type: the protocol's table (streams/events.py CATEGORIES). */
export const CATEGORIES = {
  queued: "task", status: "task", started: "task", retry: "task",
  error: "task", cancelled: "task", completed: "task", gap: "task", reset: "task",
  approval_required: "task", input_required: "task", input: "task", input_delivered: "task",
  iteration_start: "agent", thought: "agent", observation: "agent",
  token: "chunk", thinking_token: "chunk", refusal: "chunk", tool_call_delta: "chunk",
  tool_calls_ready: "tool", action: "tool", tool_call: "tool",
  tool_result: "tool", tool_error: "tool",
  dawp_run_started: "group", dawp_step_started: "group",
  dawp_step_completed: "group", dawp_run_completed: "group",
  usage: "debug", result: "output", custom: "custom",
};

/** The categories each streaming mode passes; `null`: everything, unknown types too. */
export const MODE_CATEGORIES = {
  core: ["agent", "tool", "chunk", "task", "group"],
  chunk: ["chunk"],
  output: ["output"],
  chunk_output: ["chunk", "output"],
  all: null,
};

/** Types every mode passes: a reader always learns of failure, the end and lost history. */
export const ALWAYS_PASS = ["error", "completed", "gap", "reset"];

/** Whether ``mode`` shows an event of type ``type`` (PROTOCOL section 5). */
export function shows(mode, type) {
  const allowed = MODE_CATEGORIES[mode] ?? null;
  if (allowed === null || ALWAYS_PASS.includes(type)) return true;
  const category = CATEGORIES[type];
  return category !== undefined && allowed.includes(category);
}

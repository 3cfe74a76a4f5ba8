// Drives the API's interrupts with the stock AG-UI HttpAgent (no subclass, no override):
// a run that ends with the interrupt outcome, then the run that answers it with `resume`,
// and so on until a run finishes without one. Prints one JSON object: each run's events,
// outcome and interrupts, and the agent's messages.
//
//   AGUI_URL=... AGUI_KEY=... AGUI_ANSWER='{"approved": true}' node agui_hitl.mjs PROMPT
//
// AGUI_ANSWER is the payload of every `tool_call` interrupt; AGUI_REPLY the text of every
// `input_required` one; AGUI_CANCEL=1 abandons every interrupt instead; AGUI_APPROVE
// (a comma list) names tools whose calls wait for approval (forwardedProps.approve_tools).
import { HttpAgent } from "@ag-ui/client";

const url = process.env.AGUI_URL;
const key = process.env.AGUI_KEY;
const [prompt] = process.argv.slice(2);
if (!url || !key || !prompt) {
  console.error("usage: AGUI_URL=... AGUI_KEY=... node agui_hitl.mjs PROMPT");
  process.exit(2);
}
const answer = JSON.parse(process.env.AGUI_ANSWER || '{"approved": true}');
const reply = process.env.AGUI_REPLY || "blue";
const cancel = process.env.AGUI_CANCEL === "1";
const approveTools = process.env.AGUI_APPROVE ? process.env.AGUI_APPROVE.split(",") : undefined;

const agent = new HttpAgent({ url, headers: { Authorization: `Bearer ${key}` } });
const runs = [];
let current = null;
agent.subscribe({
  onEvent: ({ event }) => {
    current.events.push(event.type);
  },
  onRunFinishedEvent: (params) => {
    current.outcome = params.outcome;
    current.interrupts = params.interrupts || [];
    current.runId = params.event.runId;
  },
  onRunErrorEvent: ({ event }) => {
    current.error = event.message;
  },
});

agent.addMessage({ id: "user-1", role: "user", content: prompt });
let resume;
for (let i = 0; i < 5; i++) {
  current = { events: [], outcome: null, interrupts: [] };
  runs.push(current);
  const params = { forwardedProps: { agent: "hybrid", ...(approveTools ? { approve_tools: approveTools } : {}) } };
  if (resume) params.resume = resume;
  const { result } = await agent.runAgent(params);
  current.result = result ?? null;
  if (agent.pendingInterrupts.length === 0) break;
  resume = agent.pendingInterrupts.map((interrupt) =>
    cancel
      ? { interruptId: interrupt.id, status: "cancelled" }
      : {
          interruptId: interrupt.id,
          status: "resolved",
          payload: interrupt.reason === "tool_call" ? answer : { message: reply },
        },
  );
}

console.log(JSON.stringify({ threadId: agent.threadId, messages: agent.messages, runs }));

// Drives the API with the stock AG-UI HttpAgent (no subclass, no override): two runs on
// one thread. Prints one JSON object: the agent's messages and each run's events and result.
//
//   AGUI_URL=http://127.0.0.1:8000/v1/ag-ui AGUI_KEY=... node agui_run.mjs "first" "second"
import { HttpAgent } from "@ag-ui/client";

const url = process.env.AGUI_URL;
const key = process.env.AGUI_KEY;
const agentName = process.env.AGUI_AGENT || "hybrid";
const prompts = process.argv.slice(2);
if (!url || !key || prompts.length === 0) {
  console.error("usage: AGUI_URL=... AGUI_KEY=... node agui_run.mjs PROMPT [PROMPT...]");
  process.exit(2);
}

const agent = new HttpAgent({ url, headers: { Authorization: `Bearer ${key}` } });
const runs = [];
let events = [];
agent.subscribe({
  onEvent: ({ event }) => {
    events.push(event.type);
  },
});

for (const [i, prompt] of prompts.entries()) {
  events = [];
  agent.addMessage({ id: `user-${i + 1}`, role: "user", content: prompt });
  const { result, newMessages } = await agent.runAgent({ forwardedProps: { agent: agentName } });
  runs.push({ events, result, newMessages });
}

console.log(JSON.stringify({ threadId: agent.threadId, messages: agent.messages, runs }));

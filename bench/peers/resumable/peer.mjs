// Peer side of bench/resume_peer_bench.py: Vercel's `resumable-stream` on the bench's Redis.
//
//   node peer.mjs produce <streamId> <events> <intervalMs>
//   node peer.mjs read <streamId> <events> <reconnects> <everyEvents> <pauseMs> <stallMs>
//
// REDIS_URL selects the Redis (the library's default clients read it). Every process
// prints `ready`, waits for `go` on stdin, and ends with one JSON line.
//
// An event is the line `<index>\n`; a reader checks it sees 0..events-1 exactly once, in
// order. Resuming uses the library's own cursor, `skipCharacters` = characters read so far.
import { createInterface } from "node:readline";
import { createResumableStreamContext } from "resumable-stream/redis";

const [mode, streamId, ...rest] = process.argv.slice(2);
const ctx = createResumableStreamContext({ waitUntil: null, keyPrefix: "rsbench" });
const lines = createInterface({ input: process.stdin });
const queued = [];
let waiting = null;
lines.on("line", (line) => (waiting ? (waiting(line), (waiting = null)) : queued.push(line)));
const nextLine = () => (queued.length ? Promise.resolve(queued.shift()) : new Promise((r) => (waiting = r)));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

async function produce(events, intervalMs) {
  let go;
  const started = new Promise((resolve) => (go = resolve));
  let produced = 0;
  const makeStream = () =>
    new ReadableStream({
      async start(controller) {
        await started;
        let due = now();
        for (let i = 0; i < events; i++) {
          controller.enqueue(`${i}\n`);
          produced = i + 1;
          due += intervalMs;
          const wait = due - now();
          if (wait > 0) await sleep(wait);
        }
        controller.close();
      },
    });
  const stream = await ctx.createNewResumableStream(streamId, makeStream);
  console.log("ready");
  if ((await nextLine()).trim() !== "go") process.exit(2);
  const t0 = now();
  go();
  // The original response: drained to nowhere (its client went away; the library keeps
  // producing and serves every reader by resuming).
  const reader = stream.getReader();
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
  }
  await sleep(50); // the DONE sentinel and messages are published after the stream closed
  console.log(JSON.stringify({ produced, wall_ms: now() - t0 }));
  process.exit(0);
}

async function read(events, reconnects, everyEvents, pauseMs, stallMs) {
  console.log("ready");
  if ((await nextLine()).trim() !== "go") process.exit(2);
  const t0 = now();
  let consumed = 0; // characters read: the resume cursor
  let buf = "";
  let expected = 0;
  const out = { received: 0, lost: 0, duplicated: 0, out_of_order: 0, resumes: [], reconnects: 0,
                ended: false, errors: {}, stalled: false, after_stall: null };
  const note = (e) => { const k = String(e && e.message || e); out.errors[k] = (out.errors[k] || 0) + 1; };
  const take = (text) => {
    consumed += text.length;
    buf += text;
    let cut;
    while ((cut = buf.indexOf("\n")) >= 0) {
      const i = Number(buf.slice(0, cut));
      buf = buf.slice(cut + 1);
      out.received++;
      if (i === expected) expected++;
      else if (i < expected) out.duplicated++;
      else { out.lost += i - expected; out.out_of_order++; expected = i + 1; }
    }
  };
  let connection = 0;
  const deadline = t0 + 120_000;
  while (!out.ended && now() < deadline) {
    const begin = now();
    let stream;
    try {
      stream = await ctx.resumeExistingStream(streamId, consumed);
    } catch (e) {
      note(e);
      out.resumes.push({ connection, first_event_ms: null, error: String(e && e.message || e), after_ms: now() - begin });
      if (out.stalled) break;
      await sleep(pauseMs);
      continue;
    }
    if (stream === null) { out.ended = true; out.done_on_resume = true; break; } // already DONE
    if (stream === undefined) { note("no such stream"); break; }
    const reader = stream.getReader();
    let first = null;
    let got = 0;
    const limit = connection < reconnects ? everyEvents : Infinity;
    for (;;) {
      const timer = new Promise((resolve) => setTimeout(() => resolve("stall"), stallMs));
      const r = await Promise.race([reader.read(), timer]);
      if (r === "stall") { out.stalled = true; break; }
      if (r.done) { out.ended = true; break; }
      if (r.value.length === 0) continue; // the catch-up message may be empty
      if (first === null) first = now() - begin;
      const before = out.received;
      take(r.value);
      got += out.received - before;
      if (got >= limit) break;
    }
    out.resumes.push({ connection, first_event_ms: first, events: got });
    await reader.cancel().catch(note);
    if (out.stalled) {
      // the producer is gone: what does a reader that reconnects now get?
      const b = now();
      try {
        const again = await ctx.resumeExistingStream(streamId, consumed);
        out.after_stall = { result: again === null ? "done" : again === undefined ? "unknown stream" : "stream",
                            after_ms: now() - b };
        if (again) {
          const rr = again.getReader();
          const r = await Promise.race([rr.read(), sleep(stallMs).then(() => "stall")]);
          out.after_stall.first_read = r === "stall" ? "nothing within stall_ms" : r.done ? "end" : `${r.value.length} chars`;
          await rr.cancel().catch(() => {});
        }
      } catch (e) {
        out.after_stall = { error: String(e && e.message || e), after_ms: now() - b };
      }
      break;
    }
    if (!out.ended) {
      connection++;
      out.reconnects = connection;
      await sleep(pauseMs);
    }
  }
  out.missing_at_end = out.ended ? Math.max(0, events - expected) : events - expected;
  out.wall_ms = now() - t0;
  console.log(JSON.stringify(out));
  process.exit(0);
}

try {
  if (mode === "produce") await produce(Number(rest[0]), Number(rest[1]));
  else if (mode === "read") await read(...rest.slice(0, 5).map(Number));
  else { console.error(`unknown mode ${mode}`); process.exit(2); }
} catch (e) {
  console.error(e);
  process.exit(1);
}

// flowdriver.mjs — web/flow.js's FlowControl under Node, for `make bench-link`.
//
//   node flowdriver.mjs PATH/TO/flow.js
//
// Reads one JSON object per line on stdin and answers each with one line
// {"window": N, "outstanding": M, "state": {cwnd, needed, queueDelay, transfer, rtt, ...}}
// (state: the policy's inputs, for the bench's trace). The calls are the ones web/stream.js makes:
//   {"op": "ping"}                                                   nothing (an answer: ready)
//   {"op": "hello", "window": W, "live": bool, "handshakeMs": ms}   new FlowControl(...)
//   {"op": "credits", "now": ms, "n": K}                             K x creditSent(now)
//   {"op": "frame", "meta": {...}, "now": ms, "bytes": B}            frameArrived(meta, now, B)
// flow.js is loaded from its own source (as a data: URL, since web/ has no package.json
// saying its .js files are ES modules), so the policy measured is the page's, unchanged.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const source = readFileSync(process.argv[2], "utf8");
const { FlowControl } = await import(
  "data:text/javascript;base64," + Buffer.from(source).toString("base64")
);

let flow = new FlowControl();
for await (const line of createInterface({ input: process.stdin })) {
  const call = JSON.parse(line);
  if (call.op === "ping") {
    // Nothing to do: the answer below says flow.js is loaded.
  } else if (call.op === "hello") {
    flow = new FlowControl(call.window, call.live, call.handshakeMs);
  } else if (call.op === "credits") {
    for (let i = 0; i < call.n; i += 1) flow.creditSent(call.now);
  } else if (call.op === "frame") {
    flow.frameArrived(call.meta, call.now, call.bytes);
  } else {
    throw new Error(`flowdriver: unknown op ${call.op}`);
  }
  // The policy's inputs beside its answer, for bench-link's trace of its decisions.
  const state = {
    cwnd: flow.cwnd,
    needed: flow.needed,
    queueDelay: flow.queueDelay,
    transfer: flow.transfer,
    rtt: flow.rtt,
    probeAfter: flow.probeAfter,
  };
  process.stdout.write(
    JSON.stringify({ window: flow.window, outstanding: flow.outstanding, state }) + "\n",
  );
}

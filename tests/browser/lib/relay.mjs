// relay.mjs — a TCP relay on 127.0.0.1 that delays every byte by a fixed time each way: a long
// link in front of the daemon. Chromium's network emulation throttles WebSocket bandwidth but
// does not delay WebSocket messages, so the round trip of the throttled-link tests comes from
// here. Order is kept (same delay for every chunk); nothing is dropped.
//
// Interface:
//   startRelay(targetPort, oneWayMs)   {port, url, dropConnections(), close()}
//                                      dropConnections: cut every connection (a network drop)

import net from "node:net";
import { once } from "node:events";

function delayedPipe(from, to, delayMs) {
  const queue = []; // {due, chunk} or {due, end: true}
  let timer = null;
  const flush = () => {
    timer = null;
    const now = Date.now();
    while (queue.length && queue[0].due <= now) {
      const item = queue.shift();
      if (item.end) to.end();
      else if (!to.destroyed) to.write(item.chunk);
    }
    if (queue.length) timer = setTimeout(flush, queue[0].due - now);
  };
  const push = (item) => {
    queue.push(item);
    if (!timer) timer = setTimeout(flush, delayMs);
  };
  from.on("data", (chunk) => push({ due: Date.now() + delayMs, chunk }));
  from.on("end", () => push({ due: Date.now() + delayMs, end: true }));
  from.on("close", () => {
    // Let what is queued go out, then make sure the other side is gone too.
    setTimeout(() => to.destroy(), delayMs + 50);
  });
}

export async function startRelay(targetPort, oneWayMs) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    delayedPipe(client, upstream, oneWayMs);
    delayedPipe(upstream, client, oneWayMs);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}/`,
    dropConnections() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

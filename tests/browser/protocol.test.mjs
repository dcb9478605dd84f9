// web/protocol.js on its own, in node: URLs under a proxy's path prefix, ws:/wss: from the
// page's scheme, and frame parsing.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ProtocolError, httpUrl, parseControl, parseFrame, websocketUrl } from "../../web/protocol.js";

const at = (href) => ({ href });

test("the WebSocket URL keeps the page's path prefix and takes wss: from https:", () => {
  assert.equal(websocketUrl("aquarium", at("https://example.org/cam1/")), "wss://example.org/cam1/websocket/aquarium");
  assert.equal(
    websocketUrl("aquarium", at("https://example.org/cam1/index.html?x=1#camera=aquarium")),
    "wss://example.org/cam1/websocket/aquarium",
  );
  assert.equal(websocketUrl("", at("http://127.0.0.1:8888/")), "ws://127.0.0.1:8888/websocket");
  assert.equal(websocketUrl("a b", at("http://h/")), "ws://h/websocket/a%20b");
});

test("HTTP URLs are relative to the page's folder", () => {
  assert.equal(httpUrl("api/state", at("https://example.org/cam1/#camera=x")), "https://example.org/cam1/api/state");
  assert.equal(httpUrl("api/state", at("http://h:8888/")), "http://h:8888/api/state");
});

function frameMessage(meta, jpeg) {
  const head = Buffer.from(JSON.stringify(meta));
  const out = Buffer.alloc(4 + head.length + jpeg.length);
  out.writeUInt32BE(head.length, 0);
  head.copy(out, 4);
  jpeg.copy(out, 4 + head.length);
  return out.buffer.slice(out.byteOffset, out.byteOffset + out.length);
}

test("a frame message gives its metadata and the JPEG bytes", () => {
  const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);
  const meta = { camera: "c", seq: 7, time: 1.5, age: 0.01, width: 2, height: 2, offline: false };
  const parsed = parseFrame(frameMessage(meta, jpeg));
  assert.deepEqual(parsed.meta, meta);
  assert.deepEqual(Buffer.from(parsed.jpeg), jpeg);
});

test("broken frame and control messages raise ProtocolError", () => {
  const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xd9]);
  assert.throws(() => parseFrame(new ArrayBuffer(2)), ProtocolError);
  const tooLong = frameMessage({ seq: 1 }, jpeg);
  new DataView(tooLong).setUint32(0, 9999);
  assert.throws(() => parseFrame(tooLong), ProtocolError);
  assert.throws(() => parseFrame(frameMessage({ nope: 1 }, jpeg)), ProtocolError);
  assert.throws(() => parseFrame(frameMessage({ seq: 1 }, Buffer.from("GIF89a"))), ProtocolError);
  assert.throws(() => parseControl("{"), ProtocolError);
  assert.throws(() => parseControl('{"no": "type"}'), ProtocolError);
  assert.equal(parseControl('{"type": "state", "state": "live"}').state, "live");
});

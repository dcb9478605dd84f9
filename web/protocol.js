/*
 * protocol.js — the pyimagestream wire protocol, client side. Pure functions, no I/O.
 *
 * Wire protocol (the same words open pyimagestreamd/server.py):
 *
 * - Original protocol (no subprotocol), compatible with the first PyImageStream client: every
 *   text message from the client is answered by exactly one binary message holding one JPEG,
 *   the newest frame that client has not seen yet.
 * - Protocol 2 (subprotocol "pyimagestream.v2"): the client sends {"type": "next"} for each
 *   frame it wants (up to `window` outstanding), {"type": "pause"} / {"type": "resume"} when
 *   it stops / starts watching, {"type": "size", "max_width": N} for frames at most N wide. The server sends {"type": "hello", ...} first, then
 *   {"type": "state", ...} on every camera state change, and for each credit one binary
 *   message: a 4-byte big-endian length N, N bytes of JSON metadata (camera, seq, time, age,
 *   width, height, offline), then the JPEG.
 *
 * This client speaks protocol 2 only.
 *
 * Interface:
 *   SUBPROTOCOL               "pyimagestream.v2"
 *   MSG_NEXT, MSG_PAUSE, MSG_RESUME
 *                             the client's three basic messages, already serialized
 *   sizeMessage(maxWidth)     {"type": "size", "max_width": N}: frames at most N wide from
 *                             now on (0: full size); only to a server whose hello lists
 *                             "size" in its features
 *   CLOSE                     close codes by name (GOING_AWAY, POLICY, TOO_BIG, TRY_AGAIN,
 *                             UNKNOWN_CAMERA)
 *   pageBase(loc)             URL of the folder the page was served from; it keeps a reverse
 *                             proxy's path prefix (https://host/cam1/index.html -> .../cam1/)
 *   httpUrl(path, loc)        absolute URL of a server path such as "api/state", under pageBase
 *   websocketUrl(camera, loc) ws: or wss: URL (from the page's own scheme) of the camera's
 *                             WebSocket under pageBase; camera "" is the server's default
 *   parseFrame(buffer)        {meta, jpeg} from one binary message (ArrayBuffer); jpeg is a
 *                             Uint8Array view into buffer. Throws ProtocolError.
 *   parseControl(text)        the object of one text message (it has a string `type`).
 *                             Throws ProtocolError.
 *   ProtocolError             what the two parsers throw
 */

export const SUBPROTOCOL = "pyimagestream.v2";

export const MSG_NEXT = JSON.stringify({ type: "next" });
export const MSG_PAUSE = JSON.stringify({ type: "pause" });
export const MSG_RESUME = JSON.stringify({ type: "resume" });

export function sizeMessage(maxWidth) {
  return JSON.stringify({ type: "size", max_width: Math.max(0, Math.min(16384, Math.round(maxWidth))) });
}

export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  TRY_AGAIN: 1013,
  UNKNOWN_CAMERA: 4404,
});

export class ProtocolError extends Error {}

export function pageBase(loc = window.location) {
  // new URL(".", ...) drops the file name and the query but keeps every folder, so a page
  // at https://host/cam1/ or https://host/cam1/index.html gives https://host/cam1/.
  return new URL(".", loc.href);
}

export function httpUrl(path, loc = window.location) {
  return new URL(path, pageBase(loc)).href;
}

export function websocketUrl(camera, loc = window.location) {
  const path = camera ? `websocket/${encodeURIComponent(camera)}` : "websocket";
  const url = new URL(path, pageBase(loc));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  url.search = "";
  return url.href;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function parseFrame(buffer) {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < 4) {
    throw new ProtocolError("frame message shorter than its length prefix");
  }
  const length = new DataView(buffer).getUint32(0, false);
  if (4 + length > buffer.byteLength) {
    throw new ProtocolError(`frame metadata length ${length} exceeds the message`);
  }
  let meta;
  try {
    meta = JSON.parse(utf8.decode(new Uint8Array(buffer, 4, length)));
  } catch (err) {
    throw new ProtocolError(`frame metadata is not JSON: ${err.message}`);
  }
  if (meta === null || typeof meta !== "object" || typeof meta.seq !== "number") {
    throw new ProtocolError("frame metadata lacks a numeric seq");
  }
  const jpeg = new Uint8Array(buffer, 4 + length);
  // A JPEG starts with SOI (FF D8); anything else would only fail later, in the decoder.
  if (jpeg.length < 4 || jpeg[0] !== 0xff || jpeg[1] !== 0xd8) {
    throw new ProtocolError("frame payload is not a JPEG");
  }
  return { meta, jpeg };
}

export function parseControl(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (err) {
    throw new ProtocolError(`text message is not JSON: ${err.message}`);
  }
  if (msg === null || typeof msg !== "object" || typeof msg.type !== "string") {
    throw new ProtocolError("text message has no type");
  }
  return msg;
}

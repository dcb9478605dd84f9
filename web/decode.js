/*
 * decode.js — JPEG bytes to something a canvas can draw, with what this browser has.
 *
 * First choice: createImageBitmap, which decodes off the main thread and makes no object URL.
 * Where it is missing (Safari 14 and older): an <img> decoding an object URL with
 * img.decode(); the URL is revoked as soon as the decode settles, so none is kept per frame.
 * A browser with neither gets null, and the page says so instead of pulling frames it could
 * never show.
 *
 * Interface:
 *   pickDecoder(scope = globalThis)
 *       {kind, decode(jpeg)} or null. kind: "bitmap" (decode resolves to an ImageBitmap, for
 *       a "bitmaprenderer" canvas) or "image" (an HTMLImageElement, for a "2d" canvas).
 *       jpeg: a Uint8Array. Both kinds of picture have width, height and close().
 */

function decodeBitmap(scope) {
  return (jpeg) => scope.createImageBitmap(new scope.Blob([jpeg], { type: "image/jpeg" }));
}

function decodeImage(scope) {
  return async (jpeg) => {
    const url = scope.URL.createObjectURL(new scope.Blob([jpeg], { type: "image/jpeg" }));
    const image = new scope.Image();
    try {
      image.src = url;
      await image.decode();
    } finally {
      // The decoded picture stays with the element; the URL is needed no more.
      scope.URL.revokeObjectURL(url);
    }
    // Same shape as an ImageBitmap: the view reads width and height and calls close().
    image.close = () => image.removeAttribute("src");
    return image;
  };
}

export function pickDecoder(scope = globalThis) {
  if (typeof scope.createImageBitmap === "function") {
    return { kind: "bitmap", decode: decodeBitmap(scope) };
  }
  const img = scope.HTMLImageElement && scope.HTMLImageElement.prototype;
  if (img && typeof img.decode === "function" && scope.URL && scope.URL.createObjectURL) {
    return { kind: "image", decode: decodeImage(scope) };
  }
  return null;
}

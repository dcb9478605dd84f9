// pixels.mjs — what a screenshot shows, for the zoom tests: the test pattern's colour bars
// (static, unlike its moving box and clock) along one row of the screen. A PNG screenshot is
// decoded by the browser under test itself (an <img> and a 2d canvas), so no image library
// is needed here.
//
// Interface:
//   BARS                          the pattern's seven 75% bars, left to right, as RGB
//   barOf([r, g, b])              index of the nearest bar, or -1 when nothing is near
//   PIXELS_IN_PAGE                source of an async page function (png base64, points) ->
//                                 [[r, g, b], ...], for any driver's evaluate
//   expectedBars(rect, xs)        for screen xs, the bar a frame drawn at rect (the canvas's
//                                 on-screen box, zoom included) puts there; null within 3
//                                 screen pixels of a bar's edge

export const BARS = [
  [191, 191, 191],
  [191, 191, 0],
  [0, 191, 191],
  [0, 191, 0],
  [191, 0, 191],
  [191, 0, 0],
  [0, 0, 191],
];

export function barOf(rgb) {
  let best = -1;
  let bestDistance = 60 ** 2 * 3; // JPEG and scaling blur a little; far off is no bar at all
  BARS.forEach((bar, i) => {
    const d = bar.reduce((sum, c, k) => sum + (c - rgb[k]) ** 2, 0);
    if (d < bestDistance) {
      best = i;
      bestDistance = d;
    }
  });
  return best;
}

export const PIXELS_IN_PAGE = `async (png, points) => {
  const image = new Image();
  image.src = "data:image/png;base64," + png;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  return points.map(([x, y]) => Array.from(context.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3)));
}`;

export function expectedBars(rect, xs) {
  const barWidth = rect.width / BARS.length;
  return xs.map((x) => {
    const bar = Math.floor((x - rect.x) / barWidth);
    const edge = Math.min(x - rect.x - bar * barWidth, (bar + 1) * barWidth - (x - rect.x));
    return edge < 3 || bar < 0 || bar >= BARS.length ? null : bar;
  });
}

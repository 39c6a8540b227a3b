/**
 * @module bench/chart — a line chart drawn as SVG by hand and rendered to PNG with resvg:
 * query latency (p50 solid, p99 dashed) against corpus size, one colour per mode.
 */
import { Resvg } from '@resvg/resvg-js';

export interface Series {
  name: string;
  /** [x, y] points, x ascending. */
  points: Array<[number, number]>;
  dashed?: boolean;
  color: string;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** Rounds up to 1, 2 or 5 × a power of ten: a tidy top for an axis. */
function niceMax(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v || 1));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v)!;
}

/** Draws the chart as an SVG document. */
export function lineChartSvg(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const W = 720;
  const H = 420;
  const m = { l: 70, r: 170, t: 40, b: 55 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xMax = Math.max(...xs) * 1.05;
  const yMax = niceMax(Math.max(...ys) * 1.05);
  const px = (x: number) => m.l + (x / xMax) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - (y / yMax) * (H - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2 - m.r / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const y = (yMax * i) / 5;
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(y)}" y2="${py(y)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 8}" y="${py(y) + 4}" text-anchor="end">${+y.toFixed(2)}</text>`);
  }
  for (const x of [...new Set(xs)]) {
    out.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${H - m.b}" y2="${H - m.b + 5}" stroke="#333"/>`);
    out.push(`<text x="${px(x)}" y="${H - m.b + 19}" text-anchor="middle">${x >= 1000 ? `${+(x / 1000).toFixed(1)}k` : x}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#333"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="#333"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    for (const p of s.points) out.push(`<circle cx="${px(p[0])}" cy="${py(p[1])}" r="3.5" fill="${s.color}"/>`);
    const ly = m.t + 10 + i * 20;
    out.push(`<line x1="${W - m.r + 15}" x2="${W - m.r + 45}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${W - m.r + 52}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Renders an SVG document to PNG bytes. */
export function renderPng(svg: string): Buffer {
  return new Resvg(svg, { background: '#fff', font: { loadSystemFonts: true } }).render().asPng();
}

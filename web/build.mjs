// Assembles web/dist from the page's sources and the pinned Chart.js build, with no bundler:
// the page is three small files and one library. Run by `npm run build` (dev/up and dev/test
// do it after `npm ci`).
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "vendor"), { recursive: true });
cpSync(join(here, "src"), dist, { recursive: true });
cpSync(
  join(here, "node_modules", "chart.js", "dist", "chart.umd.min.js"),
  join(dist, "vendor", "chart.umd.min.js"),
);
console.log(`web page assembled in ${dist}`);

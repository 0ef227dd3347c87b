// Builds the console into ../dist (embedded in the binary with go:embed and committed):
//   npm ci && npm run build
// The output depends only on src/, this file and the locked packages, and dist/SOURCES.sha256 records their
// hash so that `go test ./admin/console` notices a build that is older than its sources.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, copyFileSync } from "node:fs";
import { join, relative, sep } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const dist = join(here, "..", "dist");

// sourcesHash must match sourcesHash in ../console.go: sorted paths relative to web/, each "path\0sha256hex\n".
function sourcesHash() {
  const files = ["package.json", "package-lock.json", "build.mjs"];
  const walk = (dir) => {
    for (const name of readdirSync(join(here, dir))) {
      const rel = dir + "/" + name;
      if (statSync(join(here, rel)).isDirectory()) walk(rel);
      else files.push(rel);
    }
  };
  walk("src");
  files.sort();
  const h = createHash("sha256");
  for (const f of files) {
    const fh = createHash("sha256").update(readFileSync(join(here, f))).digest("hex");
    h.update(f.split(sep).join("/") + "\0" + fh + "\n");
  }
  return h.digest("hex");
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: { app: join(here, "src", "main.js"), style: join(here, "src", "app.css") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  outdir: dist,
  legalComments: "linked",
  logLevel: "warning",
});
copyFileSync(join(here, "src", "index.html"), join(dist, "index.html"));
writeFileSync(join(dist, "SOURCES.sha256"), sourcesHash() + "\n");
console.log("console built into", relative(process.cwd(), dist));

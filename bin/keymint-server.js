#!/usr/bin/env node
// Runs the compiled dist/ (the image; a checkout after `npm run build`) when it is at least as
// new as every source file, else the TypeScript sources through tsx: a stale dist/ never runs,
// and the start path of a built checkout loads no compiler (tsx costs ~100 MB and ~0.6 s).
import { existsSync, readdirSync, statSync } from 'node:fs';

const source = new URL('../src/', import.meta.url);
const built = new URL('../dist/cli.js', import.meta.url);
const buildInfo = new URL('../dist/.tsbuildinfo', import.meta.url);

function newestSourceMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = new URL(entry.isDirectory() ? `${entry.name}/` : entry.name, dir);
    newest = Math.max(newest, entry.isDirectory() ? newestSourceMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const upToDate =
  existsSync(built) &&
  (!existsSync(source) || (existsSync(buildInfo) && statSync(buildInfo).mtimeMs >= newestSourceMtime(source)));
if (upToDate) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('cli.ts', source).href);
}

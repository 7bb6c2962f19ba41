// build.mjs: the Node half of build.sh (which installs the tools and calls it). Not run by hand.
//
//   node build.mjs component WIT_DIR SDK_DIR PROJECT_DIR OUT.wasm BUILD_DIR
//   node build.mjs types WIT_DIR OUT_DIR
//
// `component` copies the project's modules and hearsay.js into BUILD_DIR (a private directory that
// build.sh removes afterwards), adds an entry module that exports the project's `handle` wrapped
// by hearsay.js, and turns it into a component with componentize-js (the StarlingMonkey engine plus
// a snapshot of the evaluated modules). `types` writes the TypeScript declarations of the WIT
// interfaces (`declare module 'hearsay:handler/...'`), as jco's guest types.

import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

const WORLD = 'handler';
const ENTRY = '__hearsay_entry.js';

function fail(message) {
  console.error(`build.sh: ${message}`);
  process.exit(1);
}

// The handler world's WIT source (handler.wit; handler-http.wit and deps/ are for the SDKs that
// call wasi:http through bindings, JavaScript has fetch()).
function witSource(witDir) {
  const file = join(witDir, 'handler.wit');
  if (!existsSync(file)) fail(`no handler.wit in ${witDir}`);
  return readFileSync(file, 'utf8');
}

async function types(witDir, outDir) {
  // jco's `types`/`guest-types` commands cannot read a WIT path in jco 1.35.0 (the WASI shim they
  // run under has no preopened directories), so call its generator with the WIT source instead.
  const { $init, generateTypes } = await import('@bytecodealliance/jco-transpile/component');
  await $init;
  const files = generateTypes(WORLD, {
    wit: { tag: 'source', val: witSource(witDir) },
    world: WORLD,
    guest: true,
    features: { tag: 'list', val: [] },
    tlaCompat: false,
  });
  for (const [name, contents] of files) {
    const path = join(outDir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, contents);
  }
  console.error(`build.sh: wrote the WIT's TypeScript declarations to ${outDir}`);
}

async function component(witDir, sdkDir, projectDir, out, buildDir) {
  if (!existsSync(join(projectDir, 'handler.js'))) {
    fail(`${join(projectDir, 'handler.js')} not found: a JavaScript handler is a module handler.js that exports handle(event)`);
  }
  const src = join(buildDir, 'src');
  mkdirSync(src, { recursive: true });
  // hearsay.js first, so that a project's own copy (as `hearsay new` writes it) wins.
  cpSync(join(sdkDir, 'hearsay.js'), join(src, 'hearsay.js'));
  cpSync(projectDir, src, {
    recursive: true,
    // The modules (.js, .mjs) of the project and its subdirectories, but not hidden files and
    // directories (.git, ...) or node_modules (the build tools).
    filter: (from) => {
      if (from === projectDir) return true;
      const name = basename(from);
      if (name.startsWith('.') || name === 'node_modules') return false;
      return statSync(from).isDirectory() || /\.m?js$/.test(name);
    },
  });
  if (existsSync(join(src, ENTRY))) fail(`${ENTRY} is a name the build uses: rename that file`);
  writeFileSync(
    join(src, ENTRY),
    [
      `import * as handler from './handler.js';`,
      `import { wrapHandle } from './hearsay.js';`,
      `export const handle = wrapHandle(handler.handle);`,
      ``,
    ].join('\n'),
  );

  // componentize-js keeps its work files in the system temp directory, and maps the directory of
  // the entry module (or the current directory, when the entry is below it) as the guest's "/".
  const work = join(buildDir, 'tmp');
  mkdirSync(work);
  process.env.TMPDIR = work;
  process.chdir(src);

  const { componentize } = await import('@bytecodealliance/componentize-js');
  let result;
  try {
    result = await componentize({
      sourcePath: join(src, ENTRY),
      witPath: witDir,
      worldName: WORLD,
      // fetch() goes out through wasi:http/outgoing-handler (the agent checks each request
      // against the handler's http grants); a handler does not serve HTTP, so no fetch event.
      disableFeatures: ['fetch-event'],
    });
  } catch (err) {
    fail(`componentize-js failed:\n${String(err?.message ?? err).replaceAll(src + '/', '')}`);
  }
  const tmp = `${out}.tmp-${process.pid}`;
  writeFileSync(tmp, result.component);
  renameSync(tmp, out);
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === 'types' && args.length === 2) {
    await types(...args.map((a) => resolve(a)));
  } else if (mode === 'component' && args.length === 5) {
    await component(...args.map((a) => resolve(a)));
  } else {
    fail(`usage: node build.mjs component WIT SDK PROJECT OUT BUILD_DIR | types WIT OUT_DIR`);
  }
} catch (err) {
  fail(err?.stack ?? String(err));
}

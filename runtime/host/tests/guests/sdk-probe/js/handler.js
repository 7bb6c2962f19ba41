// sdk-probe in JavaScript: see ../README.md.

import { CommandError, Kind, KvError, TagError, commands, kv, reply, tags, text } from './hearsay.js';

function refused(err) {
  const number = err.kind === 'bad-key' ? err.length : err.limit;
  return number === undefined ? `refused:${err.kind}` : `refused:${err.kind}(${number})`;
}

/** @param {string} payload */
function onKv(payload) {
  const [op, key = '', ...rest] = payload.split(' ');
  switch (op) {
    case 'set':
      kv.set(key, rest.join(' '));
      return 'ok';
    case 'get':
      return kv.getText(key) ?? 'none';
    case 'del':
      return String(kv.delete(key));
    case 'keys':
      return kv.keys(key).join(',');
  }
  throw new Error(`unknown op ${op}`);
}

/** @param {string} payload */
function onCommand(payload) {
  const newline = payload.indexOf('\n');
  const out = newline < 0 ? commands.run(payload) : commands.run(payload.slice(0, newline), payload.slice(newline + 1));
  return `status=${out.status ?? 'none'} signal=${out.signal ?? 'none'} cut=${out.truncated} out=${out.stdoutText} err=${out.stderrText}`;
}

/** @param {string} payload */
function onTag(payload) {
  const [op, name = '', ...rest] = payload.split(' ');
  if (op === 'set') tags.set(name, rest.join(' '));
  else tags.delete(name);
  return 'ok';
}

/** @param {string} payload */
async function onHttp(payload) {
  const newline = payload.indexOf('\n');
  const line = newline < 0 ? payload : payload.slice(0, newline);
  const [method, url] = line.split(' ');
  const init = newline < 0 ? { method } : { method, body: payload.slice(newline + 1) };
  try {
    const response = await fetch(url, init);
    return `status=${response.status} body=${await response.text()}`;
  } catch (err) {
    // As in a browser, a failed fetch rejects with a TypeError that does not say why (the
    // agent's log does): a request off the allow-list, a refused connection, a body too large.
    if (err instanceof TypeError) return 'refused:network';
    throw err;
  }
}

const MODES = { kv: onKv, command: onCommand, tag: onTag, http: onHttp };

/** @param {import('./hearsay.js').Event} event */
export async function handle(event) {
  if (event.tag === Kind.Tick) {
    kv.set('tick', `${event.val.periodMs}/${event.val.count}`);
    return;
  }
  if (event.tag !== Kind.Query) return;
  const mode = MODES[event.val.name];
  if (mode === undefined) throw new Error(`unknown query ${event.val.name}`);
  let answer;
  try {
    answer = await mode(text(event.val.payload));
  } catch (err) {
    if (!(err instanceof CommandError || err instanceof KvError || err instanceof TagError)) throw err;
    answer = refused(err);
  }
  reply(answer);
}

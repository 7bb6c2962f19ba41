// select: answers `query:select` with the members this node knows, filtered and projected as the
// JSON payload asks:
//
//   {"where": {"status": "alive", "tags": {"role": "web"}}, "fields": ["name", "addr", "tags.role"]}
//
// Every part is optional (an empty payload is `{}`):
//   where.status  a status (none, alive, leaving, left, failed) or a list of them; default: any
//   where.tags    tags a member must have, with exactly these values
//   fields        what to answer for each member, default ["name", "addr", "port", "status", "tags"]:
//                 name, addr (strings), port (number), status (string), tags (object, keys sorted,
//                 without the agent's own _hearsay_* tags), rtt_micros (number, or null when
//                 unknown), tags.KEY (the tag's value, or null)
//
// The answer is a JSON array with one object per matching member, sorted by name, each with exactly
// the fields asked for as keys, in the order asked: [{"name":"a","addr":"10.0.0.5","tags.role":"web"}].
// A payload that is not valid JSON or not of this shape fails the event with "select: ...".

import { Kind, ReplyError, errorMessage, members, replyStream, text } from './hearsay.js';

const STATUSES = ['none', 'alive', 'leaving', 'left', 'failed'];
const DEFAULT_FIELDS = ['name', 'addr', 'port', 'status', 'tags'];

// Each field's value for a member.
const FIELDS = {
  name: (m) => m.name,
  addr: (m) => m.addr,
  port: (m) => m.port,
  status: (m) => m.status,
  tags: (m) => Object.fromEntries(m.tags.filter(([k]) => !k.startsWith('_hearsay_')).sort(([a], [b]) => compare(a, b))),
  rtt_micros: (m) => (m.rttMicros === undefined ? null : Number(m.rttMicros)),
};

class SelectError extends Error {}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function checkKeys(object, allowed, where) {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) {
      throw new SelectError(`unknown key "${key}" in ${where} (expected ${allowed.join(', ')})`);
    }
  }
}

// The request, checked: { statuses: Set | null, tags: [key, value][], fields: [name, get][] }.
function parseRequest(payload) {
  const source = text(payload);
  let request = {};
  if (source.trim() !== '') {
    try {
      request = JSON.parse(source);
    } catch (err) {
      throw new SelectError(`payload is not JSON: ${err.message}`);
    }
  }
  if (!isObject(request)) throw new SelectError('payload must be a JSON object');
  checkKeys(request, ['where', 'fields'], 'the payload');

  const where = request.where ?? {};
  if (!isObject(where)) throw new SelectError('"where" must be an object');
  checkKeys(where, ['status', 'tags'], '"where"');

  let statuses = null;
  if (where.status !== undefined) {
    const list = Array.isArray(where.status) ? where.status : [where.status];
    for (const status of list) {
      if (!STATUSES.includes(status)) {
        throw new SelectError(`"where.status" must be one of ${STATUSES.join(', ')} (or a list of them), not ${JSON.stringify(status)}`);
      }
    }
    statuses = new Set(list);
  }

  const tags = Object.entries(where.tags ?? {});
  if (!isObject(where.tags ?? {}) || tags.some(([, v]) => typeof v !== 'string')) {
    throw new SelectError('"where.tags" must be an object of strings, e.g. {"role": "web"}');
  }

  const names = request.fields ?? DEFAULT_FIELDS;
  if (!Array.isArray(names) || names.some((f) => typeof f !== 'string')) {
    throw new SelectError('"fields" must be a list of strings');
  }
  const fields = names.map((name) => {
    if (name.startsWith('tags.') && name.length > 'tags.'.length) {
      const key = name.slice('tags.'.length);
      return [name, (m) => m.tags.find(([k]) => k === key)?.[1] ?? null];
    }
    if (!Object.hasOwn(FIELDS, name)) {
      throw new SelectError(`unknown field "${name}" (fields: ${Object.keys(FIELDS).join(', ')}, tags.KEY)`);
    }
    return [name, FIELDS[name]];
  });

  return { statuses, tags, fields };
}

function matches(member, { statuses, tags }) {
  if (statuses && !statuses.has(member.status)) return false;
  return tags.every(([key, value]) => member.tags.some(([k, v]) => k === key && v === value));
}

/** @param {import('./hearsay.js').Event} event */
export function handle(event) {
  if (event.tag !== Kind.Query) return;
  try {
    const request = parseRequest(event.val.payload);
    const rows = members()
      .filter((m) => matches(m, request))
      .sort((a, b) => compare(a.name, b.name))
      .map((m) => Object.fromEntries(request.fields.map(([name, get]) => [name, get(m)])));

    // Streamed, a batch of rows at a time, so a large cluster's answer is never one big string.
    const out = replyStream();
    let batch = '[';
    rows.forEach((row, i) => {
      batch += (i === 0 ? '' : ',') + JSON.stringify(row);
      if (batch.length >= 16 * 1024) {
        out.write(batch);
        batch = '';
      }
    });
    out.write(batch + ']');
    out.finish();
  } catch (err) {
    // A bad request or a refused reply (too-large, closed: ...) is worded as it is; a bug keeps its
    // error's name (TypeError: ...).
    const known = err instanceof SelectError || err instanceof ReplyError;
    throw new Error(`select: ${known ? err.message : errorMessage(err)}`);
  }
}

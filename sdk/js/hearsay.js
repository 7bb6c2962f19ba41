// hearsay.js: write a hearsay event handler in a few lines of JavaScript.
//
// A handler is a module `handler.js` that exports `handle(event)`. `build.sh` turns it (with this
// file and any other modules it imports) into a WebAssembly component for the agent:
//
//   import { Kind, reply, log, text } from './hearsay.js';
//
//   export function handle(event) {
//     switch (event.tag) {
//       case Kind.Query:
//         reply(event.val.payload);
//         break;
//       case Kind.User:
//         log.info(`user event ${event.val.name}: ${text(event.val.payload)}`);
//         break;
//     }
//   }
//
// `event` is the WIT `event` variant as `{ tag, val }` (see `wit/handler.wit`; `./build.sh --types
// DIR` writes its TypeScript types for an editor). `handle` may be async. Throwing (or rejecting)
// makes the event fail: the agent logs the error's message and counts a handler error. Returning a
// string or bytes from a query answers it, like `reply(...)`.
//
// Each event runs in a fresh instance: nothing survives between events except what the handler keeps
// in its store (`kv`). Everything beyond the event needs a grant from the operator, named in the
// handler's `[[handler]]` block; without one the call throws a `not-granted` error and nothing
// happens: files, environment, real clocks, `emit`, `commands.run` (operator-approved commands),
// `kv` (a persistent key-value store), `tags` (this node's tags) and timers (`events =
// "every:10s"` delivers `Kind.Tick` events). Do not call these helpers at the top level of a module:
// modules are evaluated when the component is built, where there is no agent to ask.

import { localMember as rawLocalMember, members as rawMembers } from 'hearsay:handler/cluster@0.2.0';
import { respond, openStream, ReplyStream as RawReplyStream } from 'hearsay:handler/reply@0.2.0';
import { emit as rawEmit } from 'hearsay:handler/emit@0.2.0';
import { log as rawLog } from 'hearsay:handler/log@0.2.0';
import { run as rawRun } from 'hearsay:handler/commands@0.2.0';
import { get as kvGet, set as kvSet, delete as kvDelete, keys as kvKeys } from 'hearsay:handler/kv@0.2.0';
import { set as tagSet, delete as tagDelete } from 'hearsay:handler/tags@0.2.0';

/** @typedef {import('hearsay:handler/types@0.2.0').Event} Event */
/** @typedef {import('hearsay:handler/types@0.2.0').Member} Member */
/** @typedef {import('hearsay:handler/types@0.2.0').Query} Query */
/** @typedef {import('hearsay:handler/types@0.2.0').UserEvent} UserEvent */
/** @typedef {import('hearsay:handler/types@0.2.0').Tick} Tick */
/** @typedef {import('hearsay:handler/types@0.2.0').Level} Level */
/** @typedef {string | Uint8Array | ArrayBuffer | ArrayBufferView} Bytes */

/** The event kinds: the `tag` of an event. */
export const Kind = Object.freeze({
  MemberJoin: 'member-join',
  MemberLeave: 'member-leave',
  MemberFailed: 'member-failed',
  MemberUpdate: 'member-update',
  MemberReap: 'member-reap',
  User: 'user',
  Query: 'query',
  Tick: 'tick',
});

/**
 * Whether `event` is a member event (its `val` is then the list of members concerned).
 * @param {Event} event
 * @returns {boolean}
 */
export function isMemberEvent(event) {
  return event.tag.startsWith('member-');
}

/**
 * The event in Serf's filter syntax: `member-join`, `user:deploy`, `query:load`; `tick` for a timer.
 * @param {Event} event
 * @returns {string}
 */
export function describe(event) {
  switch (event.tag) {
    case Kind.User:
      return `user:${event.val.name}`;
    case Kind.Query:
      return `query:${event.val.name}`;
    default:
      return event.tag;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `data` as bytes: a string is encoded as UTF-8, a buffer or view is used as it is.
 * @param {Bytes} data
 * @returns {Uint8Array}
 */
export function bytes(data) {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError(`expected a string or bytes (Uint8Array, ArrayBuffer), got ${typeName(data)}`);
}

/**
 * `data` (a payload) decoded as UTF-8; invalid sequences become U+FFFD.
 * @param {Uint8Array} data
 * @returns {string}
 */
export function text(data) {
  return decoder.decode(data);
}

/**
 * The value of tag `key` of `member`, or undefined when it has no such tag.
 * @param {Member} member
 * @param {string} key
 * @returns {string | undefined}
 */
export function tag(member, key) {
  return member.tags.find(([k]) => k === key)?.[1];
}

/** This node. @returns {Member} */
export function localMember() {
  return rawLocalMember();
}

/** Every member this node knows, including itself and members that left or failed. @returns {Member[]} */
export function members() {
  return rawMembers();
}

/** Why a reply was refused: `kind` is `not-a-query`, `already-replied`, `too-large` or `closed`. */
export class ReplyError extends Error {
  /**
   * @param {'not-a-query' | 'already-replied' | 'too-large' | 'closed'} kind
   * @param {{ limit?: number, reason?: string }} [detail] `limit` (bytes) for too-large, `reason` for closed
   */
  constructor(kind, { limit, reason } = {}) {
    super(withDetail(kind, limit, reason));
    this.name = 'ReplyError';
    /** The WIT `reply-error` case. */
    this.kind = kind;
    /** For `too-large`: the most bytes the asker can receive. */
    this.limit = limit;
    /** For `closed`: why the reply channel is gone. */
    this.reason = reason;
  }
}

/** Why an emitted event was refused: `kind` is `not-granted`, `too-large` or `rejected`. */
export class EmitError extends Error {
  /**
   * @param {'not-granted' | 'too-large' | 'rejected'} kind
   * @param {{ limit?: number, reason?: string }} [detail] `limit` (bytes) for too-large, `reason` for rejected
   */
  constructor(kind, { limit, reason } = {}) {
    super(withDetail(kind, limit, reason));
    this.name = 'EmitError';
    /** The WIT `emit-error` case. */
    this.kind = kind;
    /** For `too-large`: the most bytes a user event (name and payload) may have. */
    this.limit = limit;
    /** For `rejected`: why the agent refused the event. */
    this.reason = reason;
  }
}

/** Why a granted command did not run: `kind` is `not-granted` or `failed` (with `reason`). */
export class CommandError extends Error {
  /**
   * @param {'not-granted' | 'failed'} kind
   * @param {{ reason?: string }} [detail] `reason` for failed
   */
  constructor(kind, { reason } = {}) {
    super(withDetail(kind, undefined, reason));
    this.name = 'CommandError';
    /** The WIT `command-error` case. */
    this.kind = kind;
    /** For `failed`: why the command could not be started. */
    this.reason = reason;
  }
}

/**
 * Why a store operation failed: `kind` is `not-granted`, `quota-exceeded` (with `limit`, the
 * quota in bytes), `bad-key` (with `length`, the key's length in bytes) or `store` (with `reason`).
 */
export class KvError extends Error {
  /**
   * @param {'not-granted' | 'quota-exceeded' | 'bad-key' | 'store'} kind
   * @param {{ limit?: number, length?: number, reason?: string }} [detail]
   */
  constructor(kind, { limit, length, reason } = {}) {
    super(length !== undefined ? `${kind} (the key has ${length} bytes; 1 to 1024 are allowed)` : withDetail(kind, limit, reason));
    this.name = 'KvError';
    /** The WIT `kv-error` case. */
    this.kind = kind;
    /** For `quota-exceeded`: the store's quota, in bytes of keys and values. */
    this.limit = limit;
    /** For `bad-key`: the key's length in bytes. */
    this.length = length;
    /** For `store`: how the store failed. */
    this.reason = reason;
  }
}

/** Why a change of this node's tags was refused: `kind` is `not-granted` or `rejected` (with `reason`). */
export class TagError extends Error {
  /**
   * @param {'not-granted' | 'rejected'} kind
   * @param {{ reason?: string }} [detail] `reason` for rejected
   */
  constructor(kind, { reason } = {}) {
    super(withDetail(kind, undefined, reason));
    this.name = 'TagError';
    /** The WIT `tag-error` case. */
    this.kind = kind;
    /** For `rejected`: why the agent refused the change. */
    this.reason = reason;
  }
}

/** @param {string} kind @param {number} [limit] @param {string} [reason] */
function withDetail(kind, limit, reason) {
  if (limit !== undefined) return `${kind} (limit ${limit} bytes)`;
  if (reason !== undefined) return `${kind}: ${reason}`;
  return kind;
}

// A refused call throws componentize-js's ComponentError, whose `payload` is the WIT error variant
// ({ tag, val }): turn it into ReplyError, EmitError, CommandError, KvError or TagError.
/**
 * @param {unknown} err
 * @param {new (kind: any, detail?: { limit?: number, reason?: string }) => Error} ErrorClass one of those
 * @returns {unknown}
 */
function mapError(err, ErrorClass) {
  /** @type {any} */
  const payload = err !== null && typeof err === 'object' && Object.hasOwn(err, 'payload') ? /** @type {any} */ (err).payload : undefined;
  if (payload === undefined || typeof payload.tag !== 'string') return err;
  const { tag: kind, val } = payload;
  if (typeof val === 'bigint') {
    return kind === 'bad-key' ? new KvError(kind, { length: Number(val) }) : new ErrorClass(kind, { limit: Number(val) });
  }
  if (typeof val === 'string') return new ErrorClass(kind, { reason: val });
  return new ErrorClass(kind);
}

/**
 * Calls `fn`, turning a refusal into an `ErrorClass`.
 * @template T
 * @param {new (kind: any, detail?: { limit?: number, reason?: string }) => Error} ErrorClass
 * @param {() => T} fn
 * @returns {T}
 */
function call(ErrorClass, fn) {
  try {
    return fn();
  } catch (err) {
    throw mapError(err, ErrorClass);
  }
}

/**
 * @template T
 * @param {() => T} fn
 * @returns {T}
 */
function replyCall(fn) {
  try {
    return fn();
  } catch (err) {
    throw mapError(err, ReplyError);
  }
}

/**
 * Answers the query being handled with `data` in one piece. Throws a ReplyError when refused.
 * @param {Bytes} data a string (sent as UTF-8) or bytes
 */
export function reply(data) {
  const payload = bytes(data);
  replyCall(() => respond(payload));
}

/** A streamed reply to the query being handled: `write` chunks, then `finish`. */
export class ReplyWriter {
  /** @type {RawReplyStream | undefined} */
  #stream;

  /** @param {RawReplyStream} stream */
  constructor(stream) {
    this.#stream = stream;
    openWriters.add(this);
  }

  /**
   * Appends `chunk` to the reply. Throws a ReplyError when refused.
   * @param {Bytes} chunk
   */
  write(chunk) {
    const data = bytes(chunk);
    const stream = this.#stream;
    if (stream === undefined) throw new ReplyError('already-replied');
    replyCall(() => stream.write(data));
  }

  /** Completes the reply: the asker receives the chunks written. Throws a ReplyError when refused. */
  finish() {
    const stream = this.#stream;
    if (stream === undefined) throw new ReplyError('already-replied');
    this.#stream = undefined;
    openWriters.delete(this);
    replyCall(() => RawReplyStream.finish(stream));
  }

  /** Whether `finish` was called. */
  get finished() {
    return this.#stream === undefined;
  }
}

/** @type {Set<ReplyWriter>} */
const openWriters = new Set();

/**
 * Starts a streamed answer to the query being handled, so a large reply never sits whole in memory.
 * A stream that is not finished when `handle` returns is abandoned (the asker gets no reply from
 * this node). Throws a ReplyError when refused.
 * @returns {ReplyWriter}
 */
export function replyStream() {
  return new ReplyWriter(replyCall(() => openStream()));
}

/**
 * Answers the query being handled with every chunk of `chunks` (an array, a generator, any
 * iterable of strings or bytes), streamed, then finishes the reply. Throws a ReplyError when refused.
 * @param {Iterable<Bytes>} chunks
 */
export function replyChunks(chunks) {
  const writer = replyStream();
  for (const chunk of chunks) writer.write(chunk);
  writer.finish();
}

/**
 * Broadcasts user event `name` with `payload` to the cluster (Serf's `serf event`). Needs the
 * handler's `emit` grant; throws an EmitError when refused.
 * @param {string} name
 * @param {Bytes} [payload]
 * @param {{ coalesce?: boolean }} [options] `coalesce` (default true, as `serf event`): whether
 *   events of this name may be coalesced
 */
export function emit(name, payload = '', { coalesce = true } = {}) {
  const data = bytes(payload);
  try {
    rawEmit(name, data, coalesce);
  } catch (err) {
    throw mapError(err, EmitError);
  }
}

/** How a command run by `commands.run` ended. */
export class CommandOutput {
  /** @param {import('hearsay:handler/commands@0.2.0').Output} out */
  constructor(out) {
    /** The exit status; `undefined` when a signal ended it. @type {number | undefined} */
    this.status = out.status;
    /** The signal that ended it, if one did. @type {number | undefined} */
    this.signal = out.signal;
    /** What it wrote to stdout, cut at the host's cap (64 KiB). @type {Uint8Array} */
    this.stdout = out.stdout;
    /** What it wrote to stderr, cut at the same cap. @type {Uint8Array} */
    this.stderr = out.stderr;
    /** Whether stdout or stderr was cut. @type {boolean} */
    this.truncated = out.truncated;
  }

  /** Whether it exited with status 0. */
  get success() {
    return this.status === 0;
  }

  /** stdout as a string (UTF-8; invalid sequences become U+FFFD). */
  get stdoutText() {
    return text(this.stdout);
  }

  /** stderr as a string (UTF-8; invalid sequences become U+FFFD). */
  get stderrText() {
    return text(this.stderr);
  }
}

/**
 * Running the commands the operator approved (`grants.commands = { reload = [...] }`): the operator
 * fixes each command's whole argv, the handler names it and may give its stdin.
 */
export const commands = Object.freeze({
  /**
   * Runs the granted command `name` with `stdin` (a string, sent as UTF-8, or bytes; none: empty)
   * on its standard input and waits for it to end (it is killed at the event's deadline). A non-zero
   * exit is not an error: look at `status` (or `success`). Throws a CommandError (`not-granted`,
   * `failed`) when it did not run.
   * @param {string} name
   * @param {Bytes} [stdin]
   * @returns {CommandOutput}
   */
  run(name, stdin) {
    const input = stdin === undefined || stdin === null ? undefined : bytes(stdin);
    return new CommandOutput(call(CommandError, () => rawRun(name, input)));
  },
});

/**
 * The handler's persistent key-value store (`grants.kv = "16MiB"`): it survives events, reloads and
 * agent restarts; the quota counts key and value bytes. Keys are non-empty strings of at most 1 KiB.
 * Every function throws a KvError (`not-granted`, `quota-exceeded`, `bad-key`, `store`).
 */
export const kv = Object.freeze({
  /**
   * The value of `key`, or `undefined` when it is not set.
   * @param {string} key
   * @returns {Uint8Array | undefined}
   */
  get(key) {
    return call(KvError, () => kvGet(key));
  },
  /**
   * The value of `key` as a string (UTF-8; invalid sequences become U+FFFD), or `undefined` when it
   * is not set.
   * @param {string} key
   * @returns {string | undefined}
   */
  getText(key) {
    const value = call(KvError, () => kvGet(key));
    return value === undefined ? undefined : text(value);
  },
  /**
   * Sets `key` to `value` (a string, stored as UTF-8, or bytes), durably, before returning.
   * @param {string} key
   * @param {Bytes} value
   */
  set(key, value) {
    const data = bytes(value);
    call(KvError, () => kvSet(key, data));
  },
  /**
   * Removes `key`; whether it was set.
   * @param {string} key
   * @returns {boolean}
   */
  delete(key) {
    return call(KvError, () => kvDelete(key));
  },
  /**
   * The keys that begin with `prefix`, in order (`''`, the default, lists them all).
   * @param {string} [prefix]
   * @returns {string[]}
   */
  keys(prefix = '') {
    return call(KvError, () => kvKeys(prefix));
  },
});

/**
 * This node's own tags (`grants.tags = ["service:*"]`): gossip carries a change to every member.
 * Only tags whose name matches a granted pattern can be changed; `set` and `delete` throw a
 * TagError (`not-granted`, `rejected`) otherwise.
 */
export const tags = Object.freeze({
  /**
   * Sets this node's tag `name` to `value`.
   * @param {string} name
   * @param {string} value
   */
  set(name, value) {
    call(TagError, () => tagSet(name, value));
  },
  /**
   * Removes this node's tag `name` (nothing happens when it is not set).
   * @param {string} name
   */
  delete(name) {
    call(TagError, () => tagDelete(name));
  },
  /**
   * This node's tag `name` as the cluster last saw it, or `undefined`.
   * @param {string} name
   * @returns {string | undefined}
   */
  get(name) {
    return tag(rawLocalMember(), name);
  },
});

/** @param {unknown} value @returns {value is Bytes} */
function isBytes(value) {
  return typeof value === 'string' || ArrayBuffer.isView(value) || value instanceof ArrayBuffer;
}

/** @param {unknown} value @returns {string} */
function typeName(value) {
  if (value === null) return 'null';
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  return typeof value;
}

/** @param {unknown} value @returns {string} */
function show(value) {
  switch (typeof value) {
    case 'string':
      return value;
    case 'bigint':
    case 'number':
    case 'boolean':
    case 'undefined':
    case 'symbol':
    case 'function':
      return String(value);
  }
  if (value === null) return 'null';
  if (value instanceof Error) return String(value);
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `${typeName(value)}(${value.byteLength})`;
  try {
    return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? String(v) : v)) ?? String(value);
  } catch {
    return String(value);
  }
}

/** @param {Level} level @returns {(...args: unknown[]) => void} */
function logAt(level) {
  return (...args) => rawLog(level, args.map(show).join(' '));
}

/**
 * Logs into the agent's log, tagged with the handler and the event: `log.info('deployed', version)`.
 * Arguments are joined with spaces; objects are shown as JSON. `log(level, ...args)` takes the
 * level (`trace`, `debug`, `info`, `warn`, `error`) first. `console.log` and friends log here too.
 */
export const log = Object.assign(
  /** @param {Level} level @param {...unknown} args */
  (level, ...args) => logAt(level)(...args),
  {
    trace: logAt('trace'),
    debug: logAt('debug'),
    info: logAt('info'),
    warn: logAt('warn'),
    error: logAt('error'),
  },
);

// A guest has no useful stdout or stderr: send console output to the agent's log instead.
for (const [method, level] of /** @type {const} */ ([
  ['log', 'info'],
  ['info', 'info'],
  ['debug', 'debug'],
  ['trace', 'trace'],
  ['warn', 'warn'],
  ['error', 'error'],
])) {
  console[method] = logAt(level);
}

/**
 * The error string the agent logs for a failed event: an Error's message (with its name when it
 * is not a plain Error: "TypeError: ...", "ReplyError: too-large (limit 1024 bytes)").
 * @param {unknown} err
 * @returns {string}
 */
export function errorMessage(err) {
  if (err instanceof Error) return err.name === 'Error' ? err.message : `${err.name}: ${err.message}`;
  return show(err);
}

/**
 * Makes the component's `handle` export from the user's `handle(event)`. The build does this for
 * `handler.js`; there is no need to call it.
 * @param {(event: Event) => unknown} handle
 * @returns {(event: Event) => Promise<{ tag: 'ok', val: undefined } | { tag: 'err', val: string }>}
 */
export function wrapHandle(handle) {
  if (typeof handle !== 'function') {
    throw new TypeError('handler.js must export a function handle(event)');
  }
  return async (event) => {
    openWriters.clear();
    try {
      const out = await handle(event);
      if (out !== undefined && out !== null) {
        if (!isBytes(out)) {
          throw new TypeError(`handle returned ${typeName(out)}: return a string or bytes to answer a query, or nothing`);
        }
        reply(out);
      }
      if (openWriters.size > 0) {
        rawLog('warn', 'a reply stream was opened but not finished: the reply is abandoned');
      }
      return { tag: 'ok', val: undefined };
    } catch (err) {
      // A TypeError, RangeError, ... is a bug rather than a refusal: say where it happened.
      const refusal = err instanceof ReplyError || err instanceof EmitError || err instanceof CommandError || err instanceof KvError || err instanceof TagError;
      if (err instanceof Error && err.name !== 'Error' && !refusal && err.stack) {
        rawLog('debug', `${describe(event)} failed: ${errorMessage(err)} at\n${err.stack}`);
      }
      return { tag: 'err', val: errorMessage(err) };
    }
  };
}

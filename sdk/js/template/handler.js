// {{name}}: a hearsay event handler, built into {{name}}.wasm by ./build.sh.
//
// The agent calls `handle` once per event, each time in a fresh instance: nothing survives from one
// event to the next. The event is `{ tag, val }`: `tag` is one of the kinds in `Kind`, `val` is
//   Kind.Query                 { id, name, payload, ltime, sourceNode }   (payload: Uint8Array)
//   Kind.User                  { name, payload, ltime, coalesce }
//   Kind.MemberJoin, ...Leave, ...Failed, ...Update, ...Reap
//                              the members concerned: [{ name, addr, port, tags, status, rttMicros }]
//   Kind.Tick                  { periodMs, count }   (a timer: `events = "every:10s"` in the config)
// (`ltime`, `rttMicros`, `periodMs` and `count` are BigInts; `tags` is a list of [key, value] pairs.)
//
// `handle` may be async. Throwing an error (or rejecting) fails the event: the agent logs the
// message and counts a handler error. Returning a string or bytes from a query answers it.
// See the README of the SDK for every helper of ./hearsay.js (members, emit, replyStream, ...).
// With a grant in the agent's config a handler can also run approved commands (`commands.run`),
// keep state across events (`kv.get/set/delete/keys`) and set this node's tags (`tags.set/delete`).

import { Kind, describe, log, reply, text } from './hearsay.js';

/** @param {import('./hearsay.js').Event} event */
export function handle(event) {
  switch (event.tag) {
    case Kind.Query:
      // Answer with the payload. A refused reply (too-large for the asker, or no longer wanted)
      // throws a ReplyError, which becomes this event's error.
      reply(event.val.payload);
      break;

    case Kind.User:
      log.info(`user event ${event.val.name} at ltime ${event.val.ltime}: ${text(event.val.payload)}`);
      break;

    case Kind.Tick:
      log.info(`tick ${event.val.count} (every ${event.val.periodMs} ms)`);
      break;

    default:
      // A member event: val lists the members concerned.
      log.info(`${describe(event)}: ${event.val.map((member) => member.name).join(', ')}`);
  }
}

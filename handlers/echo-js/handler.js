// echo: replies to every query with its payload, and logs user and member events.

import { Kind, describe, log, reply, text } from './hearsay.js';

/** @param {import('./hearsay.js').Event} event */
export function handle(event) {
  switch (event.tag) {
    case Kind.Query:
      try {
        reply(event.val.payload);
      } catch (err) {
        // A ReplyError: not-a-query, already-replied, too-large (limit N bytes), closed: CAUSE.
        throw new Error(`echo: ${err.message}`);
      }
      break;
    case Kind.User: {
      const { name, ltime, payload } = event.val;
      log.info(`user event ${name} at ltime ${ltime}: ${text(payload)}`);
      break;
    }
    case Kind.Tick:
      // A timer (`every:DURATION` in the filter): its val is { periodMs, count }.
      log.info(describe(event));
      break;
    default:
      // A member event: its val lists the members concerned.
      log.info(`${describe(event)}: ${event.val.map((m) => m.name).join(', ')}`);
  }
}

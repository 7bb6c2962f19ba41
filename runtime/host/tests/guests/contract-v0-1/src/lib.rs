//! A handler built against contract 0.1.0 (`wit/v0.1.0`), without the SDK (which follows the
//! current contract): it must keep running on a host that also links 0.2.0. Answers a query with
//! `v0.1 ` and its payload; logs other events.

wit_bindgen::generate!({
    world: "handler",
    path: "../../../../../wit/v0.1.0",
});

use hearsay::handler::{log, reply, types};

struct Old;

impl Guest for Old {
    fn handle(event: types::Event) -> Result<(), String> {
        match event {
            types::Event::Query(q) => {
                let mut answer = b"v0.1 ".to_vec();
                answer.extend_from_slice(&q.payload);
                reply::respond(&answer).map_err(|e| format!("{e:?}"))
            }
            _ => {
                log::log(types::Level::Info, "v0.1 handler saw an event");
                Ok(())
            }
        }
    }
}

export!(Old);

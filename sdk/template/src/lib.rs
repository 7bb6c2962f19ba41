//! {{name}}: a hearsay handler. It answers every query with the query's payload and logs every
//! other event with this node's name and how many members it knows. Replace `handle` with your
//! own logic; `hearsay_sdk`'s documentation lists what a handler can call.

use hearsay_sdk::{Event, Handler};

struct MyHandler;

impl Handler for MyHandler {
    fn handle(event: Event) -> Result<(), String> {
        match event {
            // `hearsay query NAME PAYLOAD` (or `serf query`): answer with the payload.
            Event::Query(q) => hearsay_sdk::reply(&q.payload).map_err(|e| e.to_string()),
            // Member events, user events: note them in the agent's log.
            other => {
                let me = hearsay_sdk::local_member();
                hearsay_sdk::info(&format!(
                    "{} saw {} ({} members known)",
                    me.name,
                    other.describe(),
                    hearsay_sdk::members().len()
                ));
                Ok(())
            }
        }
    }
}

hearsay_sdk::export!(MyHandler);

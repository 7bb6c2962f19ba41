//! my-handler: answers `query:hello` with a greeting naming this node and how many members it
//! knows, and logs every other event. Replace `handle` with your own logic.

use hearsay_sdk::{Event, Handler};

struct MyHandler;

impl Handler for MyHandler {
    fn handle(event: Event) -> Result<(), String> {
        match event {
            Event::Query(q) if q.name == "hello" => {
                let me = hearsay_sdk::local_member();
                let answer = format!(
                    "hello from {} ({} members known)",
                    me.name,
                    hearsay_sdk::members().len()
                );
                hearsay_sdk::reply(answer.as_bytes()).map_err(|e| format!("{e:?}"))
            }
            other => {
                hearsay_sdk::info(&format!("saw {}", other.describe()));
                Ok(())
            }
        }
    }
}

hearsay_sdk::export!(MyHandler);

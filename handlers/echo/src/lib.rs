//! echo: replies to every query with its payload, and logs user and member events.

use hearsay_sdk::{Event, Handler};

struct Echo;

impl Handler for Echo {
    fn handle(event: Event) -> Result<(), String> {
        match event {
            Event::Query(q) => hearsay_sdk::reply(&q.payload).map_err(|e| format!("echo: {e}")),
            Event::User(u) => {
                hearsay_sdk::info(&format!(
                    "user event {} at ltime {}: {}",
                    u.name,
                    u.ltime,
                    String::from_utf8_lossy(&u.payload)
                ));
                Ok(())
            }
            other => {
                hearsay_sdk::info(&other.describe());
                Ok(())
            }
        }
    }
}

hearsay_sdk::export!(Echo);

//! slow: the benchmark's slow handler. Every user event takes 100 ms: the guest sleeps (a WASI
//! monotonic-clock poll, so it needs the clocks grant), as serf's `sleep 0.1` script does, then
//! logs the event.

use hearsay_sdk::{Event, Handler};

struct Slow;

impl Handler for Slow {
    fn handle(event: Event) -> Result<(), String> {
        if let Event::User(u) = event {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // The bench times the handler to this line.
            hearsay_sdk::info(&format!("user event {} slept 100 ms", u.name));
        }
        Ok(())
    }
}

hearsay_sdk::export!(Slow);

//! slow: the benchmark's slow handler. Every user event takes 100 ms: the guest sleeps (a WASI
//! monotonic-clock poll, so it needs the clocks grant), as serf's `sleep 0.1` script does.

use hearsay_sdk::{Event, Handler};

struct Slow;

impl Handler for Slow {
    fn handle(event: Event) -> Result<(), String> {
        if let Event::User(_) = event {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }
}

hearsay_sdk::export!(Slow);

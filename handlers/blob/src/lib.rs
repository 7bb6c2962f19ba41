//! blob: a test handler for large replies. A query's payload is a decimal byte count N; the reply
//! is N bytes where byte i is `i % 251`, streamed in 64 KiB chunks so it is never held whole.

use hearsay_sdk::{Event, Handler, ReplyStream};

const CHUNK: usize = 64 << 10;

struct Blob;

impl Handler for Blob {
    fn handle(event: Event) -> Result<(), String> {
        let Event::Query(q) = event else {
            return Ok(());
        };
        let text =
            std::str::from_utf8(&q.payload).map_err(|_| "blob: payload is not text".to_string())?;
        let n: u64 = text
            .trim()
            .parse()
            .map_err(|_| format!("blob: payload {text:?} is not a byte count"))?;
        let stream = hearsay_sdk::reply_stream().map_err(|e| format!("blob: {e}"))?;
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut i = 0u64;
        while i < n {
            chunk.clear();
            let end = n.min(i + CHUNK as u64);
            chunk.extend((i..end).map(|j| (j % 251) as u8));
            stream.write(&chunk).map_err(|e| format!("blob: {e}"))?;
            i = end;
        }
        ReplyStream::finish(stream).map_err(|e| format!("blob: {e}"))
    }
}

hearsay_sdk::export!(Blob);

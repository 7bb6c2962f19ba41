//! fetch: a guest for hearsay-host's HTTP tests. On a query, the payload is a URL:
//!
//! - `get`: `hearsay_sdk::http::get(url)`.
//! - `post`: posts `ping` to the URL with a `content-type: text/plain` header.
//! - `quick`: a get with a 200 ms timeout of the guest's own.
//!
//! It replies `STATUS BODY` for a response, or `error KIND: MESSAGE` (KIND: `denied`, `invalid`,
//! `connection`, `too-large`, `response`).

use hearsay_sdk::http::{self, HttpError, Request};
use hearsay_sdk::{Event, Handler};

struct Fetch;

impl Handler for Fetch {
    fn handle(event: Event) -> Result<(), String> {
        let Event::Query(q) = event else {
            return Ok(());
        };
        let url = String::from_utf8_lossy(&q.payload).into_owned();
        let result = match q.name.as_str() {
            "get" => http::get(&url),
            "post" => Request::post(&url)
                .header("content-type", "text/plain")
                .body("ping")
                .send(),
            "quick" => Request::get(&url)
                .timeout(std::time::Duration::from_millis(200))
                .send(),
            other => return Err(format!("unknown query {other}")),
        };
        let answer = match result {
            Ok(r) => format!("{} {}", r.status, r.text()),
            Err(e) => {
                let kind = match &e {
                    HttpError::Denied => "denied",
                    HttpError::InvalidRequest(_) => "invalid",
                    HttpError::Connection(_) => "connection",
                    HttpError::TooLarge => "too-large",
                    HttpError::Response(_) => "response",
                };
                format!("error {kind}: {e}")
            }
        };
        hearsay_sdk::reply(answer.as_bytes()).map_err(|e| format!("reply: {e:?}"))
    }
}

hearsay_sdk::export!(Fetch);

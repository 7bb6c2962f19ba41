//! `hearsay handlers`: lists the agent's WebAssembly handlers with their counters and
//! latencies, through the hearsay-only `handlers` RPC command (a Serf agent does not have it).

use super::flags;
use super::output::{columnize, Json};
use hearsay_rpc::{RpcClient, RpcHandler};
use std::time::Duration;

/// Runs the verb: a table (or `-format=json`) of every loaded handler.
pub async fn run(client: &RpcClient, p: &flags::Parsed) -> Result<(), String> {
    let format = super::format_of(p)?;
    let handlers = client.handlers().await.map_err(|e| {
        let e = e.to_string();
        if e == hearsay_rpc::errors::UNSUPPORTED_COMMAND {
            "Error listing handlers: the agent does not support the handlers command \
             (a Serf agent? handlers are a hearsay extension)"
                .to_owned()
        } else {
            format!("Error listing handlers: {e}")
        }
    })?;
    if format == "json" {
        println!("{}", json(&handlers).pretty());
    } else if handlers.is_empty() {
        println!("No handlers loaded.");
    } else {
        println!("{}", table(&handlers));
    }
    Ok(())
}

fn latency(d: Option<Duration>) -> String {
    match d {
        None => "-".to_owned(),
        Some(d) if d < Duration::from_millis(1) => format!("{}µs", d.as_micros()),
        Some(d) if d < Duration::from_secs(1) => {
            format!("{:.1}ms", d.as_secs_f64() * 1000.0)
        }
        Some(d) => format!("{:.2}s", d.as_secs_f64()),
    }
}

fn table(handlers: &[RpcHandler]) -> String {
    let mut lines = vec![
        "NAME|FILTER|INVOCATIONS|ERRORS|TRAPS|TIMEOUTS|DROPS|QUEUED|RUNNING|OLDEST|P50|P99|MODULE"
            .to_owned(),
    ];
    for h in handlers {
        lines.push(format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            h.name,
            h.filter,
            h.invocations,
            h.errors,
            h.traps,
            h.timeouts,
            h.drops,
            h.queued,
            h.running,
            latency(h.oldest_running),
            latency(h.p50),
            latency(h.p99),
            h.module
        ));
    }
    columnize(&lines)
}

fn json(handlers: &[RpcHandler]) -> Json {
    let num = |n: u64| Json::Num(n.to_string());
    let micros = |d: Option<Duration>| d.map_or(Json::Null, |d| num(d.as_micros() as u64));
    Json::Arr(
        handlers
            .iter()
            .map(|h| {
                Json::Obj(vec![
                    ("drops".into(), num(h.drops)),
                    ("errors".into(), num(h.errors)),
                    ("filter".into(), Json::Str(h.filter.clone())),
                    ("invocations".into(), num(h.invocations)),
                    ("module".into(), Json::Str(h.module.clone())),
                    ("name".into(), Json::Str(h.name.clone())),
                    ("log_suppressed".into(), num(h.log_suppressed)),
                    ("ok".into(), num(h.ok)),
                    ("oldest_running_us".into(), micros(h.oldest_running)),
                    ("p50_us".into(), micros(h.p50)),
                    ("p99_us".into(), micros(h.p99)),
                    ("queued".into(), num(h.queued)),
                    ("running".into(), num(h.running)),
                    ("sha256".into(), Json::Str(h.sha256.clone())),
                    ("timeouts".into(), num(h.timeouts)),
                    ("traps".into(), num(h.traps)),
                ])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RpcHandler {
        RpcHandler {
            name: "echo".into(),
            filter: "query:echo".into(),
            module: "/h/echo.wasm".into(),
            sha256: "00".into(),
            invocations: 12,
            ok: 10,
            errors: 1,
            traps: 1,
            timeouts: 1,
            drops: 0,
            queued: 0,
            p50: Some(Duration::from_micros(420)),
            p99: Some(Duration::from_micros(2500)),
            running: 1,
            oldest_running: Some(Duration::from_millis(3100)),
            log_suppressed: 0,
        }
    }

    #[test]
    fn table_has_counts_and_latencies() {
        let t = table(&[sample()]);
        let mut lines = t.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(header[..4], ["NAME", "FILTER", "INVOCATIONS", "ERRORS"]);
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "echo",
                "query:echo",
                "12",
                "1",
                "1",
                "1",
                "0",
                "0",
                "1",
                "3.10s",
                "420µs",
                "2.5ms",
                "/h/echo.wasm"
            ]
        );
        assert_eq!(latency(None), "-");
        assert_eq!(latency(Some(Duration::from_millis(1500))), "1.50s");
    }

    #[test]
    fn json_lists_every_field() {
        let j = json(&[sample()]).pretty();
        for k in [
            "\"invocations\": 12",
            "\"p50_us\": 420",
            "\"p99_us\": 2500",
            "\"name\": \"echo\"",
            "\"running\": 1",
            "\"oldest_running_us\": 3100000",
        ] {
            assert!(j.contains(k), "{k} in {j}");
        }
    }
}

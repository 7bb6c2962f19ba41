//! `hearsay handlers`: lists the agent's WebAssembly handlers with their counters and
//! latencies, through the hearsay-only `handlers` RPC command (a Serf agent does not have it).
//! Each row names the handler's tenant (`-` for the operator's); when tenants have handlers, a
//! second table sums the counters per tenant. A client authenticated as a tenant gets only that
//! tenant's handlers.

use super::flags;
use super::output::{columnize, json};
use hearsay_rpc::{RpcClient, RpcHandler};
use serde::Serialize;
use std::time::Duration;

/// Runs the verb: a table (or `-format=json`) of every loaded handler.
pub(super) async fn run(client: &RpcClient, p: &flags::Parsed) -> Result<(), String> {
    let format = super::format_of(p)?;
    let handlers = client.handlers().await.map_err(|e| {
        super::hearsay_only_error(
            "listing handlers",
            "the handlers command",
            "handlers are",
            e,
        )
    })?;
    if format == "json" {
        println!("{}", json(&listing(&handlers))?);
    } else if handlers.is_empty() {
        println!("No handlers loaded.");
    } else {
        println!("{}", table(&handlers));
        if let Some(totals) = tenant_totals(&handlers) {
            println!("\n{totals}");
        }
    }
    Ok(())
}

/// The counter columns of both tables, in order.
const COUNT_COLUMNS: &str = "INVOCATIONS|ERRORS|TRAPS|TIMEOUTS|DROPS|QUEUED|RUNNING";

/// A handler's counters, in [`COUNT_COLUMNS`]' order.
fn counts(h: &RpcHandler) -> [u64; 7] {
    [
        h.invocations,
        h.errors,
        h.traps,
        h.timeouts,
        h.drops,
        h.queued,
        h.running,
    ]
}

/// Cells joined as a table row's.
fn cells(values: &[u64]) -> String {
    let cells: Vec<String> = values.iter().map(u64::to_string).collect();
    cells.join("|")
}

/// The counters summed per tenant (`-`: the operator's handlers), when any handler has one.
fn tenant_totals(handlers: &[RpcHandler]) -> Option<String> {
    if handlers.iter().all(|h| h.tenant.is_none()) {
        return None;
    }
    // Per tenant: its handlers, then the sums of their counters.
    let mut sums: std::collections::BTreeMap<&str, (u64, [u64; 7])> = Default::default();
    for h in handlers {
        let (n, s) = sums.entry(h.tenant.as_deref().unwrap_or("-")).or_default();
        *n += 1;
        for (sum, c) in s.iter_mut().zip(counts(h)) {
            *sum += c;
        }
    }
    let mut lines = vec![format!("TENANT|HANDLERS|{COUNT_COLUMNS}")];
    for (tenant, (n, s)) in sums {
        lines.push(format!("{tenant}|{n}|{}", cells(&s)));
    }
    Some(columnize(&lines))
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
    let mut lines = vec![format!(
        "NAME|TENANT|FILTER|{COUNT_COLUMNS}|OLDEST|P50|P99|MODULE"
    )];
    for h in handlers {
        lines.push(format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            h.name,
            h.tenant.as_deref().unwrap_or("-"),
            h.filter,
            cells(&counts(h)),
            latency(h.oldest_running),
            latency(h.p50),
            latency(h.p99),
            h.module
        ));
    }
    columnize(&lines)
}

/// One handler in `-format=json` (latencies in microseconds, `null` before the first event).
#[derive(Serialize)]
struct HandlerJson<'a> {
    drops: u64,
    errors: u64,
    filter: &'a str,
    invocations: u64,
    module: &'a str,
    name: &'a str,
    log_suppressed: u64,
    ok: u64,
    oldest_running_us: Option<u64>,
    p50_us: Option<u64>,
    p99_us: Option<u64>,
    queued: u64,
    running: u64,
    sha256: &'a str,
    /// The handler's tenant; `null` for the operator's.
    tenant: Option<&'a str>,
    timeouts: u64,
    traps: u64,
}

fn listing(handlers: &[RpcHandler]) -> Vec<HandlerJson<'_>> {
    let micros = |d: Option<Duration>| d.map(|d| d.as_micros() as u64);
    handlers
        .iter()
        .map(|h| HandlerJson {
            drops: h.drops,
            errors: h.errors,
            filter: &h.filter,
            invocations: h.invocations,
            module: &h.module,
            name: &h.name,
            log_suppressed: h.log_suppressed,
            ok: h.ok,
            oldest_running_us: micros(h.oldest_running),
            p50_us: micros(h.p50),
            p99_us: micros(h.p99),
            queued: h.queued,
            running: h.running,
            sha256: &h.sha256,
            tenant: h.tenant.as_deref(),
            timeouts: h.timeouts,
            traps: h.traps,
        })
        .collect()
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
            tenant: None,
        }
    }

    #[test]
    fn table_has_counts_and_latencies() {
        let t = table(&[sample()]);
        let mut lines = t.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(header[..4], ["NAME", "TENANT", "FILTER", "INVOCATIONS"]);
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "echo",
                "-",
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
        let mut tenants = sample();
        tenants.tenant = Some("payments".into());
        let t = table(&[tenants]);
        let row: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row[..3], ["echo", "payments", "query:echo"]);
        assert_eq!(latency(Some(Duration::from_millis(1500))), "1.50s");
    }

    #[test]
    fn totals_sum_each_tenants_handlers() {
        assert_eq!(tenant_totals(&[sample()]), None);
        let mut pay = sample();
        pay.tenant = Some("payments".into());
        let t = tenant_totals(&[pay.clone(), pay, sample()]).unwrap();
        let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows[0][..3], ["TENANT", "HANDLERS", "INVOCATIONS"]);
        assert_eq!(rows[1], ["-", "1", "12", "1", "1", "1", "0", "0", "1"]);
        assert_eq!(
            rows[2],
            ["payments", "2", "24", "2", "2", "2", "0", "0", "2"]
        );
    }

    #[test]
    fn json_lists_every_field() {
        let j = json(&listing(&[sample()])).unwrap();
        for k in [
            "\"invocations\": 12",
            "\"p50_us\": 420",
            "\"p99_us\": 2500",
            "\"name\": \"echo\"",
            "\"running\": 1",
            "\"oldest_running_us\": 3100000",
            "\"tenant\": null",
        ] {
            assert!(j.contains(k), "{k} in {j}");
        }
    }
}

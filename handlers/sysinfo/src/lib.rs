//! sysinfo: answers a query with this host's name, uptime and load averages, read from /proc.
//!
//! Needs a read-only grant of the host's /proc at /proc. The reply is text, one `key=value` per
//! line: `hostname`, `uptime_seconds`, `load1`, `load5`, `load15`.

use hearsay_sdk::{Event, Handler};

struct SysInfo;

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| {
        format!(
            "sysinfo: cannot read {path}: {e} (the handler needs /proc granted read-only at /proc)"
        )
    })
}

fn report() -> Result<String, String> {
    let hostname = read("/proc/sys/kernel/hostname")?;
    let uptime = read("/proc/uptime")?;
    let loadavg = read("/proc/loadavg")?;
    let uptime = uptime
        .split_whitespace()
        .next()
        .ok_or("sysinfo: /proc/uptime is empty")?;
    let mut load = loadavg.split_whitespace();
    let mut next = || {
        load.next()
            .ok_or_else(|| "sysinfo: /proc/loadavg is short".to_string())
    };
    let (l1, l5, l15) = (next()?, next()?, next()?);
    Ok(format!(
        "hostname={}\nuptime_seconds={uptime}\nload1={l1}\nload5={l5}\nload15={l15}\n",
        hostname.trim()
    ))
}

impl Handler for SysInfo {
    fn handle(event: Event) -> Result<(), String> {
        let Event::Query(_) = event else {
            return Ok(());
        };
        let text = report()?;
        hearsay_sdk::reply(text.as_bytes()).map_err(|e| format!("sysinfo: {e}"))
    }
}

hearsay_sdk::export!(SysInfo);

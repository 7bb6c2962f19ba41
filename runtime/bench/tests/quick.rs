//! Smoke test of the benchmark harness: `hearsay-bench --quick` produces every section and
//! every figure (the handler figures build the wasm components for wasm32-wasip2 on first use). It asserts that the figures exist, never what they are (timing belongs in
//! BENCHMARKS.md, not in a test verdict).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Section headings every report has.
const SECTIONS: &[&str] = &[
    "## Run",
    "## Headline",
    "## 1. Failure detection",
    "## 2. User event propagation",
    "## 3. Query round trip",
    "## 4. Idle footprint",
    "## 5. Handler cost per event",
    "## 6. A slow handler beside a fast one",
    "## 7. Memory with 10 handlers",
    "## 8. Large responses over QUIC",
    "## 9. Scale (simulator)",
    "## 10. Handler isolation",
    "## 11. Handler deployment",
    "## 12. Handlers in every language",
    "## 13. Handlers that act: capability calls",
    "## Not yet measured",
    "## Reproduce",
];

/// Live figures: measured for hearsay, and for serf when it is installed.
const LIVE: &[&str] = &[
    "cluster formation: N agents join one seed → every agent sees all",
    "kill -9 → every survivor marks it failed",
    "kill -9 → first survivor marks it failed",
    "kill -9 → every survivor marks it failed, local profile",
    "user event: origin → every node",
    "user event: origin → median node",
    "query: all N acks",
    "query: all N responses",
    "idle RSS per agent",
    "handler time per event (median)",
    "handler time per event (p99 of a round)",
    "handler throughput, burst (events/s)",
    "CPU per event spent on the handler (median)",
    "agent CPU per event, with the handler",
    "agent CPU per event, no handler",
    "fast handler latency beside a 100 ms one, one event at a time",
    "fast handler latency beside a 100 ms one, events every 50 ms",
    "slow handler latency (100 ms sleep), one event at a time",
    "RSS with 10 handlers loaded",
    "RSS with 1 handler loaded",
    "RSS added per further handler",
];

/// Live figures that can be zero for serf, so no ratio: false alarms, and idle CPU (100 Hz
/// tick accounting over a short window can see no tick at all).
const LIVE_COUNTS: &[&str] = &[
    "idle CPU per agent",
    "members marked failed while alive, local profile, every CPU busy (per node-hour)",
    "suspicions raised (probe unanswered), local profile, every CPU busy (per node-hour)",
];

/// hearsay-only figures in the serf-vs-hearsay tables (serf column empty): the handler alone,
/// and large query responses between agents (serf's are capped at 1 KiB).
const HEARSAY_ONLY: &[&str] = &[
    "hearsay handler alone per event (median)",
    "query, 1 MiB per responder over QUIC: every response read whole",
    "query, 1 MiB per responder over QUIC: aggregate",
    "query, 1 MiB per responder over QUIC: originator's peak RSS growth",
    "query, 16 MiB per responder over QUIC: every response read whole",
    "query, 16 MiB per responder over QUIC: aggregate",
    "query, 16 MiB per responder over QUIC: originator's peak RSS growth",
];

/// QUIC figures (hearsay only): | figure | N | hearsay | anchor |; names start with these.
const QUIC: &[&str] = &[
    "QUIC: 4 concurrent 4 MiB responses, aggregate",
    "QUIC: all 4 responses read whole",
    "quinn: one bare stream of 16 MiB",
];

/// Handler isolation (hearsay alone, serf column empty): echo's latency in each setup, with a
/// ratio against echo alone.
const ISOLATION_LATENCY: &[&str] = &[
    "echo per event alone (median)",
    "echo per event alone (p99 of a round)",
    "echo per event beside 4 handlers asleep in a host call (median)",
    "echo per event beside 4 handlers asleep in a host call (p99 of a round)",
    "echo per event beside a handler spinning in wasm (median)",
    "echo per event beside a handler spinning in wasm (p99 of a round)",
    "echo per event beside 2 handlers spinning in wasm (both host threads) (median)",
    "echo per event beside 2 handlers spinning in wasm (both host threads) (p99 of a round)",
    "echo per event beside a handler flooding the log (median)",
    "echo per event beside a handler flooding the log (p99 of a round)",
    "echo per event beside a tenant's spinners, sleepers, bomb and flood at its quota (median)",
    "echo per event beside a tenant's spinners, sleepers, bomb and flood at its quota (p99 of a round)",
];

/// Handler isolation: the agent's CPU per setup and the checks that each hostile setup did
/// what it should (values present; never what they are).
const ISOLATION_CHECKS: &[&str] = &[
    "agent CPU while echo ran, alone (cores)",
    "agent CPU while echo ran, beside 4 handlers asleep in a host call (cores)",
    "agent CPU while echo ran, beside a handler spinning in wasm (cores)",
    "agent CPU while echo ran, beside 2 handlers spinning in wasm (both host threads) (cores)",
    "agent CPU while echo ran, beside a handler flooding the log (cores)",
    "check: probe events running, beside 4 handlers asleep in a host call",
    "check: probe events running, beside a handler spinning in wasm",
    "check: probe events running, beside 2 handlers spinning in wasm (both host threads)",
    "check: probe events running, beside a handler flooding the log",
    "agent CPU while echo ran, beside a tenant's spinners, sleepers, bomb and flood at its quota (cores)",
    "check: probe events running, beside a tenant's spinners, sleepers, bomb and flood at its quota",
    "check: flood's guest log lines suppressed per second",
    "check: flood's lines in the agent's log per second",
];

/// Handlers that act (section 13): serf beside hearsay, a row per job and figure; the serf
/// column and the ratio are filled when serf is installed (its HTTP job also needs curl, wget
/// or bash, which the test machines have).
const CAPABILITY_JOBS: &[&str] = &[
    "log only (baseline)",
    "write a small file",
    "HTTP GET to loopback",
    "run /bin/true",
];
const CAPABILITY_FIGURES: &[&str] = &[
    "handler time per event (p50)",
    "handler time per event (p99 of a round)",
    "handler throughput, burst (events/s)",
    "CPU per event spent on the handler",
    "agent CPU per event, with the handler",
];
/// hearsay alone (host level), per job.
const CAPABILITY_HOST: &[&str] = &[
    "hearsay handler alone per event (p50)",
    "hearsay handler alone per event (p99 of a round)",
];

/// Agent-only figures (coalesced member events): serf's and `hearsay agent`'s.
const AGENT_ONLY: &[&str] =
    &["kill -9 → agent hands member-failed to handlers (after 1 s coalescing quiescence)"];

/// Simulator figures (hearsay only).
const SIM: &[&str] = &[
    "sim: joins → every node sees all alive (virtual)",
    "sim: user event → 50 % of nodes",
    "sim: user event → 99 % of nodes",
    "sim: user event → 99.99 % of nodes",
    "sim: user event → 100 % of nodes",
    "sim: crash → first node marks it failed",
    "sim: crash → every node marks it failed",
    "sim: steady UDP packets per node per s",
    "sim: steady UDP bytes per node per s",
    "sim: push/pull streams per node per s",
    "sim: UDP packets per node per s while an event spreads",
    "sim: UDP bytes per node per s while an event spreads",
    "sim: memory per simulated node, converged",
    "sim: live heap per member entry, converged",
    "sim: memory N = 10 000 needs, extrapolated from this N",
    "sim: wall time for this N (all seeds)",
];

/// Handler deployment (hearsay alone, | figure | N | hearsay | anchor |): quick mode's one
/// deploy to 3 agents and the deploy simulator; the figures start with these (the live one
/// names the module's size).
const DEPLOY: &[&str] = &[
    "deploy → every node running, first deploy into a fresh cluster, echo",
    "sim deploy: record → every node up holds it, all up (virtual)",
    "sim deploy: record → every node up holds it, 5 % crashed (virtual)",
    "sim deploy: restart → every restarted node holds it, 5 % crashed (virtual)",
    "sim deploy: join → every late joiner holds it, 5 % crashed, 5 % late joiners (virtual)",
    "sim deploy: messages per node, all up (virtual)",
];

fn serf_installed() -> bool {
    Command::new("serf")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `hearsay-serf-node` and `hearsay` (agent and CLI; the bench finds it beside the node) of
/// the same profile as this test's build; built on demand when the test runs without the rest
/// of the workspace.
fn node_bin(bench: &Path) -> PathBuf {
    let profile_dir = bench.parent().expect("bench has a directory");
    let node = profile_dir.join("hearsay-serf-node");
    if node.is_file() && profile_dir.join("hearsay").is_file() {
        return node;
    }
    let target_dir = profile_dir.parent().expect("profile dir has a parent");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "hearsay-test-nodes",
        "--bin",
        "hearsay-serf-node",
        // `--bin` filters every selected package, so the CLI's binary is named too.
        "-p",
        "hearsay",
        "--bin",
        "hearsay",
    ])
    .arg("--target-dir")
    .arg(target_dir);
    if profile_dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "building hearsay-serf-node failed");
    assert!(node.is_file(), "{} missing after the build", node.display());
    node
}

/// The cells of the table row for `figure` (there may be one per N; all are returned).
fn rows<'a>(report: &'a str, figure: &str) -> Vec<Vec<&'a str>> {
    let prefix = format!("| {figure} |");
    report
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect()
}

#[test]
fn quick_mode_produces_every_figure() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_hearsay-bench"));
    let node = node_bin(&bench);
    let out = std::env::temp_dir().join(format!("hearsay-bench-quick-{}.md", std::process::id()));
    let status = Command::new(&bench)
        .arg("--quick")
        .arg("--out")
        .arg(&out)
        .arg("--node-bin")
        .arg(&node)
        .status()
        .expect("running hearsay-bench");
    assert!(status.success(), "hearsay-bench --quick failed");
    let report = std::fs::read_to_string(&out).expect("report written");
    let _ = std::fs::remove_file(&out);

    for s in SECTIONS {
        assert!(report.contains(s), "missing section {s:?}\n{report}");
    }
    assert!(report.contains("CPUs online"), "no machine line\n{report}");
    assert!(report.contains("cargo run --release -p hearsay-bench -- --quick"));
    let serf = serf_installed();
    // Live rows: | figure | N | serf | hearsay | ratio | anchor |, split with empty edges.
    let live = LIVE.iter().map(|f| (f, true));
    for (f, has_ratio) in live.chain(LIVE_COUNTS.iter().map(|f| (f, false))) {
        let r = rows(&report, f);
        assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
        for cells in r {
            assert_ne!(cells[4], "—", "no hearsay value for {f:?}\n{report}");
            if serf {
                assert_ne!(cells[3], "—", "no serf value for {f:?}\n{report}");
                if has_ratio {
                    assert_ne!(cells[5], "—", "no ratio for {f:?}\n{report}");
                }
            }
        }
    }
    for f in AGENT_ONLY {
        let r = rows(&report, f);
        assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
        if serf {
            assert!(r.iter().all(|c| c[3] != "—"), "no serf value for {f:?}");
        }
        // `hearsay` is built beside the node, so hearsay's live nodes are agents too.
        assert!(r.iter().all(|c| c[4] != "—"), "no hearsay value for {f:?}");
    }
    for f in HEARSAY_ONLY {
        let r = rows(&report, f);
        assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
        assert!(r.iter().all(|c| c[4] != "—"), "no hearsay value for {f:?}");
    }
    for f in ISOLATION_LATENCY {
        let r = rows(&report, f);
        assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
        for cells in r.iter().filter(|c| c.len() == 8) {
            assert_eq!(cells[3], "—", "serf has no value for {f:?}\n{report}");
            assert_ne!(cells[4], "—", "no hearsay value for {f:?}\n{report}");
            assert_ne!(
                cells[5], "—",
                "no ratio against echo alone for {f:?}\n{report}"
            );
        }
    }
    for f in ISOLATION_CHECKS {
        let r = rows(&report, f);
        assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
        assert!(
            r.iter().all(|c| c[4] != "—"),
            "no value for {f:?}\n{report}"
        );
    }
    for f in QUIC {
        // The section's rows have four columns (the headline table's have five).
        let r: Vec<_> = rows(&report, f)
            .into_iter()
            .filter(|c| c.len() == 6)
            .collect();
        assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
        assert!(r.iter().all(|c| c[3] != "—"), "no value for {f:?}");
    }
    for f in DEPLOY {
        let prefix = format!("| {f}");
        let r: Vec<Vec<&str>> = report
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
        assert!(
            r.iter().all(|c| c[3] != "—"),
            "no value for {f:?}\n{report}"
        );
    }
    for job in CAPABILITY_JOBS {
        for figure in CAPABILITY_FIGURES {
            let f = format!("{job}: {figure}");
            let r = rows(&report, &f);
            assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
            for cells in r.iter().filter(|c| c.len() == 8) {
                assert_ne!(cells[4], "—", "no hearsay value for {f:?}\n{report}");
                if serf {
                    assert_ne!(cells[3], "—", "no serf value for {f:?}\n{report}");
                    assert_ne!(cells[5], "—", "no ratio for {f:?}\n{report}");
                }
            }
        }
        for figure in CAPABILITY_HOST {
            let f = format!("{job}: {figure}");
            let r = rows(&report, &f);
            assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
            assert!(r.iter().all(|c| c[4] != "—"), "no hearsay value for {f:?}");
        }
    }
    let r = rows(&report, "agent CPU per event, no handler");
    assert!(
        !r.is_empty(),
        "missing the agents' CPU without a handler\n{report}"
    );
    // Simulator rows: | figure | N | hearsay | model |.
    for f in SIM {
        let r = rows(&report, f);
        assert!(!r.is_empty(), "missing figure {f:?}\n{report}");
        for cells in r {
            assert_ne!(cells[3], "—", "no simulated value for {f:?}\n{report}");
        }
    }
}

//! Section 11, "Handler deployment": runs the live part ([`crate::deploy`]) and the simulator
//! part ([`crate::deploy_sim`]) as the plan says, and turns their samples into the section's
//! rows and notes. serf has no deploy mechanism, so the section is hearsay alone, with one
//! anchor row saying how serf and scheduler-based systems do it instead.

use crate::deploy::{self, ClassSamples, LivePlan, LiveSamples};
use crate::deploy_sim::{self, CaseResult, Scenario};
use crate::guests::Guests;
use crate::procs::Tools;
use crate::report::{Row, Section};
use crate::stats::{Summary, Unit};
use std::time::{Duration, Instant};

/// The goal for the small module at N = 10.
const GOAL_SECS: f64 = 1.0;

/// What section 11 runs.
#[derive(Debug, Clone)]
pub(crate) struct DeployPlan {
    /// The live cluster and its deploys; `None`: the live part is skipped.
    pub live: Option<LivePlan>,
    /// (N, seeds) per simulated size.
    pub sims: Vec<(usize, usize)>,
    /// Wall time one (N, scenario) may spend on further seeds (the first always runs).
    pub sim_budget: Duration,
}

/// `72.1 KB` / `8.07 MiB`, as a module size is printed.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else {
        format!("{:.1} KB", bytes as f64 / 1000.0)
    }
}

fn intro(plan: &DeployPlan) -> String {
    let live = match plan.live {
        Some(p) => format!(
            "Live: {n} `hearsay agent` processes on 127.0.0.1, each with its own `-data-dir` under \
a scratch directory and the same `-deploy-key` (made by `hearsay keygen -deploy`), on the \
`local` profile, joined into one cluster; measuring starts once every agent's `members` RPC \
lists {n} alive. Every deploy is the real CLI, `hearsay deploy -rpc-addr=<first agent> \
-key=FILE -name=greet -events=query:greet -wait=60s MODULE`, a new version each time with \
bytes no node held before: the `echo` component plus a custom section naming the version \
(small), or plus a {pad} pseudo-random pad in that section (large; a component with an extra \
custom section is still a valid component), so every node fetches the module from a peer over \
QUIC, checks its sha256 and compiles it, every time. One first deploy into the fresh cluster \
(the small module). {reps}. Timed from just before the CLI is spawned \
(its start-up, reading the module, signing and the `deploy` RPC included) until the bench's \
poll of the first agent's `deployments` RPC (every {poll} ms; it asks every node for its state \
over QUIC, as `hearsay deployments -format=json` shows) shows all {n} nodes `running` that \
version; the CLI's own lines are timestamped as they arrive (`Deployed greet version V`, then \
`greet vV: K of {n} nodes running`; the CLI looks every second), and so are the agents' log \
lines (`deploy: learned a deployment`, `deploy: running a deployed handler`), which time the \
record's spread and the last node's switch without the poll's lag.",
            n = p.n,
            pad = size(p.large_pad as u64),
            reps = if p.small_reps + p.large_reps == 0 {
                "That one deploy only (quick mode)".to_owned()
            } else {
                format!(
                    "Then {} small and {} large ones, {} ms apart",
                    p.small_reps,
                    p.large_reps,
                    deploy::GAP.as_millis()
                )
            },
            poll = deploy::POLL.as_millis(),
        ),
        None => "Live part skipped (--no-live).".to_owned(),
    };
    format!(
        "hearsay alone (serf cannot deploy a handler: see the anchor row). {live} Scale: \
hearsay-deploy's deterministic simulator (`hearsay_deploy::testing::simulate`): every node \
runs the real dissemination core (`Sync`: rumor to 3 random peers per node that learns the \
record, anti-entropy digest exchange with one random peer every 10 s ±50 %, the agent's \
settings) and the real set (`DeploySet`), on a virtual clock with 1–50 ms per message \
(uniform); a node that learns the record would then fetch the module, which is **not \
simulated**: the virtual times are the record's spread only. Scenarios: all up; 5 % of the \
nodes crashed at the deploy (dropped from everyone's peers 5 s later, restarted with the old \
version 40 s after it); and that plus 5 % more nodes joining with empty sets 20 s after it. \
Messages are every push, sync request, sync reply and push back sent from the deploy to the \
end of the run (which lasts until the restart and join phases are over), per node that ran."
    )
}

/// The row of one live figure.
fn live_row(figure: &str, n: usize, samples: &[f64], reference: String) -> Row {
    Row::new(figure, n, Unit::Secs)
        .hearsay(samples)
        .reference(reference)
}

/// The goal's verdict on the small module's median.
fn goal_verdict(s: &[f64]) -> String {
    match Summary::of(s) {
        Some(x) if x.median < GOAL_SECS => format!(
            "goal (issue): < 1 s p50 at N=10: met (p50 {}, max {})",
            Unit::Secs.fmt(x.median),
            Unit::Secs.fmt(x.max)
        ),
        Some(x) => format!(
            "goal (issue): < 1 s p50 at N=10: NOT met (p50 {}, max {})",
            Unit::Secs.fmt(x.median),
            Unit::Secs.fmt(x.max)
        ),
        None => "goal (issue): < 1 s p50 at N=10: no sample".to_owned(),
    }
}

/// How the CLI's last progress lines read, e.g. "`greet v5: 10 of 10 nodes running` (×1)".
fn cli_lines(c: &ClassSamples) -> String {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for l in &c.cli_lines {
        // The version differs per deploy; the rest is what matters.
        let rest = l.split_once(": ").map_or(l.as_str(), |(_, r)| r);
        match seen.iter_mut().find(|(r, _)| r == rest) {
            Some((_, k)) => *k += 1,
            None => seen.push((rest.to_owned(), 1)),
        }
    }
    let parts: Vec<String> = seen
        .iter()
        .map(|(r, k)| format!("`greet vV: {r}` ×{k}"))
        .collect();
    if parts.is_empty() {
        "no progress line".to_owned()
    } else {
        format!("last line printed: {}", parts.join(", "))
    }
}

/// The rows of one size class.
fn class_rows(label: &str, n: usize, c: &ClassSamples, headline: bool) -> Vec<Row> {
    let what = format!("{label}, {}", size(c.bytes));
    let mut main = live_row(
        &format!("deploy → every node running, {what}"),
        n,
        &c.converged,
        if headline {
            goal_verdict(&c.converged)
        } else {
            "from the CLI's spawn to the poll that saw all N running".to_owned()
        },
    );
    if headline {
        main = main.headline();
    }
    vec![
        main,
        live_row(
            &format!(
                "deploy: CLI spawned → `Deployed` line (agent took record and bytes), {label}"
            ),
            n,
            &c.taken,
            "CLI start-up, reading and hashing the module, signing, the `deploy` RPC".to_owned(),
        ),
        live_row(
            &format!("deploy: `Deployed` line → every node running, {label}"),
            n,
            &c.spread,
            "rumor over QUIC, module fetched from a peer, sha256 checked, compiled, swapped in"
                .to_owned(),
        ),
        live_row(
            &format!("deploy: CLI spawned → every agent logged the record learned, {label}"),
            n,
            &c.log_learned,
            "the last agent's `deploy: learned a deployment` line (no poll lag)".to_owned(),
        ),
        live_row(
            &format!("deploy: CLI spawned → every agent logged it running, {label}"),
            n,
            &c.log_running,
            "the last agent's `deploy: running a deployed handler` line for the version's \
module (after fetch and compile; no poll lag)"
                .to_owned(),
        ),
        live_row(
            &format!("deploy: CLI spawned → its last `K of N nodes running` line, {label}"),
            n,
            &c.cli_done,
            format!(
                "the CLI's own view (it looks every second); {}",
                cli_lines(c)
            ),
        ),
        Row::new(
            &format!("deploy: nodes running in the CLI's last progress line, {label}"),
            n,
            Unit::Count(" nodes"),
        )
        .hearsay(&c.cli_running)
        .reference(format!("of {n}; {}", cli_lines(c))),
    ]
}

/// The anchor row: serf has no deploy mechanism.
fn anchor_row(n: usize) -> Row {
    Row::new("serf: deploy a handler to every node", n, Unit::Secs).reference(
        "serf cannot deploy handlers at all: an operator copies the handler scripts to every \
node and edits its config, then reloads each agent (`serf reload` / SIGHUP); no serf figure. \
Scheduler-based systems (wasmCloud, Nomad) roll a new version out through a scheduler, in \
seconds to minutes; not measured here",
    )
}

/// The first deploy's parts, for its row's anchor cell.
fn first_breakdown(c: &ClassSamples) -> String {
    let t = |v: &[f64]| v.first().map_or("—".to_owned(), |x| Unit::Secs.fmt(*x));
    format!(
        "`Deployed` line at {}, every agent logged it learned at {} and running at {}; {}",
        t(&c.taken),
        t(&c.log_learned),
        t(&c.log_running),
        cli_lines(c)
    )
}

/// Where one slow deploy's time went, from the agents' logs.
fn slow_entry(x: &deploy::Slow, n: usize) -> String {
    let t = |v: Option<f64>| v.map_or("—".to_owned(), |v| Unit::Secs.fmt(v));
    let why = match (x.learned_but_last, x.learned) {
        (Some(early), Some(last)) if last - early > deploy::SLOW => "the last agent late",
        (_, Some(last)) if last > deploy::SLOW => "the record slow to spread",
        (Some(_), Some(_)) => "fetch and compile",
        _ => "no log times",
    };
    format!(
        "v{} {} ({why}: the record at {} of {n} agents by {}, at the last by {}, running \
everywhere by {})",
        x.version,
        Unit::Secs.fmt(x.converged),
        n.saturating_sub(1),
        t(x.learned_but_last),
        t(x.learned),
        t(x.running)
    )
}

/// Which deploys of a class took over a second, and where their time went.
fn slow_note(label: &str, n: usize, c: &ClassSamples) -> Option<String> {
    if c.slow.is_empty() {
        return None;
    }
    let each: Vec<String> = c.slow.iter().map(|x| slow_entry(x, n)).collect();
    Some(format!(
        "{label} module: {} of {} deploys took over {:.0} s: {}. A last agent seconds behind \
the rest is one the rumor (each node that learns the record pushes it to 3 random peers, once) \
missed, reached by anti-entropy (a digest exchange with one random peer every 10 s ±50 %); a \
record at every agent early leaves the time to fetching and compiling the module.",
        c.slow.len(),
        c.converged.len(),
        deploy::SLOW,
        each.join("; ")
    ))
}

/// Rows and notes of the live part.
fn live_rows(sec: &mut Section, s: &LiveSamples) {
    let n = s.n;
    sec.rows.push(live_row(
        &format!(
            "deploy → every node running, first deploy into a fresh cluster, echo {}",
            size(s.first.bytes)
        ),
        n,
        &s.first.converged,
        first_breakdown(&s.first),
    ));
    // A class with no deploy planned (quick mode) has no rows.
    if s.small.bytes > 0 {
        sec.rows
            .extend(class_rows("small module (echo)", n, &s.small, true));
    }
    if s.large.bytes > 0 {
        sec.rows
            .extend(class_rows("large module (echo + pad)", n, &s.large, false));
    }
    sec.rows.push(anchor_row(n));
    for (label, c) in [
        ("first", &s.first),
        ("small", &s.small),
        ("large", &s.large),
    ] {
        for f in &c.failures {
            sec.notes.push(format!("{label} deploy {f}"));
        }
    }
    for (label, c) in [("small", &s.small), ("large", &s.large)] {
        if let Some(note) = slow_note(label, n, c) {
            sec.notes.push(note);
        }
    }
    if let Some(rtt) = Summary::of(&s.poll_rtt) {
        sec.notes.push(format!(
            "Resolution: one `deployments` RPC (the first agent asking all {n} nodes over QUIC) \
took {} median ({}–{}), polled every {} ms, so each live time is late by up to that much. \
The cluster formed {} after the first agent started (every agent logged every join at {}; \
listed {n} alive over RPC at the later time). \
Module sizes: small {} (echo {} + the version's custom section){}.",
            Unit::Secs.fmt(rtt.median),
            Unit::Secs.fmt(rtt.min),
            Unit::Secs.fmt(rtt.max),
            deploy::POLL.as_millis(),
            Unit::Secs.fmt(s.formation),
            Unit::Secs.fmt(s.joined),
            size(s.small.bytes.max(s.first.bytes)),
            size(s.echo_bytes),
            if s.large.bytes > 0 {
                format!(", large {} ({} bytes)", size(s.large.bytes), s.large.bytes)
            } else {
                String::new()
            },
        ));
    }
}

/// Rows of one simulated (N, scenario).
fn sim_rows(r: &CaseResult) -> Vec<Row> {
    let tag = format!("{} (virtual)", r.scenario.label());
    let row = |figure: String, samples: &[f64], unit: Unit, reference: String| {
        Row::new(&figure, r.n, unit)
            .hearsay(samples)
            .reference(reference)
    };
    let mut rows = vec![row(
        format!("sim deploy: record → every node up holds it, {tag}"),
        &r.converged,
        Unit::Secs,
        format!("{} seed(s); module fetch not simulated", r.seeds),
    )];
    if !r.restarted.is_empty() {
        rows.push(row(
            format!("sim deploy: restart → every restarted node holds it, {tag}"),
            &r.restarted,
            Unit::Secs,
            "the crashed 5 % restart 40 s after the deploy with the old version".to_owned(),
        ));
    }
    if !r.joiners.is_empty() {
        rows.push(row(
            format!("sim deploy: join → every late joiner holds it, {tag}"),
            &r.joiners,
            Unit::Secs,
            "5 % more nodes join with empty sets 20 s after the deploy".to_owned(),
        ));
    }
    rows.push(row(
        format!("sim deploy: nodes that learned it from the rumor, {tag}"),
        &r.by_rumor_pct,
        Unit::Count(" %"),
        "of the nodes that learned it after the deploy; the rest through anti-entropy (one \
digest exchange per node every 10 s ±50 %), which sets the time to every node"
            .to_owned(),
    ));
    let run = Summary::of(&r.elapsed).map_or(0.0, |s| s.median);
    rows.push(row(
        format!("sim deploy: messages per node, {tag}"),
        &r.msgs_per_node,
        Unit::Count(" msgs"),
        format!(
            "over the {run:.0} s run; rumor pushes {} per node, the rest anti-entropy; most \
one node sent: {}",
            Summary::of(&r.pushes_per_node).map_or("—".into(), |s| format!("{:.2}", s.median)),
            Summary::of(&r.max_sent).map_or("—".into(), |s| format!("{:.0}", s.median)),
        ),
    ));
    rows
}

/// Runs the simulator's sizes and scenarios into `sec`.
fn sim_part(sec: &mut Section, plan: &DeployPlan) {
    for &(n, seeds) in &plan.sims {
        let t = Instant::now();
        let mut incomplete = 0;
        for scenario in Scenario::ALL {
            eprintln!("[bench] deploy simulator N={n}, {} ...", scenario.label());
            let r = deploy_sim::run(n, scenario, seeds, plan.sim_budget);
            eprintln!(
                "[bench] deploy simulator N={n}, {}: {} seed(s) in {:.1} s",
                scenario.label(),
                r.seeds,
                r.wall.as_secs_f64()
            );
            incomplete += r.incomplete;
            sec.rows.extend(sim_rows(&r));
        }
        sec.notes.push(format!(
            "Simulator N={n}: {:.1} s of wall time for the three scenarios (release build){}.",
            t.elapsed().as_secs_f64(),
            if incomplete > 0 {
                format!("; {incomplete} run(s) did not converge everywhere within 300 s")
            } else {
                String::new()
            }
        ));
    }
}

/// Section 11.
pub(crate) fn section(
    tools: &Tools,
    guests: Result<&Guests, &anyhow::Error>,
    plan: &DeployPlan,
) -> Section {
    let mut sec = Section {
        title: "11. Handler deployment".into(),
        intro: intro(plan),
        hearsay_only: true,
        measured_col: "hearsay",
        ..Section::default()
    };
    if let Some(live) = plan.live {
        match guests {
            Err(e) => sec.notes.push(format!(
                "live part not measured: the echo component is unavailable: {e:#}"
            )),
            Ok(_) if tools.agent.is_none() => sec
                .notes
                .push("live part not measured: the `hearsay` binary is not built".to_owned()),
            Ok(g) => {
                let t = Instant::now();
                eprintln!("[bench] deploy: {} agents ...", live.n);
                match deploy::measure(tools, g, live) {
                    Ok(s) => live_rows(&mut sec, &s),
                    Err(e) => sec.notes.push(format!("live part failed: {e:#}")),
                }
                eprintln!(
                    "[bench] deploy: live part took {:.1} s",
                    t.elapsed().as_secs_f64()
                );
            }
        }
    }
    sim_part(&mut sec, plan);
    if !plan.sims.is_empty() {
        sec.notes.push(
            "Simulator: the record's time to every node up is the same with and without the late \
joiners, seed for seed: the runs share seeds, and until the joiners arrive 20 s after the \
deploy they run the same events, so a cluster that converges within 20 s does so identically. \
The time to every node is set by the few \
percent the rumor misses, which anti-entropy reaches within one or two sync periods."
                .to_owned(),
        );
    }
    sec
}

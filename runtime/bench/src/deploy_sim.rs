//! Section 11's scale part: how a deployment record spreads among thousands of nodes, through
//! hearsay-deploy's deterministic simulator (`hearsay_deploy::testing::simulate`). Each node
//! is the real dissemination core (`Sync`, the rumor and anti-entropy scheduler) and the real
//! converging set (`DeploySet`), with the agent's settings (fanout 3, a sync every 10 s
//! ±50 %), on a virtual clock with 1–50 ms per message. What travels is the signed record:
//! the module fetch that follows it on each node is not simulated.
//!
//! Three scenarios per size: everyone up; 5 % of the nodes crashed at the deploy (they leave
//! the others' peer lists 5 s later and restart 40 s after the deploy with the old version);
//! and that plus 5 % more nodes joining with empty sets 20 s after the deploy.

use hearsay_deploy::testing::{simulate, SimConfig, SimReport};
use std::time::{Duration, Instant};

/// One scenario of the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    AllUp,
    Crashed,
    CrashedAndJoiners,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 3] = [
        Scenario::AllUp,
        Scenario::Crashed,
        Scenario::CrashedAndJoiners,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Scenario::AllUp => "all up",
            Scenario::Crashed => "5 % crashed",
            Scenario::CrashedAndJoiners => "5 % crashed, 5 % late joiners",
        }
    }

    /// The simulator's configuration at `n` nodes (the agent's fanout and interval are the
    /// simulator's defaults).
    fn config(self, n: usize, seed: u64) -> SimConfig {
        let five = n / 20;
        let (crashed, joiners) = match self {
            Scenario::AllUp => (0, 0),
            Scenario::Crashed => (five, 0),
            Scenario::CrashedAndJoiners => (five, five),
        };
        SimConfig {
            nodes: n,
            seed,
            crashed,
            joiners,
            ..SimConfig::default()
        }
    }
}

/// What one scenario at one size measured, over its seeds.
#[derive(Debug, Clone)]
pub(crate) struct CaseResult {
    pub n: usize,
    pub scenario: Scenario,
    pub seeds: usize,
    /// Deploy → every node that stayed up holds the record (virtual seconds).
    pub converged: Vec<f64>,
    /// Restart → every restarted node holds it.
    pub restarted: Vec<f64>,
    /// Joiners' start → every joiner holds it.
    pub joiners: Vec<f64>,
    /// Messages after the deploy per node (every node that ever ran), and of them rumor
    /// pushes, and the most one node sent.
    pub msgs_per_node: Vec<f64>,
    pub pushes_per_node: Vec<f64>,
    pub max_sent: Vec<f64>,
    /// Percent of the nodes that learned the record after the deploy that learned it from a
    /// rumor push (the rest: through anti-entropy).
    pub by_rumor_pct: Vec<f64>,
    /// Virtual time the run lasted (it waits for the restart and join phases).
    pub elapsed: Vec<f64>,
    /// Runs that ended without every group converged, or disagreeing.
    pub incomplete: usize,
    /// Wall time of all seeds.
    pub wall: Duration,
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

impl CaseResult {
    fn new(n: usize, scenario: Scenario) -> Self {
        Self {
            n,
            scenario,
            seeds: 0,
            converged: Vec::new(),
            restarted: Vec::new(),
            joiners: Vec::new(),
            msgs_per_node: Vec::new(),
            pushes_per_node: Vec::new(),
            max_sent: Vec::new(),
            by_rumor_pct: Vec::new(),
            elapsed: Vec::new(),
            incomplete: 0,
            wall: Duration::ZERO,
        }
    }

    /// Adds one run; `total` is every node that ever ran (joiners included).
    fn add(&mut self, r: &SimReport, cfg: &SimConfig) {
        let total = (cfg.nodes + cfg.joiners) as f64;
        self.seeds += 1;
        self.converged.extend(secs(r.converged));
        if cfg.crashed > 0 {
            self.restarted.extend(secs(r.restarted_converged));
        }
        if cfg.joiners > 0 {
            self.joiners.extend(secs(r.joiners_converged));
        }
        let done = r.converged.is_some()
            && (cfg.crashed == 0 || r.restarted_converged.is_some())
            && (cfg.joiners == 0 || r.joiners_converged.is_some());
        if !done || !r.all_agree {
            self.incomplete += 1;
        }
        self.msgs_per_node.push(r.messages as f64 / total);
        self.pushes_per_node.push(r.pushes as f64 / total);
        self.max_sent.push(r.max_sent as f64);
        let learned = r.learned_by_push + r.learned_by_sync;
        if learned > 0 {
            self.by_rumor_pct
                .push(100.0 * r.learned_by_push as f64 / learned as f64);
        }
        self.elapsed.push(r.elapsed.as_secs_f64());
    }
}

/// Runs `scenario` at `n` nodes for seeds 1..=`seeds`, stopping early (after at least one
/// seed) once `budget` of wall time is spent.
pub(crate) fn run(n: usize, scenario: Scenario, seeds: usize, budget: Duration) -> CaseResult {
    let mut out = CaseResult::new(n, scenario);
    let started = Instant::now();
    for seed in 1..=seeds as u64 {
        let cfg = scenario.config(n, seed);
        let r = simulate(&cfg);
        out.add(&r, &cfg);
        if started.elapsed() >= budget {
            break;
        }
    }
    out.wall = started.elapsed();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_cluster_converges_in_every_scenario() {
        for s in Scenario::ALL {
            let r = run(100, s, 1, Duration::from_secs(60));
            assert_eq!(r.incomplete, 0, "{}", s.label());
            assert_eq!(r.converged.len(), 1);
        }
    }
}

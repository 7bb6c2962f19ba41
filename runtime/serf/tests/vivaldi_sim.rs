//! Vivaldi on simulated latency matrices: coordinates learned from ping samples must predict
//! the RTTs between every pair of nodes. The main scenario is a synthetic geography (points
//! on a plane plus per-node access latency, with jittery and occasionally spiking samples);
//! the others are Serf's own `performance_test.go` scenarios held to Serf's own limits.
//!
//! Deterministic: every random choice comes from a seeded RNG. Set `HEARSAY_VIVALDI_SEED`
//! to try another seed; the seed in use is printed (`cargo test -- --nocapture`).

// Node numbers index the RTT matrices; index loops say that most plainly.
#![allow(clippy::needless_range_loop)]

use std::time::Duration;

use hearsay_serf::coordinate::{Client, Coordinate, CoordinateConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Like Go's `rand.Seed(1)` in Serf's simulations.
const DEFAULT_SEED: u64 = 1;

fn seed() -> u64 {
    std::env::var("HEARSAY_VIVALDI_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// Symmetric RTT matrix in seconds.
type Truth = Vec<Vec<f64>>;

fn clients(n: usize, config: &CoordinateConfig, seed: u64) -> Vec<Client> {
    (0..n)
        .map(|i| Client::new(config.clone(), seed ^ (i as u64).wrapping_mul(0x9E37_79B9)).unwrap())
        .collect()
}

/// One probe: `i` pings `j`, gets `j`'s coordinate in the ack and the measured RTT.
fn probe(clients: &mut [Client], i: usize, j: usize, rtt_secs: f64) {
    let other: Coordinate = clients[j].coordinate().clone();
    clients[i]
        .update(
            &format!("node-{j}"),
            &other,
            Duration::from_secs_f64(rtt_secs),
        )
        .expect("simulated samples are always valid");
}

/// Serf's `Simulate`: every cycle, each node probes one random node (skipping itself) and
/// observes the true RTT.
fn simulate(clients: &mut [Client], truth: &Truth, cycles: usize, rng: &mut StdRng) {
    let n = clients.len();
    for _ in 0..cycles {
        for i in 0..n {
            let j = rng.gen_range(0..n);
            if j != i {
                probe(clients, i, j, truth[i][j]);
            }
        }
    }
}

/// Relative errors |estimate − truth| / truth over all pairs, sorted.
fn relative_errors(clients: &[Client], truth: &Truth) -> Vec<f64> {
    let n = clients.len();
    let mut errs = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let est = clients[i]
                .distance_to(clients[j].coordinate())
                .as_secs_f64();
            errs.push((est - truth[i][j]).abs() / truth[i][j]);
        }
    }
    errs.sort_by(f64::total_cmp);
    errs
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn matrix(n: usize, mut rtt: impl FnMut(usize, usize) -> f64) -> Truth {
    let mut t = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let v = rtt(i, j);
            t[i][j] = v;
            t[j][i] = v;
        }
    }
    t
}

/// The scenario from the issue: 50 nodes on a synthetic geography, each probing a few
/// random peers per round as memberlist probes once a second, with noisy samples.
#[test]
fn coordinates_on_a_synthetic_geography_predict_rtts() {
    const N: usize = 50;
    const PEERS_PER_ROUND: usize = 3;
    const ROUNDS: usize = 300;
    let seed = seed();
    println!("vivaldi_sim: seed {seed} (HEARSAY_VIVALDI_SEED to change)");
    let mut rng = StdRng::seed_from_u64(seed);

    // Sites on a 60 ms x 60 ms plane (RTT grows with distance like fibre does), plus an
    // access latency of 0.5-5 ms per node paid on both ends of every path. Pairs are kept
    // within 1-100 ms.
    let sites: Vec<(f64, f64, f64)> = (0..N)
        .map(|_| {
            (
                rng.gen_range(0.0..0.060),
                rng.gen_range(0.0..0.060),
                rng.gen_range(0.0005..0.005),
            )
        })
        .collect();
    let truth = matrix(N, |i, j| {
        let (xi, yi, hi) = sites[i];
        let (xj, yj, hj) = sites[j];
        let d = ((xi - xj).powi(2) + (yi - yj).powi(2)).sqrt();
        (d + hi + hj).clamp(0.001, 0.100)
    });
    let all: Vec<f64> = truth
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row[i + 1..].to_vec())
        .collect();
    println!(
        "vivaldi_sim: true RTTs {:.1}-{:.1} ms, mean {:.1} ms",
        all.iter().copied().fold(f64::MAX, f64::min) * 1e3,
        all.iter().copied().fold(0.0, f64::max) * 1e3,
        mean(&all) * 1e3
    );

    let config = CoordinateConfig::default();
    let mut clients = clients(N, &config, seed);
    let mut report = Vec::new();
    for round in 1..=ROUNDS {
        for i in 0..N {
            for _ in 0..PEERS_PER_ROUND {
                let j = (i + rng.gen_range(1..N)) % N;
                // ±3% jitter on every sample; one in twenty is a spike of 1.5-4x that the
                // latency filter should keep away from Vivaldi.
                let mut sample = truth[i][j] * rng.gen_range(0.97..1.03);
                if rng.gen_bool(0.05) {
                    sample *= rng.gen_range(1.5..4.0);
                }
                probe(&mut clients, i, j, sample);
            }
        }
        if [10, 30, 100, ROUNDS].contains(&round) {
            let errs = relative_errors(&clients, &truth);
            let (median, p90) = (quantile(&errs, 0.5), quantile(&errs, 0.9));
            println!(
                "vivaldi_sim: after {round:>3} rounds: median relative error {median:.4}, \
                 p90 {p90:.4}, mean {:.4}, max {:.4}",
                mean(&errs),
                errs[errs.len() - 1]
            );
            report.push((round, median, p90));
        }
    }
    let resets: u64 = clients.iter().map(|c| c.stats().resets).sum();
    assert_eq!(resets, 0, "no coordinate should ever go invalid");

    let &(_, median, p90) = report.last().unwrap();
    // The geography is what Vivaldi models (a Euclidean core plus heights), so what is
    // left is the ±3% jitter, the spikes that get through the median-of-3 filter (two
    // spikes among a peer's last three samples), and short pairs where a fraction of a
    // millisecond is a large relative error. Over seeds 1-40 this run gives medians of
    // 0.012-0.022 and p90s of 0.054-0.177. Serf's own noiseless embeddable scenarios reach
    // mean errors of 0.1-0.3% and its non-embeddable random matrix 5% (mean) with a worst
    // pair near 25% (see `serf_performance_specs`). A 5% median and a 25% p90 hold for
    // every seed tried while failing on any real regression (a broken filter, height or
    // adjustment multiplies them).
    assert!(median < 0.05, "median relative error {median:.4} too large");
    assert!(p90 < 0.25, "p90 relative error {p90:.4} too large");
    // And it converges: the error falls as samples accumulate.
    assert!(report[0].1 > median, "no convergence: {report:?}");
}

/// Box-Muller, for Serf's normally distributed random matrix.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn avg_error(clients: &[Client], truth: &Truth) -> f64 {
    mean(&relative_errors(clients, truth))
}

/// How many seeds each Serf scenario runs with (derived from the base seed).
const SEEDS: u64 = 9;

/// Serf's `performance_test.go` scenarios (1000 cycles, one random probe per node per
/// cycle, exact RTTs), each run under [`SEEDS`] seeds.
///
/// Serf's own limits (e.g. line: mean error 0.0018) are its result under Go's `rand.Seed(1)`
/// plus a hair: running Serf's Go code under seeds 1-40 gives these medians (and ranges) of
/// the mean relative error, which our port reproduces:
///
/// | scenario | Serf limit | Go, 40 seeds: median (min-max) |
/// |----------|-----------:|--------------------------------|
/// | line     | 0.0018     | 0.00214 (0.00051-0.00403)      |
/// | grid     | 0.0015     | 0.00149 (0.00100-0.00220)      |
/// | split    | 0.000060   | 0.000056 (0.000046-0.00341)    |
/// | height   | 0.0025     | 0.00326 (0.00218-0.00451)      |
/// | random   | 0.075      | 0.0516 (0.0466-0.0642)         |
///
/// So the assertion is on the median over our seeds: within 1.5x of Go's median.
#[test]
fn serf_performance_specs() {
    let base = seed();
    println!("vivaldi_sim: seeds {base}..{}", base + SEEDS - 1);
    let ms = 0.001;
    let cfg = CoordinateConfig::default();

    let line = matrix(10, |i, j| (j - i) as f64 * 10.0 * ms);
    let grid = matrix(25, |i, j| {
        let (xi, yi) = ((i % 5) as f64, (i / 5) as f64);
        let (xj, yj) = ((j % 5) as f64, (j / 5) as f64);
        ((xi - xj).powi(2) + (yi - yj).powi(2)).sqrt() * 10.0 * ms
    });
    let split = matrix(25, |i, j| {
        let across = (i <= 12) != (j <= 12);
        if across {
            11.0 * ms
        } else {
            1.0 * ms
        }
    });
    let mut normals = StdRng::seed_from_u64(base);
    let random = matrix(25, |_, _| 100.0 * ms + normal(&mut normals) * 10.0 * ms);
    // Serf's height scenario: node 0 is 2r from everyone on a circle of radius r.
    let radius = 100.0 * ms;
    let circle = matrix(25, |i, j| {
        if i == 0 {
            2.0 * radius
        } else {
            let angle = |k: usize| 2.0 * std::f64::consts::PI * k as f64 / 25.0;
            let (xi, yi) = (angle(i).cos(), angle(i).sin());
            let (xj, yj) = (angle(j).cos(), angle(j).sin());
            ((xi - xj).powi(2) + (yi - yj).powi(2)).sqrt() * radius
        }
    });
    let cfg2 = CoordinateConfig {
        dimensionality: 2,
        ..CoordinateConfig::default()
    };

    // (name, config, truth, Go's median mean error over seeds 1-40)
    let cases = [
        ("line", &cfg, line, 0.00214),
        ("grid", &cfg, grid, 0.00149),
        ("split", &cfg, split, 0.000056),
        ("height", &cfg2, circle, 0.00326),
        ("random", &cfg, random, 0.0516),
    ];
    for (name, config, truth, go_median) in cases {
        let mut avgs = Vec::new();
        for seed in base..base + SEEDS {
            let mut clients = clients(truth.len(), config, seed);
            simulate(&mut clients, &truth, 1000, &mut StdRng::seed_from_u64(seed));
            avgs.push(avg_error(&clients, &truth));
            if name == "height" {
                // In two dimensions node 0 can only be 2r from the whole circle by floating
                // up by about r, while the circle stays flat. Serf asks for rim heights under
                // 0.03r, which its own code misses under 19 of seeds 1-40 (worst 0.052r).
                for (i, c) in clients.iter().enumerate() {
                    let h = c.coordinate().height;
                    if i == 0 {
                        assert!(h >= 0.97 * radius, "seed {seed}: centre height {h}");
                    } else {
                        assert!(h <= 0.06 * radius, "seed {seed}: rim node {i} height {h}");
                    }
                }
            }
        }
        avgs.sort_by(f64::total_cmp);
        let median = avgs[avgs.len() / 2];
        println!(
            "vivaldi_sim: serf scenario {name:<6} mean relative error: median {median:.6} \
             over {SEEDS} seeds (range {:.6}-{:.6}); Go's median {go_median}",
            avgs[0],
            avgs[avgs.len() - 1]
        );
        assert!(
            median <= 1.5 * go_median,
            "{name}: median {median} over 1.5x Go's {go_median}: {avgs:?}"
        );
    }
}

/// Serf's drift scenario: four nodes placed off-centre; gravity must pull the cluster's
/// centre toward the origin. Serf asks for the centre error to shrink to 0.8 of its value
/// after 1000 cycles within 10000 more; its own code reaches 0.75-0.83 under seeds 1-40
/// (one over 0.8), so each of our seeds must reach 0.85.
#[test]
fn gravity_recentres_a_drifted_cluster() {
    let base = seed();
    let dist = 0.5;
    let cfg = CoordinateConfig {
        dimensionality: 2,
        ..CoordinateConfig::default()
    };
    let truth = matrix(4, |i, j| {
        if i % 2 == 0 && j % 2 == 0 {
            dist * std::f64::consts::SQRT_2
        } else {
            dist
        }
    });
    let centre_error = |clients: &[Client]| {
        let mut lo = [f64::MAX; 2];
        let mut hi = [f64::MIN; 2];
        for c in clients {
            for (k, v) in c.coordinate().vec.iter().enumerate() {
                lo[k] = lo[k].min(*v);
                hi[k] = hi[k].max(*v);
            }
        }
        let mid: Vec<f64> = (0..2).map(|k| lo[k] + (hi[k] - lo[k]) / 2.0).collect();
        (mid[0] * mid[0] + mid[1] * mid[1]).sqrt()
    };
    for seed in base..base + SEEDS {
        let mut clients = clients(4, &cfg, seed);
        let starts = [[0.0, 0.0], [0.0, dist], [dist, dist], [dist, dist]];
        for (c, v) in clients.iter_mut().zip(starts) {
            let coord = Coordinate {
                vec: v.to_vec(),
                ..c.coordinate().clone()
            };
            c.set_coordinate(&coord).unwrap();
        }
        let mut rng = StdRng::seed_from_u64(seed);
        simulate(&mut clients, &truth, 1000, &mut rng);
        let baseline = centre_error(&clients);
        simulate(&mut clients, &truth, 10_000, &mut rng);
        let after = centre_error(&clients);
        println!(
            "vivaldi_sim: seed {seed}: drift centre error {baseline:.6} -> {after:.6} ({:.3})",
            after / baseline
        );
        assert!(
            after <= 0.85 * baseline,
            "seed {seed}: {baseline} -> {after}"
        );
    }
}

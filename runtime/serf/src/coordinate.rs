//! Vivaldi network coordinates as Serf computes them: the coordinate, the client that moves
//! it on every RTT sample (latency filter, Vivaldi step, adjustment window, gravity), and
//! the ping-ack payload `[PingVersion = 1][go-msgpack Coordinate]` Serf attaches to acks.
//!
//! The arithmetic follows Serf's `coordinate` package step for step, including its
//! conversions through whole nanoseconds, so hearsay and Serf nodes fed the same samples
//! move the same way (up to last-bit rounding, and the random direction chosen when two
//! points coincide, which comes from a seeded RNG here). Units are seconds throughout.
//!
//! Serf 0.10 does not persist coordinates: its snapshot reader skips any old
//! `coordinate: ` line and the cluster re-converges, so there is no snapshot form here.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use hearsay_swim::wire::msgpack::{Reader, Writer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// The version byte in front of the coordinate in a ping ack (Serf's `PingVersion`).
pub const PING_VERSION: u8 = 1;

/// The most dimensions a decoded or configured coordinate may have. Serf uses 8; the bound
/// keeps a hostile payload from making us allocate or compute over huge vectors.
pub const MAX_DIMENSIONS: usize = 64;

/// The longest RTT sample [`Client::update`] accepts (Serf's `maxRTT`).
pub const MAX_RTT: Duration = Duration::from_secs(10);

/// Below this, two positions count as the same point and an RTT as zero (Serf's
/// `zeroThreshold`).
const ZERO_THRESHOLD: f64 = 1.0e-6;

/// Tuning of the Vivaldi algorithm (Serf's `coordinate.Config`).
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinateConfig {
    /// Euclidean dimensions, besides the height.
    pub dimensionality: usize,
    /// Error of a node with no observations yet, and the cap on the error.
    pub vivaldi_error_max: f64,
    /// The most one observation can move the confidence.
    pub vivaldi_ce: f64,
    /// The most one observation can move the coordinate.
    pub vivaldi_cc: f64,
    /// Samples kept for the adjustment term; 0 disables it.
    pub adjustment_window_size: usize,
    /// The smallest height; heights must stay positive.
    pub height_min: f64,
    /// RTT samples kept per peer for the moving median.
    pub latency_filter_size: usize,
    /// How strongly gravity pulls coordinates back toward the origin.
    pub gravity_rho: f64,
}

impl Default for CoordinateConfig {
    /// Serf's `DefaultConfig`, which Serf itself runs with.
    fn default() -> Self {
        Self {
            dimensionality: 8,
            vivaldi_error_max: 1.5,
            vivaldi_ce: 0.25,
            vivaldi_cc: 0.25,
            adjustment_window_size: 20,
            height_min: 10.0e-6,
            latency_filter_size: 3,
            gravity_rho: 150.0,
        }
    }
}

/// A network coordinate (Serf's `coordinate.Coordinate`). All fields are in seconds except
/// the dimensionless `error`.
#[derive(Debug, Clone, PartialEq)]
pub struct Coordinate {
    /// The Euclidean part.
    pub vec: Vec<f64>,
    /// Confidence in the coordinate: lower is better.
    pub error: f64,
    /// An offset learned from recent samples, added to distances when that keeps them
    /// positive.
    pub adjustment: f64,
    /// The non-Euclidean access-link part, added to every distance.
    pub height: f64,
}

impl Coordinate {
    /// A coordinate at the origin with the largest error, as a fresh node starts.
    pub fn new(config: &CoordinateConfig) -> Self {
        Self {
            vec: vec![0.0; config.dimensionality],
            error: config.vivaldi_error_max,
            adjustment: 0.0,
            height: config.height_min,
        }
    }

    /// Whether every component is finite (no NaN, no infinity).
    pub fn is_valid(&self) -> bool {
        self.vec.iter().all(|v| v.is_finite())
            && self.error.is_finite()
            && self.adjustment.is_finite()
            && self.height.is_finite()
    }

    /// Whether both coordinates have the same number of dimensions.
    pub fn is_compatible_with(&self, other: &Coordinate) -> bool {
        self.vec.len() == other.vec.len()
    }

    /// The estimated RTT to `other`: Euclidean distance plus both heights, plus both
    /// adjustments unless that would make it non-positive; truncated to whole nanoseconds
    /// like Go's `time.Duration(seconds * 1e9)`.
    ///
    /// Serf panics when the dimensions differ; this uses only the dimensions both have, so
    /// check [`is_compatible_with`](Self::is_compatible_with) first or use
    /// [`checked_distance_to`](Self::checked_distance_to). A negative or non-finite result
    /// (only possible with foreign coordinates carrying negative heights or NaN) is zero,
    /// and a result past Go's `time.Duration` range is clamped to it.
    pub fn distance_to(&self, other: &Coordinate) -> Duration {
        let raw = self.raw_distance_to(other);
        // Parenthesised so the sum, and so the truncated Duration, is exactly symmetric.
        let adjusted = raw + (self.adjustment + other.adjustment);
        let secs = if adjusted > 0.0 { adjusted } else { raw };
        seconds_to_duration(secs)
    }

    /// [`distance_to`](Self::distance_to), refusing coordinates of different dimensions.
    pub fn checked_distance_to(&self, other: &Coordinate) -> Result<Duration> {
        check_compatible(self, other)?;
        Ok(self.distance_to(other))
    }

    /// The Vivaldi distance in seconds without the adjustments (Serf's `rawDistanceTo`).
    pub fn raw_distance_to(&self, other: &Coordinate) -> f64 {
        magnitude_of_difference(&self.vec, &other.vec) + (self.height + other.height)
    }

    /// This coordinate moved by `force` seconds along the direction from `other` to it
    /// (a negative force pulls it toward `other`), with the height scaled alongside
    /// (Serf's `ApplyForce`). When the two points coincide the direction is a random unit
    /// vector drawn from `rng` and the height is left alone.
    ///
    /// Dimensions beyond those both coordinates have are left unchanged; Serf panics there.
    pub fn apply_force(
        &self,
        config: &CoordinateConfig,
        force: f64,
        other: &Coordinate,
        rng: &mut impl Rng,
    ) -> Coordinate {
        let mut moved = self.clone();
        let (unit, mag) = unit_vector_at(&self.vec, &other.vec, rng);
        for (v, u) in moved.vec.iter_mut().zip(&unit) {
            *v += u * force;
        }
        if mag > ZERO_THRESHOLD {
            let height = (moved.height + other.height) * force / mag + moved.height;
            moved.height = height.max(config.height_min);
        }
        moved
    }
}

/// Seconds as a `Duration` the way Go converts: truncated toward zero, clamped to
/// `0..=i64::MAX` nanoseconds (NaN is zero).
fn seconds_to_duration(secs: f64) -> Duration {
    let nanos = secs * 1.0e9;
    if nanos.is_nan() || nanos <= 0.0 {
        Duration::ZERO
    } else if nanos >= i64::MAX as f64 {
        Duration::from_nanos(i64::MAX as u64)
    } else {
        Duration::from_nanos(nanos as u64)
    }
}

fn check_compatible(ours: &Coordinate, theirs: &Coordinate) -> Result<()> {
    if ours.is_compatible_with(theirs) {
        Ok(())
    } else {
        Err(Error::Coordinate(format!(
            "dimensions aren't compatible ({} vs {})",
            ours.vec.len(),
            theirs.vec.len()
        )))
    }
}

fn magnitude(vec: &[f64]) -> f64 {
    vec.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn magnitude_of_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// The unit vector pointing at `a` from `b` and the distance between them. Coinciding
/// points get a random direction and distance 0; if even that is degenerate, the first axis.
fn unit_vector_at(a: &[f64], b: &[f64], rng: &mut impl Rng) -> (Vec<f64>, f64) {
    let mut dir: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mag = magnitude(&dir);
    if mag > ZERO_THRESHOLD {
        dir.iter_mut().for_each(|v| *v /= mag);
        return (dir, mag);
    }
    dir.iter_mut().for_each(|v| *v = rng.gen::<f64>() - 0.5);
    let mag = magnitude(&dir);
    if mag > ZERO_THRESHOLD {
        dir.iter_mut().for_each(|v| *v /= mag);
        return (dir, 0.0);
    }
    dir.iter_mut().for_each(|v| *v = 0.0);
    if let Some(first) = dir.first_mut() {
        *first = 1.0;
    }
    (dir, 0.0)
}

/// Counters of the client's self-repairs (Serf's `ClientStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// How often the coordinate went invalid and was reset to the origin
    /// (Serf reports it as `coordinate_resets`).
    pub resets: u64,
}

/// The local node's coordinate and the state that moves it (Serf's `coordinate.Client`).
#[derive(Debug, Clone)]
pub struct Client {
    config: CoordinateConfig,
    coord: Coordinate,
    origin: Coordinate,
    adjustment_index: usize,
    adjustment_samples: Vec<f64>,
    latency_samples: HashMap<String, VecDeque<f64>>,
    stats: ClientStats,
    rng: StdRng,
}

impl Client {
    /// A client at the origin. `seed` drives the random directions chosen when two
    /// coordinates coincide. Refuses zero or more than [`MAX_DIMENSIONS`] dimensions and a
    /// zero latency filter (on which Serf would panic).
    pub fn new(config: CoordinateConfig, seed: u64) -> Result<Self> {
        if config.dimensionality == 0 || config.dimensionality > MAX_DIMENSIONS {
            return Err(Error::Config(format!(
                "coordinate dimensionality must be 1..={MAX_DIMENSIONS}, not {}",
                config.dimensionality
            )));
        }
        if config.latency_filter_size == 0 {
            return Err(Error::Config(
                "coordinate latency filter size must be > 0".into(),
            ));
        }
        Ok(Self {
            coord: Coordinate::new(&config),
            origin: Coordinate::new(&config),
            adjustment_index: 0,
            adjustment_samples: vec![0.0; config.adjustment_window_size],
            latency_samples: HashMap::new(),
            stats: ClientStats::default(),
            rng: StdRng::seed_from_u64(seed),
            config,
        })
    }

    /// The tuning this client runs with.
    pub fn config(&self) -> &CoordinateConfig {
        &self.config
    }

    /// The current estimate of this node's coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        &self.coord
    }

    /// Forces the coordinate to a known state; refuses an invalid or incompatible one.
    pub fn set_coordinate(&mut self, coord: &Coordinate) -> Result<()> {
        self.check(coord)?;
        self.coord = coord.clone();
        Ok(())
    }

    /// Drops the RTT samples kept for `node` (call when it leaves or is reaped).
    pub fn forget_node(&mut self, node: &str) {
        self.latency_samples.remove(node);
    }

    /// Heap bytes of the per-peer latency filters (estimate from capacities).
    pub fn latency_filter_bytes(&self) -> usize {
        let per: usize = self
            .latency_samples
            .iter()
            .map(|(k, v)| k.capacity() + hearsay_swim::heap::deque(v))
            .sum();
        hearsay_swim::heap::hash_map(&self.latency_samples) + per
    }

    /// The client's counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The estimated RTT from this node to `other`.
    pub fn distance_to(&self, other: &Coordinate) -> Duration {
        self.coord.distance_to(other)
    }

    /// Folds in one observation: `node`, at coordinate `other`, answered a ping after
    /// `rtt`. Returns the updated coordinate. Refuses an invalid or incompatible `other`
    /// and an RTT over [`MAX_RTT`] without changing anything. A zero RTT is accepted, as
    /// Serf does for coarse clocks. If the arithmetic ever yields an invalid coordinate,
    /// the client starts over at the origin and counts a reset.
    pub fn update(&mut self, node: &str, other: &Coordinate, rtt: Duration) -> Result<Coordinate> {
        self.check(other)?;
        if rtt > MAX_RTT {
            return Err(Error::Coordinate(format!(
                "round trip time not in valid range, duration {rtt:?} is not a positive \
                 value less than {MAX_RTT:?}"
            )));
        }
        let rtt_secs = self.latency_filter(node, rtt.as_secs_f64());
        self.update_vivaldi(other, rtt_secs);
        self.update_adjustment(other, rtt_secs);
        self.update_gravity();
        if !self.coord.is_valid() {
            self.stats.resets += 1;
            self.coord = Coordinate::new(&self.config);
        }
        Ok(self.coord.clone())
    }

    fn check(&self, coord: &Coordinate) -> Result<()> {
        check_compatible(&self.coord, coord)?;
        if !coord.is_valid() {
            return Err(Error::Coordinate("coordinate is invalid".into()));
        }
        Ok(())
    }

    /// Adds a sample for `node` and returns the median of its last few samples, so a
    /// single slow ping never reaches Vivaldi.
    fn latency_filter(&mut self, node: &str, rtt_secs: f64) -> f64 {
        let size = self.config.latency_filter_size;
        let samples = self.latency_samples.entry(node.to_owned()).or_default();
        samples.push_back(rtt_secs);
        while samples.len() > size {
            samples.pop_front();
        }
        let mut sorted: Vec<f64> = samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    /// The Vivaldi step: move along the line to `other` in proportion to how wrong the
    /// current estimate is, weighted by the two nodes' relative confidence.
    fn update_vivaldi(&mut self, other: &Coordinate, rtt_secs: f64) {
        let cfg = &self.config;
        // Serf measures the current distance through a Duration, i.e. whole nanoseconds.
        let dist = self.coord.distance_to(other).as_secs_f64();
        let rtt_secs = rtt_secs.max(ZERO_THRESHOLD);
        let wrongness = (dist - rtt_secs).abs() / rtt_secs;

        let total_error = (self.coord.error + other.error).max(ZERO_THRESHOLD);
        let weight = self.coord.error / total_error;

        let error = cfg.vivaldi_ce * weight * wrongness
            + self.coord.error * (1.0 - cfg.vivaldi_ce * weight);
        self.coord.error = error.min(cfg.vivaldi_error_max);

        let force = cfg.vivaldi_cc * weight * (rtt_secs - dist);
        self.coord = self.coord.apply_force(cfg, force, other, &mut self.rng);
    }

    /// Records how far off the raw distance was and sets the adjustment to half the mean
    /// of the window (each side of a pair carries half).
    fn update_adjustment(&mut self, other: &Coordinate, rtt_secs: f64) {
        let window = self.config.adjustment_window_size;
        if window == 0 {
            return;
        }
        self.adjustment_samples[self.adjustment_index] =
            rtt_secs - self.coord.raw_distance_to(other);
        self.adjustment_index = (self.adjustment_index + 1) % window;
        let sum: f64 = self.adjustment_samples.iter().sum();
        self.coord.adjustment = sum / (2.0 * window as f64);
    }

    /// A pull toward the origin growing with the square of the distance, so the whole
    /// cluster's coordinates do not drift away together.
    fn update_gravity(&mut self) {
        let dist = self.origin.distance_to(&self.coord).as_secs_f64();
        let force = -(dist / self.config.gravity_rho).powi(2);
        self.coord = self
            .coord
            .apply_force(&self.config, force, &self.origin, &mut self.rng);
    }
}

/// Go field names in declaration order (the array form of a struct uses this order).
const FIELDS: [&str; 4] = ["Vec", "Error", "Adjustment", "Height"];

/// Writes a coordinate as go-msgpack writes the Go struct: a map with the keys sorted by
/// name (`Adjustment`, `Error`, `Height`, `Vec`), every float as a `0xcb` double.
pub fn encode_coordinate(w: &mut Writer, coord: &Coordinate) {
    w.map_len(4);
    w.str("Adjustment");
    w.float64(coord.adjustment);
    w.str("Error");
    w.float64(coord.error);
    w.str("Height");
    w.float64(coord.height);
    w.str("Vec");
    w.array_len(coord.vec.len());
    for v in &coord.vec {
        w.float64(*v);
    }
}

/// Reads a coordinate struct (map or array form; any numeric form for a float; nil as
/// zero; unknown keys skipped). A `Vec` longer than [`MAX_DIMENSIONS`] is refused. The
/// coordinate is not checked for validity: [`Client::update`] does that.
pub fn decode_coordinate(r: &mut Reader<'_>) -> Result<Coordinate> {
    let mut coord = Coordinate {
        vec: Vec::new(),
        error: 0.0,
        adjustment: 0.0,
        height: 0.0,
    };
    let mut too_long = None;
    let decoded = r.decode_struct("Coordinate", &FIELDS, |i, r| {
        match i {
            0 => {
                let n = r.array_len("Vec")?;
                if n > MAX_DIMENSIONS {
                    too_long = Some(n);
                    return Err(hearsay_swim::Error::Msgpack("Vec too long".into()));
                }
                coord.vec.clear();
                for _ in 0..n {
                    coord.vec.push(r.float_field("Vec")?);
                }
            }
            1 => coord.error = r.float_field("Error")?,
            2 => coord.adjustment = r.float_field("Adjustment")?,
            _ => coord.height = r.float_field("Height")?,
        }
        Ok(())
    });
    if let Some(n) = too_long {
        return Err(Error::Coordinate(format!(
            "coordinate has {n} dimensions, over the limit of {MAX_DIMENSIONS}"
        )));
    }
    decoded?;
    Ok(coord)
}

/// The ack payload Serf's ping delegate sends: the version byte, then the coordinate.
pub fn encode_ping_payload(coord: &Coordinate) -> Vec<u8> {
    let mut w = Writer::new(vec![PING_VERSION]);
    encode_coordinate(&mut w, coord);
    w.into_inner()
}

/// Reads a ping-ack payload. Serf ignores an empty payload (a peer with coordinates
/// disabled) before decoding; here it is an error the caller can ignore the same way.
/// Bytes after the coordinate are ignored, as go-msgpack's `Decode` ignores them.
pub fn decode_ping_payload(payload: &[u8]) -> Result<Coordinate> {
    let (&version, body) = payload
        .split_first()
        .ok_or_else(|| Error::Coordinate("empty ping payload".into()))?;
    if version != PING_VERSION {
        return Err(Error::Coordinate(format!(
            "unsupported ping version {version}"
        )));
    }
    decode_coordinate(&mut Reader::new(body))
}

/// Fuzz entry point for the ping-ack decoder: arbitrary bytes must never panic, and any
/// payload that decodes re-encodes to one that decodes to the same bits. Only built with the
/// `fuzzing` feature and in unit tests.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_ping_payload(data: &[u8]) {
    if let Ok(coord) = decode_ping_payload(data) {
        assert!(coord.vec.len() <= MAX_DIMENSIONS);
        let again =
            decode_ping_payload(&encode_ping_payload(&coord)).expect("our own payload decodes");
        assert_eq!(
            bits(&again),
            bits(&coord),
            "ping payload did not round-trip"
        );
    }
}

/// Every component as raw bits, so NaNs compare equal to themselves.
#[cfg(any(test, feature = "fuzzing"))]
fn bits(c: &Coordinate) -> Vec<u64> {
    let mut v: Vec<u64> = c.vec.iter().map(|x| x.to_bits()).collect();
    v.extend([c.error, c.adjustment, c.height].map(f64::to_bits));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn cfg3(height_min: f64) -> CoordinateConfig {
        CoordinateConfig {
            dimensionality: 3,
            height_min,
            ..CoordinateConfig::default()
        }
    }

    fn at(cfg: &CoordinateConfig, vec: &[f64]) -> Coordinate {
        Coordinate {
            vec: vec.to_vec(),
            ..Coordinate::new(cfg)
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1.0e-6
    }

    fn close_vec(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(*x, *y))
    }

    #[test]
    fn defaults_are_serfs() {
        let c = CoordinateConfig::default();
        assert_eq!(c.dimensionality, 8);
        assert_eq!(c.vivaldi_error_max, 1.5);
        assert_eq!((c.vivaldi_ce, c.vivaldi_cc), (0.25, 0.25));
        assert_eq!(c.adjustment_window_size, 20);
        assert_eq!(c.height_min, 10.0e-6);
        assert_eq!(c.latency_filter_size, 3);
        assert_eq!(c.gravity_rho, 150.0);
        let origin = Coordinate::new(&c);
        assert_eq!(origin.vec, vec![0.0; 8]);
        assert_eq!((origin.error, origin.adjustment), (1.5, 0.0));
        assert_eq!(origin.height, 10.0e-6);
    }

    #[test]
    fn every_component_is_checked_for_validity() {
        let base = Coordinate::new(&CoordinateConfig::default());
        assert!(base.is_valid());
        for i in 0..base.vec.len() + 3 {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                let mut c = base.clone();
                match i {
                    _ if i < c.vec.len() => c.vec[i] = bad,
                    _ if i == c.vec.len() => c.error = bad,
                    _ if i == c.vec.len() + 1 => c.adjustment = bad,
                    _ => c.height = bad,
                }
                assert!(!c.is_valid(), "component {i} = {bad}");
            }
        }
    }

    #[test]
    fn compatibility_is_about_dimensions() {
        let a = Coordinate::new(&cfg3(0.0));
        let b = at(&cfg3(0.0), &[1.0, 2.0, 3.0]);
        let alien = Coordinate::new(&CoordinateConfig::default());
        assert!(a.is_compatible_with(&b) && b.is_compatible_with(&a));
        assert!(!a.is_compatible_with(&alien) && !alien.is_compatible_with(&a));
        assert!(a.checked_distance_to(&alien).is_err());
        assert!(a.checked_distance_to(&b).is_ok());
    }

    #[test]
    fn distance_is_symmetric_and_includes_height_and_positive_adjustment() {
        let cfg = cfg3(0.0);
        let mut c1 = at(&cfg, &[-0.5, 1.3, 2.4]);
        let mut c2 = at(&cfg, &[1.2, -2.3, 3.4]);
        let base = 4.104875150354758;
        assert_eq!(c1.distance_to(&c1), Duration::ZERO);
        assert_eq!(c1.distance_to(&c2), c2.distance_to(&c1));
        assert!(close(c1.distance_to(&c2).as_secs_f64(), base));

        // A negative adjustment that would make the distance non-positive is ignored.
        c1.adjustment = -1.0e6;
        assert!(close(c1.distance_to(&c2).as_secs_f64(), base));
        c1.adjustment = 0.1;
        c2.adjustment = 0.2;
        assert!(close(c1.distance_to(&c2).as_secs_f64(), base + 0.3));
        c1.height = 0.7;
        c2.height = 0.1;
        assert!(close(c1.distance_to(&c2).as_secs_f64(), base + 0.3 + 0.8));
        assert!(close(c1.raw_distance_to(&c2), base + 0.8));
        assert_eq!(c1.distance_to(&c2), c2.distance_to(&c1));
    }

    #[test]
    fn distance_truncates_to_nanoseconds_and_clamps() {
        let cfg = cfg3(0.0);
        let origin = Coordinate::new(&cfg);
        let other = at(&cfg, &[0.0, 0.0, 12.345]);
        // Go: time.Duration(12.345 * 1e9).
        assert_eq!(
            origin.distance_to(&other),
            Duration::from_nanos((12.345f64 * 1.0e9) as u64)
        );
        let far = at(&cfg, &[1.0e300, 0.0, 0.0]);
        assert_eq!(
            origin.distance_to(&far),
            Duration::from_nanos(i64::MAX as u64)
        );
        let mut below = other.clone();
        below.height = -100.0;
        assert_eq!(origin.distance_to(&below), Duration::ZERO);
        let mut nan = other.clone();
        nan.height = f64::NAN;
        assert_eq!(origin.distance_to(&nan), Duration::ZERO);
    }

    #[test]
    fn force_moves_along_the_line_and_scales_height() {
        let mut cfg = cfg3(0.0);
        let origin = Coordinate::new(&cfg);
        let above = at(&cfg, &[0.0, 0.0, 2.9]);
        let c = origin.apply_force(&cfg, 5.3, &above, &mut rng());
        assert!(close_vec(&c.vec, &[0.0, 0.0, -5.3]));

        let right = at(&cfg, &[3.4, 0.0, -5.3]);
        let c = c.apply_force(&cfg, 2.0, &right, &mut rng());
        assert!(close_vec(&c.vec, &[-2.0, 0.0, -5.3]));

        // Coinciding points: a random direction, one unit away.
        let c = origin.apply_force(&cfg, 1.0, &origin, &mut rng());
        assert!(close(origin.distance_to(&c).as_secs_f64(), 1.0));

        cfg.height_min = 10.0e-6;
        let origin = Coordinate::new(&cfg);
        let c = origin.apply_force(&cfg, 5.3, &above, &mut rng());
        assert!(close_vec(&c.vec, &[0.0, 0.0, -5.3]));
        assert!(close(c.height, cfg.height_min + 5.3 * cfg.height_min / 2.9));
        let c = origin.apply_force(&cfg, -5.3, &above, &mut rng());
        assert!(close_vec(&c.vec, &[0.0, 0.0, 5.3]));
        assert_eq!(c.height, cfg.height_min);
    }

    #[test]
    fn random_direction_is_a_unit_vector_and_seeded() {
        let (u, mag) = unit_vector_at(&[1.0, 2.0, 3.0], &[0.5, 0.6, 0.7], &mut rng());
        assert!(close_vec(
            &u,
            &[0.18257418583505536, 0.511207720338155, 0.8398412548412546]
        ));
        assert!(close(
            mag,
            magnitude_of_difference(&[1.0, 2.0, 3.0], &[0.5, 0.6, 0.7])
        ));

        let (u1, mag) = unit_vector_at(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], &mut rng());
        assert!(close(magnitude(&u1), 1.0));
        assert_eq!(mag, 0.0);
        let (u2, _) = unit_vector_at(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], &mut rng());
        assert_eq!(u1, u2, "same seed, same direction");
        assert!(unit_vector_at(&[], &[], &mut rng()).0.is_empty());
    }

    #[test]
    fn client_rejects_bad_configs() {
        for dims in [0, MAX_DIMENSIONS + 1] {
            let cfg = CoordinateConfig {
                dimensionality: dims,
                ..CoordinateConfig::default()
            };
            assert!(matches!(Client::new(cfg, 1), Err(Error::Config(_))));
        }
        let cfg = CoordinateConfig {
            latency_filter_size: 0,
            ..CoordinateConfig::default()
        };
        assert!(Client::new(cfg, 1).is_err());
        let cfg = CoordinateConfig {
            dimensionality: 7,
            ..CoordinateConfig::default()
        };
        let client = Client::new(cfg.clone(), 1).unwrap();
        assert_eq!(client.coordinate(), &Coordinate::new(&cfg));
    }

    #[test]
    fn update_moves_away_when_rtt_is_longer_than_estimated() {
        let cfg = cfg3(10.0e-6);
        let mut client = Client::new(cfg.clone(), 1).unwrap();
        let other = at(&cfg, &[0.0, 0.0, 0.001]);
        let rtt = Duration::from_secs_f64(2.0 * 0.001);
        let c = client.update("node", &other, rtt).unwrap();
        assert!(c.vec[2] < 0.0, "{c:?}");
        assert_eq!(&c, client.coordinate());

        let mut forced = c.clone();
        forced.vec[2] = 99.0;
        client.set_coordinate(&forced).unwrap();
        assert_eq!(client.coordinate().vec[2], 99.0);
    }

    #[test]
    fn repeated_updates_converge_on_the_true_rtt() {
        let cfg = CoordinateConfig::default();
        let mut a = Client::new(cfg.clone(), 1).unwrap();
        let mut b = Client::new(cfg, 2).unwrap();
        let truth = Duration::from_millis(40);
        let before = a.distance_to(b.coordinate());
        for _ in 0..200 {
            let cb = b.coordinate().clone();
            a.update("b", &cb, truth).unwrap();
            let ca = a.coordinate().clone();
            b.update("a", &ca, truth).unwrap();
        }
        let est = a.distance_to(b.coordinate()).as_secs_f64();
        let err = (est - truth.as_secs_f64()).abs() / truth.as_secs_f64();
        assert!(err < 0.05, "estimate {est} vs 0.040 (before {before:?})");
        assert!(a.coordinate().error < 1.5);
    }

    #[test]
    fn invalid_rtts_and_coordinates_change_nothing() {
        let cfg = cfg3(10.0e-6);
        let mut client = Client::new(cfg.clone(), 1).unwrap();
        let other = at(&cfg, &[0.0, 0.0, 0.001]);
        let dist = client.distance_to(&other);
        for rtt in [
            Duration::from_secs(11),
            MAX_RTT + Duration::from_nanos(1),
            Duration::MAX,
        ] {
            let e = client.update("node", &other, rtt).unwrap_err();
            assert!(e.to_string().contains("round trip time"), "{e}");
            assert_eq!(client.distance_to(&other), dist);
        }
        // Exactly the limit and zero are fine.
        assert!(client.update("edge", &other, MAX_RTT).is_ok());
        assert!(client.update("zero", &other, Duration::ZERO).is_ok());

        let mut nan = Coordinate::new(&cfg);
        nan.vec[0] = f64::NAN;
        let before = client.coordinate().clone();
        let e = client
            .update("node", &nan, Duration::from_millis(250))
            .unwrap_err();
        assert!(e.to_string().contains("coordinate is invalid"), "{e}");
        let e = client.set_coordinate(&nan).unwrap_err();
        assert!(e.to_string().contains("coordinate is invalid"), "{e}");

        let alien = Coordinate::new(&CoordinateConfig::default());
        let e = client
            .update("node", &alien, Duration::from_millis(250))
            .unwrap_err();
        assert!(
            e.to_string().contains("dimensions aren't compatible"),
            "{e}"
        );
        assert!(client.set_coordinate(&alien).is_err());
        assert_eq!(client.coordinate(), &before);
        assert_eq!(client.stats().resets, 0);
    }

    #[test]
    fn a_poisoned_coordinate_is_reset_and_counted() {
        let cfg = cfg3(10.0e-6);
        let mut client = Client::new(cfg.clone(), 1).unwrap();
        client.coord.vec[0] = f64::NAN;
        let c = client
            .update("node", &Coordinate::new(&cfg), Duration::from_millis(250))
            .unwrap();
        assert!(c.is_valid());
        assert_eq!(c, Coordinate::new(&cfg));
        assert_eq!(client.stats(), ClientStats { resets: 1 });
    }

    #[test]
    fn latency_filter_is_a_moving_median_per_node() {
        let mut client = Client::new(CoordinateConfig::default(), 1).unwrap();
        let mut f = |node: &str, v: f64| client.latency_filter(node, v);
        assert!(close(f("alice", 0.201), 0.201));
        assert!(close(f("alice", 0.200), 0.201));
        assert!(close(f("alice", 0.207), 0.201));
        // The glitch is filtered out and never reaches Vivaldi.
        assert!(close(f("alice", 1.9), 0.207));
        assert!(close(f("alice", 0.203), 0.207));
        assert!(close(f("alice", 0.199), 0.203));
        assert!(close(f("alice", 0.211), 0.203));
        assert!(close(f("bob", 0.310), 0.310));
        client.forget_node("alice");
        assert!(close(client.latency_filter("alice", 0.888), 0.888));
        assert_eq!(client.latency_samples["bob"].len(), 1);
    }

    #[test]
    fn adjustment_is_half_the_mean_residual_over_the_window() {
        let cfg = CoordinateConfig {
            adjustment_window_size: 4,
            ..cfg3(10.0e-6)
        };
        let mut client = Client::new(cfg.clone(), 1).unwrap();
        let other = Coordinate::new(&cfg);
        client.update_adjustment(&other, 0.010);
        let residual = 0.010 - client.coord.raw_distance_to(&other);
        assert!(close(client.coord.adjustment, residual / 8.0));
        let disabled = CoordinateConfig {
            adjustment_window_size: 0,
            ..cfg
        };
        let mut client = Client::new(disabled, 1).unwrap();
        client
            .update("n", &other, Duration::from_millis(10))
            .unwrap();
        assert_eq!(client.coordinate().adjustment, 0.0);
    }

    #[test]
    fn same_seed_same_trajectory() {
        let run = |seed| {
            let cfg = CoordinateConfig::default();
            let mut c = Client::new(cfg.clone(), seed).unwrap();
            let peer = Coordinate::new(&cfg);
            for _ in 0..5 {
                c.update("p", &peer, Duration::from_millis(5)).unwrap();
            }
            c.coordinate().clone()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    /// What Serf's `AckPayload` sends for `Coordinate{Vec: [8 floats], Error: 1.5,
    /// Adjustment: 0, Height: 1e-5}`, spelled out byte by byte (and identical to what
    /// go-msgpack actually produced for it).
    fn go_payload() -> Vec<u8> {
        let hex = "01\
            84\
            aa 41646a7573746d656e74 cb 0000000000000000\
            a5 4572726f72 cb 3ff8000000000000\
            a6 486569676874 cb 3ee4f8b588e368f1\
            a3 566563 98\
            cb 3f50624dd2f1a9fc cb bf647ae147ae147b cb 3f8999999999999a cb bf9eb851eb851eb8\
            cb 3f40624dd2f1a9fc cb 3fb999999999999a cb bfb1eb851eb851ec cb 3f20624dd2f1a9fc";
        let digits: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A trajectory run through Serf's own `coordinate.Client` (Go 1.19, Debian's serf
    /// sources): start off the origin, then 200 updates against four fixed peers, none of
    /// them coinciding with us, so no random direction is ever drawn and the results must
    /// agree with Go's to rounding.
    #[test]
    fn trajectory_matches_serfs_client() {
        let cfg = cfg3(10.0e-6);
        let mut client = Client::new(cfg.clone(), 1).unwrap();
        client
            .set_coordinate(&at(&cfg, &[0.002, -0.001, 0.0005]))
            .unwrap();
        let peers: Vec<Coordinate> = (0..4)
            .map(|k| Coordinate {
                vec: vec![
                    0.01 * (k + 1) as f64,
                    -0.004 * k as f64,
                    0.003 * (k % 2) as f64,
                ],
                error: 0.2 + 0.1 * k as f64,
                adjustment: -0.0002 * k as f64,
                height: 0.0001 * (k + 1) as f64,
            })
            .collect();
        for step in 0..200u64 {
            let k = (step * 7 % 4) as usize;
            let rtt = 5_000_000 + (step * 7919) % 20_000_000 + k as u64 * 1_000_000;
            client
                .update(&format!("p{k}"), &peers[k], Duration::from_nanos(rtt))
                .unwrap();
        }
        let got = client.coordinate();
        let want = Coordinate {
            vec: vec![
                0.022063109155431738,
                -0.0069107036258551635,
                -0.0029151967549525077,
            ],
            error: 0.5927538490732739,
            adjustment: -0.002120413242843061,
            height: 4.5274229089725286e-05,
        };
        let near = |a: f64, b: f64| (a - b).abs() <= 1.0e-12 * b.abs().max(1.0e-3);
        assert!(
            got.vec.iter().zip(&want.vec).all(|(a, b)| near(*a, *b))
                && near(got.error, want.error)
                && near(got.adjustment, want.adjustment)
                && near(got.height, want.height),
            "{got:?} vs Go's {want:?}"
        );
        let go_nanos = [12_229_606u64, 4_832_694, 6_350_069, 17_285_600];
        for (p, want) in peers.iter().zip(go_nanos) {
            let d = client.distance_to(p).as_nanos() as u64;
            assert!(d.abs_diff(want) <= 1, "{d} vs Go's {want}");
        }
    }

    fn go_coordinate() -> Coordinate {
        Coordinate {
            vec: vec![0.001, -0.0025, 0.0125, -0.03, 0.0005, 0.1, -0.07, 0.000125],
            error: 1.5,
            adjustment: 0.0,
            height: 1e-5,
        }
    }

    #[test]
    fn a_payload_as_go_msgpack_writes_it_decodes() {
        assert_eq!(decode_ping_payload(&go_payload()), Ok(go_coordinate()));
    }

    #[test]
    fn encoding_matches_go_msgpack_byte_for_byte() {
        let bytes = encode_ping_payload(&go_coordinate());
        assert_eq!(bytes, go_payload());
        assert_eq!(bytes.len(), 1 + 1 + 11 + 9 + 6 + 9 + 7 + 9 + 4 + 1 + 8 * 9);
    }

    #[test]
    fn decoder_is_liberal_in_number_forms_and_shapes() {
        // Array form in declaration order, with float32, ints, nil and a trailing extra.
        let mut b = vec![PING_VERSION, 0x95, 0x92, 0xca];
        b.extend_from_slice(&0.5f32.to_bits().to_be_bytes());
        b.extend_from_slice(&[0xff, 0x01, 0xc0, 0xd0, 0x9c, 0xa1, b'x']);
        let c = decode_ping_payload(&b).unwrap();
        assert_eq!(c.vec, vec![0.5, -1.0]);
        assert_eq!((c.error, c.adjustment, c.height), (1.0, 0.0, -100.0));

        // Map form with an unknown key, a nil Vec and keys in another order.
        let mut w = Writer::new(vec![PING_VERSION]);
        w.map_len(3);
        w.str("Height");
        w.float64(0.25);
        w.str("Extra");
        w.str("ignored");
        w.str("Vec");
        w.nil();
        let c = decode_ping_payload(&w.into_inner()).unwrap();
        assert!(c.vec.is_empty());
        assert_eq!(c.height, 0.25);
    }

    #[test]
    fn decoder_refuses_what_it_must() {
        assert!(matches!(
            decode_ping_payload(&[]),
            Err(Error::Coordinate(_))
        ));
        let mut bad_version = go_payload();
        bad_version[0] = 2;
        assert!(matches!(
            decode_ping_payload(&bad_version),
            Err(Error::Coordinate(m)) if m.contains("version 2")
        ));

        let long = Coordinate {
            vec: vec![0.0; MAX_DIMENSIONS + 1],
            ..go_coordinate()
        };
        assert!(matches!(
            decode_ping_payload(&encode_ping_payload(&long)),
            Err(Error::Coordinate(m)) if m.contains("dimensions")
        ));
        let max = Coordinate {
            vec: vec![0.0; MAX_DIMENSIONS],
            ..go_coordinate()
        };
        assert_eq!(decode_ping_payload(&encode_ping_payload(&max)), Ok(max));

        // A huge declared Vec is refused before anything is allocated.
        let mut huge = vec![PING_VERSION, 0x81, 0xa3, b'V', b'e', b'c', 0xdd];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_ping_payload(&huge).is_err());

        // Strings where floats belong.
        let mut w = Writer::new(vec![PING_VERSION]);
        w.map_len(1);
        w.str("Error");
        w.str("1.5");
        assert!(decode_ping_payload(&w.into_inner()).is_err());

        let payload = go_payload();
        for cut in 1..payload.len() {
            assert!(
                decode_ping_payload(&payload[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn payload_round_trips(
            vec in proptest::collection::vec(any::<f64>(), 0..=MAX_DIMENSIONS),
            error in any::<f64>(),
            adjustment in any::<f64>(),
            height in any::<f64>(),
        ) {
            let c = Coordinate { vec, error, adjustment, height };
            let back = decode_ping_payload(&encode_ping_payload(&c)).unwrap();
            prop_assert_eq!(bits(&back), bits(&c));
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            fuzz_ping_payload(&bytes);
            let mut with_version = vec![PING_VERSION];
            with_version.extend_from_slice(&bytes);
            fuzz_ping_payload(&with_version);
        }

        /// Mutated real payloads reach deeper than random bytes: flipped, cut or inserted
        /// bytes inside the map, the keys and the floats.
        #[test]
        fn mutated_payloads_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
        ) {
            let mut p = go_payload();
            for (at, byte, kind) in edits {
                let at = at % (p.len() + 1);
                match kind {
                    0 if at < p.len() => p[at] = byte,
                    1 if at < p.len() => p.truncate(at.max(1)),
                    _ => p.insert(at, byte),
                }
            }
            fuzz_ping_payload(&p);
        }

        #[test]
        fn distance_is_symmetric(
            a in proptest::collection::vec(-1.0f64..1.0, 8),
            b in proptest::collection::vec(-1.0f64..1.0, 8),
            ha in 0.0f64..0.1, hb in 0.0f64..0.1,
            ja in -0.05f64..0.05, jb in -0.05f64..0.05,
        ) {
            let ca = Coordinate { vec: a, error: 1.0, adjustment: ja, height: ha };
            let cb = Coordinate { vec: b, error: 1.0, adjustment: jb, height: hb };
            prop_assert_eq!(ca.distance_to(&cb), cb.distance_to(&ca));
        }
    }
}

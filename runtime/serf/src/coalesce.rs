//! Serf's event coalescing, sans-io: member events are merged per node and user events per
//! name, then released together once the coalesce period since the first buffered event has
//! passed or no new event came for the quiescent period.
//!
//! Serf (the library) coalesces nothing unless both periods are set; the `serf agent` sets a
//! 3 s coalesce period and a 1 s quiescent period, for member and user events alike (the
//! test-only `AGENT_*` constants here). The caller reads no clock here: it passes `now` in, asks [`MemberCoalescer::poll_timeout`] when to
//! come back, and calls `handle_timeout` then.
//!
//! In Serf's pipeline the snapshotter sees events before either coalescer, and the user
//! coalescer sits in front of the member coalescer; each passes on what it does not coalesce.

use crate::clock::LamportTime;
use crate::event::{Member, MemberEvent, MemberEventKind, UserEvent};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// The agent's `CoalescePeriod` for member events.
#[cfg(test)]
const AGENT_COALESCE_PERIOD: Duration = Duration::from_secs(3);
/// The agent's `QuiescentPeriod` for member events.
#[cfg(test)]
const AGENT_QUIESCENT_PERIOD: Duration = Duration::from_secs(1);
/// The agent's `UserCoalescePeriod`.
#[cfg(test)]
const AGENT_USER_COALESCE_PERIOD: Duration = Duration::from_secs(3);
/// The agent's `UserQuiescentPeriod`.
#[cfg(test)]
const AGENT_USER_QUIESCENT_PERIOD: Duration = Duration::from_secs(1);

/// Serf coalesces only when both periods are non-zero (its library default is zero: off).
pub(crate) fn coalescing_enabled(coalesce_period: Duration, quiescent_period: Duration) -> bool {
    !coalesce_period.is_zero() && !quiescent_period.is_zero()
}

/// The two deadlines of Serf's `coalesceLoop`: the quantum starts with the first buffered event
/// and is not extended; the quiescent deadline moves with every event.
#[derive(Debug, Clone)]
struct Window {
    coalesce_period: Duration,
    quiescent_period: Duration,
    quantum_ends: Option<Instant>,
    quiet_ends: Option<Instant>,
}

impl Window {
    fn new(coalesce_period: Duration, quiescent_period: Duration) -> Self {
        Self {
            coalesce_period,
            quiescent_period,
            quantum_ends: None,
            quiet_ends: None,
        }
    }

    fn handle_event(&mut self, now: Instant) {
        self.quantum_ends.get_or_insert(now + self.coalesce_period);
        self.quiet_ends = Some(now + self.quiescent_period);
    }

    fn deadline(&self) -> Option<Instant> {
        match (self.quantum_ends, self.quiet_ends) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the window is over at `now`; if so it is closed, ready for the next event.
    fn take_expired(&mut self, now: Instant) -> bool {
        let expired = self.deadline().is_some_and(|d| now >= d);
        if expired {
            self.close();
        }
        expired
    }

    fn close(&mut self) {
        self.quantum_ends = None;
        self.quiet_ends = None;
    }
}

/// Merges member events per node: within a window only the latest event for each node counts
/// (a join then a leave of one node yields the leave), and an event identical to the last one
/// delivered for that node is dropped — for updates, identical means the same member data too,
/// so a real tag change always gets through. The flush emits one event per kind, kinds in
/// `MemberEventKind` order, members sorted by name.
#[derive(Debug, Clone)]
pub(crate) struct MemberCoalescer {
    window: Window,
    /// The latest event for each node in the current window.
    latest: BTreeMap<String, (MemberEventKind, Member)>,
    /// The last event delivered for each node, ever (as in Serf).
    delivered: HashMap<String, (MemberEventKind, Member)>,
}

impl MemberCoalescer {
    /// A coalescer with Serf's `CoalescePeriod` and `QuiescentPeriod`.
    pub(crate) fn new(coalesce_period: Duration, quiescent_period: Duration) -> Self {
        Self {
            window: Window::new(coalesce_period, quiescent_period),
            latest: BTreeMap::new(),
            delivered: HashMap::new(),
        }
    }

    /// A coalescer with the `serf agent` periods (3 s, 1 s).
    #[cfg(test)]
    fn agent_default() -> Self {
        Self::new(AGENT_COALESCE_PERIOD, AGENT_QUIESCENT_PERIOD)
    }

    /// Buffers a member event (every member kind is coalesced). Call [`Self::handle_timeout`]
    /// first if the deadline has passed, or the event joins the window that should have ended.
    pub(crate) fn handle_event(&mut self, now: Instant, event: MemberEvent) {
        self.window.handle_event(now);
        for member in event.members {
            self.latest
                .insert(member.name.clone(), (event.kind, member));
        }
    }

    /// When [`Self::handle_timeout`] should next be called, if anything is buffered.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.window.deadline()
    }

    /// The coalesced events, once the window is over at `now`; nothing before.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<MemberEvent> {
        if self.window.take_expired(now) {
            self.drain()
        } else {
            Vec::new()
        }
    }

    /// Releases everything buffered now, as Serf does at shutdown.
    #[cfg(test)]
    fn flush(&mut self) -> Vec<MemberEvent> {
        self.window.close();
        self.drain()
    }

    /// How many nodes have an event buffered.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.latest.len()
    }

    fn drain(&mut self) -> Vec<MemberEvent> {
        let mut by_kind: BTreeMap<MemberEventKind, Vec<Member>> = BTreeMap::new();
        for (name, (kind, member)) in std::mem::take(&mut self.latest) {
            if self.already_delivered(&name, kind, &member) {
                continue;
            }
            self.delivered.insert(name, (kind, member.clone()));
            by_kind.entry(kind).or_default().push(member);
        }
        by_kind
            .into_iter()
            .map(|(kind, members)| MemberEvent { kind, members })
            .collect()
    }

    fn already_delivered(&self, name: &str, kind: MemberEventKind, member: &Member) -> bool {
        match self.delivered.get(name) {
            Some((last_kind, _)) if *last_kind != kind => false,
            Some((_, last)) => kind != MemberEventKind::Update || last == member,
            None => false,
        }
    }
}

/// Coalesces user events sent with `coalesce = true`: per event name only the events with the
/// newest Lamport time are kept (all of them, if several share it). Others pass straight
/// through. The flush emits names in sorted order, each name's events in arrival order.
#[derive(Debug, Clone)]
pub(crate) struct UserCoalescer {
    window: Window,
    latest: BTreeMap<String, (LamportTime, Vec<UserEvent>)>,
}

impl UserCoalescer {
    /// A coalescer with Serf's `UserCoalescePeriod` and `UserQuiescentPeriod`.
    pub(crate) fn new(coalesce_period: Duration, quiescent_period: Duration) -> Self {
        Self {
            window: Window::new(coalesce_period, quiescent_period),
            latest: BTreeMap::new(),
        }
    }

    /// A coalescer with the `serf agent` periods (3 s, 1 s).
    #[cfg(test)]
    fn agent_default() -> Self {
        Self::new(AGENT_USER_COALESCE_PERIOD, AGENT_USER_QUIESCENT_PERIOD)
    }

    /// Buffers a coalescing user event, or hands back one that is not to be coalesced (to be
    /// delivered now; it does not start or extend the window). As with members, call
    /// [`Self::handle_timeout`] first if the deadline has passed.
    pub(crate) fn handle_event(&mut self, now: Instant, event: UserEvent) -> Option<UserEvent> {
        if !event.coalesce {
            return Some(event);
        }
        self.window.handle_event(now);
        match self.latest.get_mut(&event.name) {
            Some((ltime, events)) if *ltime == event.ltime => events.push(event),
            Some((ltime, _)) if *ltime > event.ltime => {}
            _ => {
                self.latest
                    .insert(event.name.clone(), (event.ltime, vec![event]));
            }
        }
        None
    }

    /// When [`Self::handle_timeout`] should next be called, if anything is buffered.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.window.deadline()
    }

    /// The coalesced events, once the window is over at `now`; nothing before.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<UserEvent> {
        if self.window.take_expired(now) {
            self.drain()
        } else {
            Vec::new()
        }
    }

    /// Releases everything buffered now, as Serf does at shutdown.
    #[cfg(test)]
    fn flush(&mut self) -> Vec<UserEvent> {
        self.window.close();
        self.drain()
    }

    /// How many events are buffered.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.latest.values().map(|(_, events)| events.len()).sum()
    }

    fn drain(&mut self) -> Vec<UserEvent> {
        std::mem::take(&mut self.latest)
            .into_values()
            .flat_map(|(_, events)| events)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MemberStatus;

    const MS: Duration = Duration::from_millis(1);

    fn member(name: &str, role: &str) -> Member {
        let mut tags = BTreeMap::new();
        if !role.is_empty() {
            tags.insert("role".to_owned(), role.to_owned());
        }
        Member {
            name: name.to_owned(),
            addr: "10.0.0.1:7946".parse().unwrap(),
            tags,
            status: MemberStatus::Alive,
            vsn: [1, 5, 2, 2, 5, 4],
        }
    }

    fn me(kind: MemberEventKind, names: &[&str]) -> MemberEvent {
        MemberEvent {
            kind,
            members: names.iter().map(|n| member(n, "")).collect(),
        }
    }

    fn update(name: &str, role: &str) -> MemberEvent {
        MemberEvent {
            kind: MemberEventKind::Update,
            members: vec![member(name, role)],
        }
    }

    fn names(e: &MemberEvent) -> Vec<&str> {
        e.members.iter().map(|m| m.name.as_str()).collect()
    }

    fn ue(name: &str, ltime: LamportTime, payload: &str, coalesce: bool) -> UserEvent {
        UserEvent {
            ltime,
            name: name.to_owned(),
            payload: payload.as_bytes().to_vec(),
            coalesce,
        }
    }

    /// Runs the coalescer to its deadline and returns what it flushes.
    fn settle(c: &mut MemberCoalescer) -> Vec<MemberEvent> {
        match c.poll_timeout() {
            Some(t) => c.handle_timeout(t),
            None => Vec::new(),
        }
    }

    #[test]
    fn agent_defaults_and_enabling() {
        assert_eq!(AGENT_COALESCE_PERIOD, Duration::from_secs(3));
        assert_eq!(AGENT_QUIESCENT_PERIOD, Duration::from_secs(1));
        assert_eq!(AGENT_USER_COALESCE_PERIOD, Duration::from_secs(3));
        assert_eq!(AGENT_USER_QUIESCENT_PERIOD, Duration::from_secs(1));
        assert!(coalescing_enabled(
            AGENT_COALESCE_PERIOD,
            AGENT_QUIESCENT_PERIOD
        ));
        assert!(!coalescing_enabled(Duration::ZERO, AGENT_QUIESCENT_PERIOD));
        assert!(!coalescing_enabled(AGENT_COALESCE_PERIOD, Duration::ZERO));
    }

    #[test]
    fn latest_event_per_member_wins_grouped_by_kind() {
        // Serf's TestMemberEventCoalesce_Basic.
        let t0 = Instant::now();
        let mut c = MemberCoalescer::new(5 * MS, 5 * MS);
        c.handle_event(t0, me(MemberEventKind::Join, &["foo"]));
        c.handle_event(t0, me(MemberEventKind::Leave, &["foo"]));
        c.handle_event(t0, me(MemberEventKind::Leave, &["bar"]));
        c.handle_event(t0, update("zip", "foo"));
        c.handle_event(t0, update("zip", "bar"));
        c.handle_event(t0, me(MemberEventKind::Reap, &["dead"]));
        assert_eq!(c.pending(), 4);
        assert!(c.handle_timeout(t0 + 4 * MS).is_empty());
        let out = c.handle_timeout(t0 + 5 * MS);
        let kinds: Vec<_> = out.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                MemberEventKind::Leave,
                MemberEventKind::Update,
                MemberEventKind::Reap
            ]
        );
        assert_eq!(names(&out[0]), ["bar", "foo"]);
        assert_eq!(names(&out[1]), ["zip"]);
        assert_eq!(out[1].members[0].tags["role"], "bar");
        assert_eq!(names(&out[2]), ["dead"]);
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn members_of_one_event_keep_their_own_data() {
        // Go 1.12 builds of Serf alias the loop variable here; each member must stay itself.
        let t0 = Instant::now();
        let mut c = MemberCoalescer::new(5 * MS, 5 * MS);
        let mut event = me(MemberEventKind::Join, &["a", "b", "c"]);
        for (i, m) in event.members.iter_mut().enumerate() {
            m.addr = format!("10.0.0.{}:7946", i + 1).parse().unwrap();
        }
        c.handle_event(t0, event.clone());
        assert_eq!(settle(&mut c), vec![event]);
    }

    #[test]
    fn a_repeat_of_the_last_delivered_event_is_dropped() {
        let t0 = Instant::now();
        let mut c = MemberCoalescer::new(5 * MS, 5 * MS);
        c.handle_event(t0, me(MemberEventKind::Join, &["a", "b"]));
        assert_eq!(settle(&mut c).len(), 1);
        // a joins again, b fails: only b's failure is news.
        c.handle_event(t0 + 10 * MS, me(MemberEventKind::Join, &["a"]));
        c.handle_event(t0 + 10 * MS, me(MemberEventKind::Failed, &["b"]));
        let out = settle(&mut c);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, MemberEventKind::Failed);
        assert_eq!(names(&out[0]), ["b"]);
        // A flap inside one window that ends where it began delivers nothing.
        c.handle_event(t0 + 20 * MS, me(MemberEventKind::Join, &["b"]));
        c.handle_event(t0 + 21 * MS, me(MemberEventKind::Failed, &["b"]));
        assert!(settle(&mut c).is_empty());
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn a_second_update_gets_through_an_identical_one_does_not() {
        // Serf's TestMemberEventCoalesce_TagUpdate, plus upstream's identical-update rule.
        let t0 = Instant::now();
        let mut c = MemberCoalescer::new(5 * MS, 5 * MS);
        c.handle_event(t0, update("foo", "foo"));
        let out = settle(&mut c);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, MemberEventKind::Update);
        c.handle_event(t0 + 10 * MS, update("foo", "bar"));
        let out = settle(&mut c);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].members[0].tags["role"], "bar");
        c.handle_event(t0 + 20 * MS, update("foo", "bar"));
        assert!(settle(&mut c).is_empty());
        // An update of another node does not bring back foo's old one.
        c.handle_event(t0 + 30 * MS, update("zap", "x"));
        let out = settle(&mut c);
        assert_eq!(out.len(), 1);
        assert_eq!(names(&out[0]), ["zap"]);
    }

    #[test]
    fn the_coalesce_period_caps_the_delay() {
        // Serf's TestCoalescer_basic: short quantum, long quiescence.
        let t0 = Instant::now();
        let mut c = MemberCoalescer::new(5 * MS, Duration::from_secs(1));
        c.handle_event(t0, me(MemberEventKind::Join, &["a"]));
        c.handle_event(t0 + 3 * MS, me(MemberEventKind::Join, &["b"]));
        c.handle_event(t0 + 4 * MS, me(MemberEventKind::Join, &["c"]));
        assert_eq!(c.poll_timeout(), Some(t0 + 5 * MS));
        let out = c.handle_timeout(t0 + 5 * MS);
        assert_eq!(names(&out[0]), ["a", "b", "c"]);
    }

    #[test]
    fn quiescence_releases_early() {
        // Serf's TestCoalescer_quiescent: long quantum, short quiescence.
        let t0 = Instant::now();
        let mut c = MemberCoalescer::new(Duration::from_secs(10), 10 * MS);
        c.handle_event(t0, me(MemberEventKind::Join, &["a"]));
        c.handle_event(t0 + 8 * MS, me(MemberEventKind::Join, &["b"]));
        assert_eq!(c.poll_timeout(), Some(t0 + 18 * MS));
        assert!(c.handle_timeout(t0 + 17 * MS).is_empty());
        c.handle_event(t0 + 17 * MS, me(MemberEventKind::Join, &["c"]));
        assert_eq!(c.poll_timeout(), Some(t0 + 27 * MS));
        let out = c.handle_timeout(t0 + 27 * MS);
        assert_eq!(names(&out[0]), ["a", "b", "c"]);
    }

    #[test]
    fn a_steady_trickle_is_released_every_coalesce_period() {
        let t0 = Instant::now();
        let mut c = MemberCoalescer::agent_default();
        let mut released = Vec::new();
        for i in 0..10u32 {
            let now = t0 + Duration::from_millis(500) * i;
            released.extend(c.handle_timeout(now).into_iter().map(|e| (now, e)));
            c.handle_event(now, me(MemberEventKind::Join, &[&format!("n{i}")]));
        }
        // Quiescence (1 s) never comes; the 3 s quantum does, at 3 s after the first event.
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].0, t0 + Duration::from_secs(3));
        assert_eq!(released[0].1.members.len(), 6);
        // The next window started with the event at 3 s.
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(5500)));
        assert_eq!(c.flush()[0].members.len(), 4);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn user_events_keep_only_the_newest_ltime_per_name() {
        // Serf's TestUserEventCoalesce_Basic.
        let t0 = Instant::now();
        let mut c = UserCoalescer::new(5 * MS, 5 * MS);
        for e in [
            ue("foo", 1, "", true),
            ue("foo", 2, "", true),
            ue("bar", 2, "test1", true),
            ue("bar", 2, "test2", true),
            ue("bar", 1, "old", true),
        ] {
            assert_eq!(c.handle_event(t0, e), None);
        }
        assert_eq!(c.pending(), 3);
        let out = c.handle_timeout(t0 + 5 * MS);
        assert_eq!(
            out,
            vec![
                ue("bar", 2, "test1", true),
                ue("bar", 2, "test2", true),
                ue("foo", 2, "", true),
            ]
        );
        assert_eq!(c.pending(), 0);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn a_newer_user_event_replaces_the_older_ones() {
        let t0 = Instant::now();
        let mut c = UserCoalescer::agent_default();
        c.handle_event(t0, ue("deploy", 5, "a", true));
        c.handle_event(t0, ue("deploy", 5, "b", true));
        c.handle_event(t0, ue("deploy", 6, "c", true));
        assert_eq!(c.flush(), vec![ue("deploy", 6, "c", true)]);
        // Each window starts afresh: an older time is delivered again after a flush.
        c.handle_event(t0 + Duration::from_secs(5), ue("deploy", 4, "d", true));
        assert_eq!(
            c.handle_timeout(t0 + Duration::from_secs(6)),
            vec![ue("deploy", 4, "d", true)]
        );
    }

    #[test]
    fn uncoalesced_user_events_pass_straight_through() {
        // Serf's TestUserEventCoalesce_passThrough and TestCoalescer_passThrough.
        let t0 = Instant::now();
        let mut c = UserCoalescer::new(Duration::from_secs(1), Duration::from_secs(1));
        let e = ue("test", 1, "foo", false);
        assert_eq!(c.handle_event(t0, e.clone()), Some(e));
        assert_eq!(c.poll_timeout(), None, "a passthrough starts no window");
        assert_eq!(c.pending(), 0);
        c.handle_event(t0, ue("test", 1, "bar", true));
        let later = t0 + Duration::from_millis(900);
        assert!(c.handle_event(later, ue("x", 1, "", false)).is_some());
        assert_eq!(
            c.poll_timeout(),
            Some(t0 + Duration::from_secs(1)),
            "a passthrough does not extend the window"
        );
    }
}

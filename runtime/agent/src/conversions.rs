//! The one place that knows both the protocol types (`hearsay_serf::event`) and the handler
//! contract's types (`hearsay_host`): Serf events and members become the events and members a
//! WebAssembly handler sees, and every event is classified for Serf's handler filters.
//!
//! Everything here is a pure function, so it is tested without a cluster.

use std::time::Duration;

use hearsay_host as host;
use hearsay_serf::coordinate::Coordinate;
use hearsay_serf::event as serf;

use crate::filter::EventKind;

/// Serf's member status as a handler sees it.
pub(crate) fn member_status(status: serf::MemberStatus) -> host::MemberStatus {
    match status {
        serf::MemberStatus::None => host::MemberStatus::None,
        serf::MemberStatus::Alive => host::MemberStatus::Alive,
        serf::MemberStatus::Leaving => host::MemberStatus::Leaving,
        serf::MemberStatus::Left => host::MemberStatus::Left,
        serf::MemberStatus::Failed => host::MemberStatus::Failed,
    }
}

/// A Serf member as a handler sees it, with the estimated round-trip time when known.
pub(crate) fn member(m: &serf::Member, rtt: Option<Duration>) -> host::Member {
    host::Member {
        name: m.name.clone(),
        addr: m.addr.ip(),
        port: m.addr.port(),
        tags: m.tags.clone(),
        status: member_status(m.status),
        rtt,
    }
}

/// The estimated round-trip time between two network coordinates; `None` when either is
/// unknown, or they are not comparable (different dimensionality, or invalid values).
pub(crate) fn rtt(local: Option<&Coordinate>, other: Option<&Coordinate>) -> Option<Duration> {
    let (a, b) = (local?, other?);
    if !a.is_valid() || !b.is_valid() || !a.is_compatible_with(b) {
        return None;
    }
    a.checked_distance_to(b).ok()
}

/// The filter kind and name of an event a handler or an RPC `stream` can be given (member
/// events, user events, queries); `None` for the agent's own bookkeeping events (query
/// results, joins, ...).
pub(crate) fn kind(ev: &serf::Event) -> Option<(EventKind, &str)> {
    use serf::MemberEventKind as M;
    Some(match ev {
        serf::Event::Member(me) => (
            match me.kind {
                M::Join => EventKind::MemberJoin,
                M::Leave => EventKind::MemberLeave,
                M::Failed => EventKind::MemberFailed,
                M::Update => EventKind::MemberUpdate,
                M::Reap => EventKind::MemberReap,
            },
            "",
        ),
        serf::Event::User(u) => (EventKind::User, u.name.as_str()),
        serf::Event::Query(q) => (EventKind::Query, q.name.as_str()),
        _ => return None,
    })
}

/// A Serf query as a handler sees it.
pub(crate) fn query(q: &serf::QueryEvent) -> host::Query {
    host::Query {
        id: q.id,
        name: q.name.clone(),
        payload: q.payload.clone(),
        ltime: q.ltime,
        source_node: q.source_node.clone(),
    }
}

/// A Serf event as a handler sees it; `None` for events handlers are never given. `rtt` gives
/// the estimated round-trip time to a member by name, when known.
pub(crate) fn event(
    ev: &serf::Event,
    rtt: impl Fn(&str) -> Option<Duration>,
) -> Option<host::Event> {
    use serf::MemberEventKind as M;
    Some(match ev {
        serf::Event::Member(me) => {
            let members = me.members.iter().map(|m| member(m, rtt(&m.name))).collect();
            match me.kind {
                M::Join => host::Event::MemberJoin(members),
                M::Leave => host::Event::MemberLeave(members),
                M::Failed => host::Event::MemberFailed(members),
                M::Update => host::Event::MemberUpdate(members),
                M::Reap => host::Event::MemberReap(members),
            }
        }
        serf::Event::User(u) => host::Event::User(host::UserEvent {
            name: u.name.clone(),
            payload: u.payload.clone(),
            ltime: u.ltime,
            coalesce: u.coalesce,
        }),
        serf::Event::Query(q) => host::Event::Query(query(q)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Instant;

    fn serf_member(name: &str, status: serf::MemberStatus) -> serf::Member {
        serf::Member {
            name: name.into(),
            addr: "10.1.2.3:7946".parse().unwrap(),
            tags: BTreeMap::from([("role".to_owned(), "web".to_owned())]),
            status,
            vsn: [1, 5, 5, 2, 5, 5],
        }
    }

    fn coord(vec: Vec<f64>, height: f64) -> Coordinate {
        Coordinate {
            vec,
            error: 1.5,
            adjustment: 0.0,
            height,
        }
    }

    #[test]
    fn members_keep_name_address_tags_status_and_rtt() {
        let m = member(
            &serf_member("a", serf::MemberStatus::Failed),
            Some(Duration::from_millis(3)),
        );
        assert_eq!(m.name, "a");
        assert_eq!(m.addr.to_string(), "10.1.2.3");
        assert_eq!(m.port, 7946);
        assert_eq!(m.tags.get("role").map(String::as_str), Some("web"));
        assert_eq!(m.status, host::MemberStatus::Failed);
        assert_eq!(m.rtt, Some(Duration::from_millis(3)));
        for (s, h) in [
            (serf::MemberStatus::None, host::MemberStatus::None),
            (serf::MemberStatus::Alive, host::MemberStatus::Alive),
            (serf::MemberStatus::Leaving, host::MemberStatus::Leaving),
            (serf::MemberStatus::Left, host::MemberStatus::Left),
            (serf::MemberStatus::Failed, host::MemberStatus::Failed),
        ] {
            assert_eq!(member_status(s), h);
        }
    }

    #[test]
    fn rtt_needs_two_comparable_coordinates() {
        // Euclidean distance 5 (3-4-5) plus both heights: 5.0 + 0.25 + 0.25 = 5.5 s.
        let a = coord(vec![0.0, 0.0], 0.25);
        let b = coord(vec![3.0, 4.0], 0.25);
        assert_eq!(rtt(Some(&a), Some(&b)), Some(Duration::from_millis(5500)));
        assert_eq!(rtt(None, Some(&b)), None);
        assert_eq!(rtt(Some(&a), None), None);
        let other_dims = coord(vec![1.0, 2.0, 3.0], 0.0);
        assert_eq!(rtt(Some(&a), Some(&other_dims)), None);
        let bad = coord(vec![f64::NAN, 0.0], 0.0);
        assert_eq!(rtt(Some(&a), Some(&bad)), None);
    }

    #[test]
    fn events_convert_and_classify() {
        let join = serf::Event::Member(serf::MemberEvent {
            kind: serf::MemberEventKind::Join,
            members: vec![
                serf_member("a", serf::MemberStatus::Alive),
                serf_member("b", serf::MemberStatus::Alive),
            ],
        });
        assert_eq!(kind(&join), Some((EventKind::MemberJoin, "")));
        let rtts = |n: &str| (n == "b").then_some(Duration::from_micros(800));
        let Some(host::Event::MemberJoin(ms)) = event(&join, rtts) else {
            panic!("expected a member-join");
        };
        assert_eq!(ms.len(), 2);
        assert_eq!(
            (ms[0].rtt, ms[1].rtt),
            (None, Some(Duration::from_micros(800)))
        );

        for (k, want) in [
            (serf::MemberEventKind::Leave, EventKind::MemberLeave),
            (serf::MemberEventKind::Failed, EventKind::MemberFailed),
            (serf::MemberEventKind::Update, EventKind::MemberUpdate),
            (serf::MemberEventKind::Reap, EventKind::MemberReap),
        ] {
            let ev = serf::Event::Member(serf::MemberEvent {
                kind: k,
                members: vec![],
            });
            assert_eq!(kind(&ev), Some((want, "")));
            let converted = event(&ev, |_| None).unwrap();
            assert_eq!(converted.describe(), want.as_str());
        }

        let user = serf::Event::User(serf::UserEvent {
            ltime: 9,
            name: "deploy".into(),
            payload: b"v2".to_vec(),
            coalesce: true,
        });
        assert_eq!(kind(&user), Some((EventKind::User, "deploy")));
        assert_eq!(
            event(&user, |_| None),
            Some(host::Event::User(host::UserEvent {
                name: "deploy".into(),
                payload: b"v2".to_vec(),
                ltime: 9,
                coalesce: true,
            }))
        );

        let q = serf::Event::Query(serf::QueryEvent {
            ltime: 12,
            id: 77,
            name: "load".into(),
            payload: b"x".to_vec(),
            source_node: "asker".into(),
            deadline: Instant::now(),
        });
        assert_eq!(kind(&q), Some((EventKind::Query, "load")));
        assert_eq!(
            event(&q, |_| None),
            Some(host::Event::Query(host::Query {
                id: 77,
                name: "load".into(),
                payload: b"x".to_vec(),
                ltime: 12,
                source_node: "asker".into(),
            }))
        );

        let bookkeeping = serf::Event::LeaveComplete;
        assert_eq!(kind(&bookkeeping), None);
        assert_eq!(event(&bookkeeping, |_| None), None);
    }
}

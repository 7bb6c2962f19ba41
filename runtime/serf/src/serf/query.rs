//! Queries (`query.go`): starting one, filters, receiving and acking, answering and relaying
//! responses, collecting them at the originator, and deadlines.

use super::{Incoming, Outgoing, QueryParams, Serf, INTERNAL_QUERY_PREFIX};
use crate::clock::LamportTime;
use crate::error::{Error, Result};
use crate::event::{Event, MemberStatus, QueryEvent, QueryId};
use crate::messages::{
    self, Filter, Message, Query, QueryResponse, QUERY_FLAG_ACK, QUERY_FLAG_NO_BROADCAST,
};
use hearsay_swim::wire::{ip_bytes, socket_addr};
use rand::Rng;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, info, warn};

impl Serf {
    /// Starts a query; results arrive as [`Event::QueryAck`], [`Event::QueryResponse`] and
    /// finally [`Event::QueryDone`].
    pub fn query(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: QueryParams,
    ) -> Result<QueryId> {
        if self.config.protocol_version < 4 {
            return Err(Error::ProtocolTooOld("queries", 4));
        }
        let timeout = if params.timeout.is_zero() {
            self.default_query_timeout()
        } else {
            params.timeout
        };
        let mut filters = Vec::new();
        if !params.filter_nodes.is_empty() {
            filters.push(Filter::Nodes(params.filter_nodes.clone()));
        }
        for (tag, expr) in &params.filter_tags {
            regex::Regex::new(expr).map_err(|e| Error::BadRegex {
                expr: expr.clone(),
                reason: e.to_string(),
            })?;
            filters.push(Filter::Tag {
                tag: tag.clone(),
                expr: expr.clone(),
            });
        }
        let local = self.swim.local();
        let q = Query {
            ltime: self.query_clock.time(),
            id: self.rng.gen::<u32>() >> 1,
            addr: ip_bytes(local.addr.ip()),
            port: local.addr.port(),
            source_node: local.name.clone(),
            filters,
            flags: if params.request_ack {
                QUERY_FLAG_ACK
            } else {
                0
            },
            relay_factor: params.relay_factor,
            timeout,
            name: name.to_owned(),
            payload: payload.to_vec(),
        };
        let raw = messages::encode(&Message::Query(q.clone()));
        if raw.len() > self.config.query_size_limit {
            return Err(Error::QueryTooLarge {
                size: raw.len(),
                limit: self.config.query_size_limit,
            });
        }
        let expected = params
            .finish_early
            .then(|| self.matching_members(&q.filters));
        let qid = QueryId {
            ltime: q.ltime,
            id: q.id,
        };
        self.outgoing.insert(
            q.ltime,
            (
                q.id,
                Outgoing {
                    params_finish_early: params.finish_early,
                    request_ack: params.request_ack,
                    deadline: now + timeout,
                    expected,
                    acks: HashSet::new(),
                    responses: HashSet::new(),
                    external: HashSet::new(),
                },
            ),
        );
        self.query_clock.increment();
        self.handle_query(now, q);
        self.swim.queue_user_broadcast(raw, None);
        self.state_dirty = true;
        self.pump(now);
        Ok(qid)
    }

    /// Answers a query delivered as [`Event::Query`] (once per query, before its deadline).
    pub fn respond(
        &mut self,
        now: Instant,
        ltime: LamportTime,
        id: u32,
        payload: &[u8],
    ) -> Result<()> {
        let resp = QueryResponse {
            ltime,
            id,
            from: self.name().to_owned(),
            flags: 0,
            payload: payload.to_vec(),
        };
        let r = self.send_response(now, resp);
        self.pump(now);
        r
    }

    /// hearsay extension: claims this node's one answer to a query delivered as
    /// [`Event::Query`] for a response that travels outside Serf's UDP path (a large response
    /// streamed over QUIC). After this, [`Serf::respond`] for the same query fails with
    /// [`Error::AlreadyResponded`], as after a normal answer. Returns the query's relay
    /// factor, so the out-of-band response can be relayed as Serf relays a UDP one.
    pub fn claim_response(&mut self, now: Instant, ltime: LamportTime, id: u32) -> Result<u8> {
        let inq = self
            .incoming
            .get_mut(&(ltime, id))
            .filter(|i| i.deadline > now)
            .ok_or(Error::PastDeadline)?;
        if inq.responded {
            return Err(Error::AlreadyResponded);
        }
        inq.responded = true;
        Ok(inq.relay_factor)
    }

    /// hearsay extension, originator side: a response to our query `ltime`/`id` from `from`
    /// is arriving outside the UDP path. Counts it as that node's one response (a later UDP
    /// response from it is ignored, as a duplicate would be) and holds back finishing early
    /// until [`Serf::handle_external_response_done`]. Fails when the query is not running
    /// (unknown or past its deadline) or `from` has already answered.
    pub fn handle_external_response(
        &mut self,
        ltime: LamportTime,
        id: u32,
        from: &str,
    ) -> Result<QueryId> {
        let q = match self.outgoing.get_mut(&ltime) {
            Some((qid, q)) if *qid == id => q,
            _ => return Err(Error::PastDeadline),
        };
        if !q.responses.insert(from.to_owned()) {
            return Err(Error::AlreadyResponded);
        }
        q.external.insert(from.to_owned());
        Ok(QueryId { ltime, id })
    }

    /// hearsay extension, originator side: the out-of-band response from `from` ended (whole
    /// or failed); the query may now finish early.
    pub fn handle_external_response_done(&mut self, now: Instant, query: QueryId, from: &str) {
        if let Some((id, q)) = self.outgoing.get_mut(&query.ltime) {
            if *id == query.id {
                q.external.remove(from);
                self.finish_if_answered(query);
            }
        }
        self.pump(now);
    }

    fn should_process(&mut self, now: Instant, filters: &[Filter]) -> bool {
        for f in filters {
            match f {
                Filter::Nodes(nodes) => {
                    if !nodes.iter().any(|n| n == self.name()) {
                        return false;
                    }
                }
                Filter::Tag { tag, expr } => {
                    let value = self.config.tags.get(tag).map(String::as_str).unwrap_or("");
                    match regex::Regex::new(expr) {
                        Ok(re) if re.is_match(value) => {}
                        Ok(_) => return false,
                        Err(e) => {
                            if self.warn_allowed(now, "query-filter") {
                                warn!(node = %self.name(), expr = %expr, error = %e, "serf: failed to compile filter regex");
                            }
                            return false;
                        }
                    }
                }
                Filter::Undecodable(_) => {
                    if self.warn_allowed(now, "query-filter") {
                        warn!(node = %self.name(), "serf: query has an undecodable filter");
                    }
                    return false;
                }
            }
        }
        true
    }

    /// Alive members that pass `filters`, as the originator sees their tags.
    fn matching_members(&self, filters: &[Filter]) -> HashSet<String> {
        let mut out = HashSet::new();
        'members: for (id, ms) in self.members.iter() {
            if ms.status != MemberStatus::Alive {
                continue;
            }
            let name = self.swim.name_of(id);
            let mut tags = None;
            for f in filters {
                let ok = match f {
                    Filter::Nodes(nodes) => nodes.iter().any(|n| n == name),
                    Filter::Tag { tag, expr } => {
                        let tags = tags.get_or_insert_with(|| self.member_at(id, ms).tags);
                        let value = tags.get(tag).map(String::as_str).unwrap_or("");
                        regex::Regex::new(expr)
                            .map(|re| re.is_match(value))
                            .unwrap_or(false)
                    }
                    Filter::Undecodable(_) => false,
                };
                if !ok {
                    continue 'members;
                }
            }
            out.insert(name.to_owned());
        }
        out
    }

    pub(super) fn handle_query(&mut self, now: Instant, q: Query) -> bool {
        self.query_clock.witness(q.ltime);
        if q.ltime < self.query_min_time {
            return false;
        }
        let cur = self.query_clock.time();
        let len = self.query_buffer.len() as LamportTime;
        if cur > len && q.ltime < cur - len {
            if self.warn_allowed(now, "old-query") {
                warn!(node = %self.name(), query = %q.name, ltime = q.ltime, current = cur, "serf: received old query");
            }
            return false;
        }
        let idx = (q.ltime % len) as usize;
        match &mut self.query_buffer[idx] {
            Some((lt, ids)) if *lt == q.ltime => {
                if ids.contains(&q.id) {
                    return false;
                }
                ids.push(q.id);
            }
            slot => *slot = Some((q.ltime, vec![q.id])),
        }
        self.state_dirty = true;
        let rebroadcast = q.flags & QUERY_FLAG_NO_BROADCAST == 0;
        if !self.should_process(now, &q.filters) {
            return rebroadcast;
        }
        let Some(addr) = socket_addr(&q.addr, q.port) else {
            if self.warn_allowed(now, "query-reply-address") {
                warn!(node = %self.name(), query = %q.name, "serf: query with a bad reply address");
            }
            return rebroadcast;
        };
        if q.ack() {
            let ack = QueryResponse {
                ltime: q.ltime,
                id: q.id,
                from: self.name().to_owned(),
                flags: QUERY_FLAG_ACK,
                payload: Vec::new(),
            };
            let raw = messages::encode(&Message::QueryResponse(ack.clone()));
            self.swim.send_user_packet(addr, &raw);
            self.relay_response(q.relay_factor, addr, &q.source_node, &ack);
        }
        let deadline = now + q.timeout;
        self.incoming.insert(
            (q.ltime, q.id),
            Incoming {
                addr,
                source_node: q.source_node.clone(),
                relay_factor: q.relay_factor,
                deadline,
                responded: false,
            },
        );
        if q.name.starts_with(INTERNAL_QUERY_PREFIX) {
            self.handle_internal_query(now, &q);
        } else {
            self.events.push_back(Event::Query(QueryEvent {
                ltime: q.ltime,
                id: q.id,
                name: q.name,
                payload: q.payload,
                source_node: q.source_node,
                deadline,
            }));
        }
        rebroadcast
    }

    pub(super) fn send_response(&mut self, _now: Instant, resp: QueryResponse) -> Result<()> {
        let key = (resp.ltime, resp.id);
        let Some(inq) = self.incoming.get(&key).cloned() else {
            return Err(Error::PastDeadline);
        };
        if inq.responded {
            return Err(Error::AlreadyResponded);
        }
        let raw = messages::encode(&Message::QueryResponse(resp.clone()));
        if raw.len() > self.config.query_response_size_limit {
            return Err(Error::ResponseTooLarge {
                size: raw.len(),
                limit: self.config.query_response_size_limit,
            });
        }
        self.swim.send_user_packet(inq.addr, &raw);
        self.relay_response(inq.relay_factor, inq.addr, &inq.source_node, &resp);
        if let Some(i) = self.incoming.get_mut(&key) {
            i.responded = true;
        }
        Ok(())
    }

    fn relay_response(
        &mut self,
        factor: u8,
        dest: SocketAddr,
        dest_name: &str,
        resp: &QueryResponse,
    ) {
        if factor == 0 || self.members.len() < factor as usize + 1 {
            return;
        }
        let inner = messages::encode(&Message::QueryResponse(resp.clone()));
        let raw = messages::encode_relay(dest, dest_name, &inner);
        if raw.len() > self.config.query_response_size_limit {
            warn!(node = %self.name(), "serf: relayed response exceeds the size limit");
            return;
        }
        let me = self.name().to_owned();
        let mut candidates: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(_, m)| m.status == MemberStatus::Alive)
            .filter_map(|(id, _)| self.swim.member_info(id))
            .filter(|m| m.vsn[1] >= 5 && m.name != me)
            .map(|m| m.addr)
            .collect();
        candidates.sort();
        for _ in 0..factor {
            if candidates.is_empty() {
                break;
            }
            let i = self.rng.gen_range(0..candidates.len());
            let to = candidates.swap_remove(i);
            self.swim.send_user_packet(to, &raw);
        }
    }

    pub(super) fn handle_query_response(&mut self, now: Instant, r: QueryResponse) {
        let Some(&(id, _)) = self.outgoing.get(&r.ltime) else {
            debug!(node = %self.config.memberlist.name, ltime = r.ltime, id = r.id, from = %r.from, "serf: reply for non-running query");
            return;
        };
        if id != r.id {
            if self.warn_allowed(now, "query-reply-id") {
                warn!(node = %self.config.memberlist.name, local = id, response = r.id, "serf: query reply ID mismatch");
            }
            return;
        }
        let (_, q) = self.outgoing.get_mut(&r.ltime).expect("looked up above");
        let query = QueryId {
            ltime: r.ltime,
            id: r.id,
        };
        if r.ack() {
            if q.acks.insert(r.from.clone()) {
                self.events.push_back(Event::QueryAck {
                    query,
                    from: r.from,
                });
            }
        } else if q.responses.insert(r.from.clone()) {
            if self.conflict_vote.is_some_and(|(id, _, _)| id == query) {
                self.count_conflict_vote(&r.payload);
                return;
            }
            self.events.push_back(Event::QueryResponse {
                query,
                from: r.from,
                payload: r.payload,
            });
        }
        self.finish_if_answered(query);
    }

    /// hearsay extension: finishes a `finish_early` query once every expected node answered
    /// (and acked, when acks were asked for) and no out-of-band response is still arriving.
    fn finish_if_answered(&mut self, query: QueryId) {
        let Some((_, q)) = self.outgoing.get(&query.ltime) else {
            return;
        };
        if let (true, Some(expected)) = (q.params_finish_early, &q.expected) {
            let answered = expected.iter().all(|n| q.responses.contains(n))
                && (!q.request_ack || expected.iter().all(|n| q.acks.contains(n)))
                && q.external.is_empty();
            if answered {
                self.outgoing.remove(&query.ltime);
                self.events.push_back(Event::QueryDone { query });
            }
        }
    }

    pub(super) fn expire_queries(&mut self, now: Instant) {
        let mut done: Vec<(LamportTime, u32)> = self
            .outgoing
            .iter()
            .filter(|(_, (_, q))| q.deadline <= now)
            .map(|(lt, (id, _))| (*lt, *id))
            .collect();
        done.sort_unstable();
        for (ltime, id) in done {
            self.outgoing.remove(&ltime);
            let query = QueryId { ltime, id };
            match self.conflict_vote {
                Some((vote, responses, matching)) if vote == query => {
                    self.conflict_vote = None;
                    let won = matching > responses / 2;
                    if won {
                        info!(node = %self.name(), matching, responses, "serf: majority in name conflict resolution");
                    } else {
                        warn!(node = %self.name(), matching, responses, "serf: minority in name conflict resolution, quitting");
                    }
                    self.events.push_back(Event::NameConflict {
                        won,
                        matching,
                        responses,
                    });
                }
                _ => self.events.push_back(Event::QueryDone { query }),
            }
        }
        self.incoming.retain(|_, q| q.deadline > now);
    }
}

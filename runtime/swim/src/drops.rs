//! Counters of what the core refused from the network: datagrams dropped whole (per
//! [`DropKind`]), parts of compound datagrams, incoming streams, and the warnings about them
//! that the [`crate::loglimit::LogLimiter`] suppressed. [`DropStats::entries`] names them as
//! the agent's `stats` (and `hearsay info`) show them.

use crate::error::Error;

/// Why a datagram from the network was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropKind {
    /// Its cluster label differed from ours, or its label header was malformed.
    Label,
    /// It could not be decrypted, or was plaintext while encryption is required.
    Decrypt,
    /// Its protocol-5 CRC did not match.
    Crc,
    /// Its message type is not one memberlist defines.
    UnknownType,
    /// Anything else: truncated, malformed msgpack, bad compression, too large, too deep.
    Decode,
}

impl DropKind {
    /// Every kind, in the order of [`DropStats::entries`].
    pub const ALL: [DropKind; 5] = [
        DropKind::Label,
        DropKind::Decrypt,
        DropKind::Crc,
        DropKind::UnknownType,
        DropKind::Decode,
    ];

    /// The kind of a decoding error.
    pub fn of(e: &Error) -> Self {
        match e {
            Error::LabelMismatch { .. } | Error::EmptyLabel | Error::LabelTooLong(_) => {
                DropKind::Label
            }
            Error::NotEncrypted
            | Error::DecryptFailed { .. }
            | Error::UnknownEncryptionVersion(_) => DropKind::Decrypt,
            Error::CrcMismatch { .. } => DropKind::Crc,
            Error::UnknownMessageType(_) => DropKind::UnknownType,
            _ => DropKind::Decode,
        }
    }

    /// A short label: the log limiter's kind, and the suffix of the stats key.
    pub fn as_str(self) -> &'static str {
        match self {
            DropKind::Label => "label",
            DropKind::Decrypt => "decrypt",
            DropKind::Crc => "crc",
            DropKind::UnknownType => "unknown-type",
            DropKind::Decode => "decode",
        }
    }

    fn stats_key(self) -> &'static str {
        match self {
            DropKind::Label => "dropped_packets_label",
            DropKind::Decrypt => "dropped_packets_decrypt",
            DropKind::Crc => "dropped_packets_crc",
            DropKind::UnknownType => "dropped_packets_unknown_type",
            DropKind::Decode => "dropped_packets_decode",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the core refused from the network since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropStats {
    packets: [u64; DropKind::ALL.len()],
    messages: u64,
    streams: u64,
    suppressed: u64,
}

impl DropStats {
    /// Datagrams dropped whole for `kind`.
    pub fn packets(&self, kind: DropKind) -> u64 {
        self.packets[kind.index()]
    }

    /// Datagrams dropped whole, all kinds.
    pub fn total_packets(&self) -> u64 {
        self.packets.iter().sum()
    }

    /// Parts of compound datagrams dropped while the other parts were handled.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Incoming streams refused because their message could not be read.
    pub fn streams(&self) -> u64 {
        self.streams
    }

    /// Warnings about remote input that were counted instead of logged.
    pub fn suppressed_warnings(&self) -> u64 {
        self.suppressed
    }

    /// The counters as stats keys and values: `dropped_packets` (the total), one
    /// `dropped_packets_KIND` per [`DropKind`], `dropped_messages`, `dropped_streams` and
    /// `suppressed_warnings`.
    pub fn entries(&self) -> Vec<(&'static str, u64)> {
        let mut out = vec![("dropped_packets", self.total_packets())];
        out.extend(DropKind::ALL.map(|k| (k.stats_key(), self.packets(k))));
        out.push(("dropped_messages", self.messages));
        out.push(("dropped_streams", self.streams));
        out.push(("suppressed_warnings", self.suppressed));
        out
    }

    pub(crate) fn count_packet(&mut self, kind: DropKind) {
        self.packets[kind.index()] += 1;
    }

    pub(crate) fn count_message(&mut self) {
        self.messages += 1;
    }

    pub(crate) fn count_stream(&mut self) {
        self.streams += 1;
    }

    pub(crate) fn set_suppressed(&mut self, n: u64) {
        self.suppressed = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_kinds() {
        let label = Error::LabelMismatch {
            ours: String::new(),
            theirs: "x".into(),
        };
        assert_eq!(DropKind::of(&label), DropKind::Label);
        assert_eq!(
            DropKind::of(&Error::DecryptFailed { keys: 1 }),
            DropKind::Decrypt
        );
        assert_eq!(DropKind::of(&Error::NotEncrypted), DropKind::Decrypt);
        let crc = Error::CrcMismatch {
            expected: 1,
            actual: 2,
        };
        assert_eq!(DropKind::of(&crc), DropKind::Crc);
        assert_eq!(
            DropKind::of(&Error::UnknownMessageType(99)),
            DropKind::UnknownType
        );
        assert_eq!(DropKind::of(&Error::TooDeep(3)), DropKind::Decode);
    }

    #[test]
    fn entries_name_every_counter() {
        let mut s = DropStats::default();
        s.count_packet(DropKind::Decode);
        s.count_packet(DropKind::Decode);
        s.count_packet(DropKind::Label);
        s.count_message();
        s.count_stream();
        s.set_suppressed(7);
        let e = s.entries();
        let get = |k: &str| e.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("dropped_packets"), Some(3));
        assert_eq!(get("dropped_packets_decode"), Some(2));
        assert_eq!(get("dropped_packets_label"), Some(1));
        assert_eq!(get("dropped_packets_unknown_type"), Some(0));
        assert_eq!(get("dropped_messages"), Some(1));
        assert_eq!(get("dropped_streams"), Some(1));
        assert_eq!(get("suppressed_warnings"), Some(7));
        assert_eq!(e.len(), 9);
    }
}

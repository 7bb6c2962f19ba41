//! The messages of Serf's RPC protocol above the framing of [`crate::codec`]: the requests a
//! server decodes ([`Request`]), and the records both sides exchange ([`RpcMember`],
//! [`KeyResponse`], [`QueryRecord`], and hearsay's own [`RpcHandler`], [`RpcDeployment`] and
//! [`RpcDeployNode`]), each with its exact field names so that Serf's Go client and `serf`
//! CLI read ours and ours reads theirs.

use crate::codec::{self, int, map, s, string_map, Fields, Value};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// The four key commands (`install-key`, `use-key`, `remove-key`, `list-keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOp {
    /// `install-key`: add a key to every node's keyring.
    Install,
    /// `use-key`: make an installed key the primary (encrypting) key.
    Use,
    /// `remove-key`: remove a key that is not the primary one.
    Remove,
    /// `list-keys`: count the keys installed across the cluster.
    List,
}

impl KeyOp {
    /// The command's name on the wire, which is also the Serf key query it runs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install-key",
            Self::Use => "use-key",
            Self::Remove => "remove-key",
            Self::List => "list-keys",
        }
    }
}

/// The levels `monitor` accepts: exactly the names Serf's `LevelFilter` knows, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `TRACE`.
    Trace,
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERR`.
    Err,
}

impl LogLevel {
    /// Parses a level name the server has upper-cased (as Serf does with the client's).
    /// `WARNING` and `ERROR`, which hearsay's own log settings accept, are not Serf's monitor
    /// levels, so they are refused here.
    pub fn parse(upper: &str) -> Option<Self> {
        Some(match upper {
            "TRACE" => Self::Trace,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "WARN" => Self::Warn,
            "ERR" => Self::Err,
            _ => return None,
        })
    }
}

/// The RPC `Member` struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcMember {
    /// The node's name (`Name`).
    pub name: String,
    /// The node's gossip address (`Addr`): 4 bytes for IPv4, 16 for IPv6 (a Go `net.IP`).
    pub addr: Vec<u8>,
    /// The node's gossip port (`Port`).
    pub port: u16,
    /// The node's tags (`Tags`).
    pub tags: BTreeMap<String, String>,
    /// The member status as Serf spells it (`Status`): `alive`, `leaving`, `left`, `failed`
    /// or `none`.
    pub status: String,
    /// ProtocolMin, ProtocolMax, ProtocolCur, DelegateMin, DelegateMax, DelegateCur.
    pub vsn: [u8; 6],
}

impl RpcMember {
    /// The address as an IP, when it has a valid length.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self.addr.len() {
            4 => Some(<[u8; 4]>::try_from(self.addr.as_slice()).ok()?.into()),
            16 => {
                let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(self.addr.as_slice()).ok()?);
                Some(v6.to_ipv4_mapped().map_or(v6.into(), Into::into))
            }
            _ => None,
        }
    }

    /// The member as a msgpack map with Serf's field names.
    pub fn to_value(&self) -> Value {
        let v = |i: usize| Value::Uint(u64::from(self.vsn[i]));
        map(vec![
            ("Name", s(&self.name)),
            ("Addr", Value::Raw(self.addr.clone())),
            ("Port", Value::Uint(u64::from(self.port))),
            ("Tags", string_map(&self.tags)),
            ("Status", s(&self.status)),
            ("ProtocolMin", v(0)),
            ("ProtocolMax", v(1)),
            ("ProtocolCur", v(2)),
            ("DelegateMin", v(3)),
            ("DelegateMax", v(4)),
            ("DelegateCur", v(5)),
        ])
    }

    /// Reads a member from a decoded map; a field of the wrong type, or a port or version
    /// out of range, is [`Error::Protocol`].
    pub fn from_value(v: &Value) -> Result<Self> {
        let f = Fields::of(v, "Member")?;
        let mut vsn = [0u8; 6];
        for (i, name) in [
            "ProtocolMin",
            "ProtocolMax",
            "ProtocolCur",
            "DelegateMin",
            "DelegateMax",
            "DelegateCur",
        ]
        .iter()
        .enumerate()
        {
            vsn[i] = u8::try_from(f.uint(name)?)
                .map_err(|_| Error::Protocol(format!("field {name} overflows a uint8")))?;
        }
        Ok(Self {
            name: f.str("Name")?,
            addr: f.bytes("Addr")?,
            port: u16::try_from(f.uint("Port")?)
                .map_err(|_| Error::Protocol("field Port overflows a uint16".into()))?,
            tags: f.string_map("Tags")?,
            status: f.str("Status")?,
            vsn,
        })
    }
}

/// `keyResponse`: the aggregate of a key query over the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyResponse {
    /// Node name → message (errors, or warnings from successful nodes).
    pub messages: BTreeMap<String, String>,
    /// Base64 key → how many nodes have it (list-keys only).
    pub keys: BTreeMap<String, i64>,
    /// Alive members when the key query started: the answers expected (`NumNodes`).
    pub num_nodes: i64,
    /// Answers that reported a failure or could not be decoded (`NumErr`).
    pub num_err: i64,
    /// Answers received before the query ended (`NumResp`).
    pub num_resp: i64,
}

impl KeyResponse {
    /// The response as a msgpack map with Serf's field names.
    pub fn to_value(&self) -> Value {
        map(vec![
            ("Messages", string_map(&self.messages)),
            (
                "Keys",
                Value::Map(self.keys.iter().map(|(k, n)| (s(k), int(*n))).collect()),
            ),
            ("NumNodes", int(self.num_nodes)),
            ("NumErr", int(self.num_err)),
            ("NumResp", int(self.num_resp)),
        ])
    }

    /// Reads a key response from a decoded map; a field of the wrong type is
    /// [`Error::Protocol`].
    pub fn from_value(v: &Value) -> Result<Self> {
        let f = Fields::of(v, "keyResponse")?;
        Ok(Self {
            messages: f.string_map("Messages")?,
            keys: f.int_map("Keys")?,
            num_nodes: f.int("NumNodes")?,
            num_err: f.int("NumErr")?,
            num_resp: f.int("NumResp")?,
        })
    }
}

/// A request as decoded from the wire.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    Handshake {
        version: i64,
    },
    Auth {
        key: String,
    },
    Event {
        name: String,
        payload: Vec<u8>,
        coalesce: bool,
    },
    ForceLeave {
        node: String,
        prune: bool,
    },
    Join {
        existing: Vec<String>,
        replay: bool,
    },
    Members,
    MembersFiltered {
        tags: BTreeMap<String, String>,
        status: String,
        name: String,
    },
    Tags {
        tags: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    Stream {
        filter: String,
    },
    Monitor {
        level: String,
    },
    Stop {
        seq: u64,
    },
    Leave,
    Query(Box<QueryRequest>),
    Respond {
        id: u64,
        payload: Vec<u8>,
    },
    Key {
        op: KeyOp,
        key: String,
    },
    Stats,
    Coordinate {
        node: String,
    },
    /// hearsay extension: list the agent's WebAssembly handlers (no body; Serf answers
    /// "Unsupported command").
    Handlers,
    /// hearsay extension: deploy a signed handler module (or undeploy one) cluster-wide.
    Deploy {
        /// The encoded, signed deployment record (`Deployment`; never empty).
        deployment: Vec<u8>,
        /// The module's bytes (`Module`; empty for an undeploy, or when the agent already
        /// holds them).
        module: Vec<u8>,
    },
    /// hearsay extension: list the deployments with each node's convergence (no body).
    Deployments,
}

/// `queryRequest`: the body of a `query` request, as the server hands it to
/// [`crate::Backend::query`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryRequest {
    /// Only these nodes answer (`FilterNodes`); empty means every node.
    pub filter_nodes: Vec<String>,
    /// Only nodes whose tags match these regular expressions answer (`FilterTags`, tag name →
    /// regex; unanchored, as Go's `regexp.MatchString`; a missing tag is the empty string).
    pub filter_tags: BTreeMap<String, String>,
    /// Asks every node that receives the query for an ack (`RequestAck`).
    pub request_ack: bool,
    /// How many extra nodes relay each response back (`RelayFactor`; 0 = direct only).
    pub relay_factor: u8,
    /// How long the query collects responses (`Timeout`), in Go `time.Duration`
    /// nanoseconds; 0 = Serf's default.
    pub timeout_ns: i64,
    /// The query's name (`Name`).
    pub name: String,
    /// The query's payload (`Payload`).
    pub payload: Vec<u8>,
}

impl Request {
    /// Decodes the body of `command` (`Value::Nil` for commands without one). `None` for a
    /// command neither Serf nor hearsay has. The body is taken by value so that `deploy`'s
    /// module (up to [`codec::MAX_DEPLOY_BYTES`]) is moved out of it, not copied.
    pub(crate) fn parse(command: &str, body: Value) -> Option<Result<Self>> {
        if !crate::COMMANDS.contains(&command) && !crate::HEARSAY_COMMANDS.contains(&command) {
            return None;
        }
        if command == "deploy" {
            return Some(Self::deploy(body));
        }
        let f = match Fields::of(&body, command) {
            Ok(f) => f,
            Err(e) => return Some(Err(e)),
        };
        let r = || -> Result<Self> {
            Ok(match command {
                "handshake" => Self::Handshake {
                    version: f.int("Version")?,
                },
                "auth" => Self::Auth {
                    key: f.str("AuthKey")?,
                },
                "event" => Self::Event {
                    name: f.str("Name")?,
                    payload: f.bytes("Payload")?,
                    coalesce: f.bool("Coalesce")?,
                },
                "force-leave" => Self::ForceLeave {
                    node: f.str("Node")?,
                    prune: f.bool("Prune")?,
                },
                "join" => Self::Join {
                    existing: f.strings("Existing")?,
                    replay: f.bool("Replay")?,
                },
                "members" => Self::Members,
                "members-filtered" => Self::MembersFiltered {
                    tags: f.string_map("Tags")?,
                    status: f.str("Status")?,
                    name: f.str("Name")?,
                },
                "tags" => Self::Tags {
                    tags: f.string_map("Tags")?,
                    delete: f.strings("DeleteTags")?,
                },
                "stream" => Self::Stream {
                    filter: f.str("Type")?,
                },
                "monitor" => Self::Monitor {
                    level: f.str("LogLevel")?,
                },
                "stop" => Self::Stop {
                    seq: f.uint("Stop")?,
                },
                "leave" => Self::Leave,
                "query" => Self::Query(Box::new(QueryRequest {
                    filter_nodes: f.strings("FilterNodes")?,
                    filter_tags: f.string_map("FilterTags")?,
                    request_ack: f.bool("RequestAck")?,
                    relay_factor: u8::try_from(f.uint("RelayFactor")?).map_err(|_| {
                        Error::Protocol("field RelayFactor overflows a uint8".into())
                    })?,
                    timeout_ns: f.int("Timeout")?,
                    name: f.str("Name")?,
                    payload: f.bytes("Payload")?,
                })),
                "respond" => Self::Respond {
                    id: f.uint("ID")?,
                    payload: f.bytes("Payload")?,
                },
                "install-key" | "use-key" | "remove-key" | "list-keys" => Self::Key {
                    op: match command {
                        "install-key" => KeyOp::Install,
                        "use-key" => KeyOp::Use,
                        "remove-key" => KeyOp::Remove,
                        _ => KeyOp::List,
                    },
                    key: f.str("Key")?,
                },
                "stats" => Self::Stats,
                "handlers" => Self::Handlers,
                "deployments" => Self::Deployments,
                "get-coordinate" => Self::Coordinate {
                    node: f.str("Node")?,
                },
                other => {
                    return Err(Error::Protocol(format!("unknown command {other:?}")));
                }
            })
        };
        Some(r())
    }

    /// The body of `deploy`: `Deployment` is required, `Module` may be empty or missing.
    fn deploy(mut body: Value) -> Result<Self> {
        Fields::of(&body, "deploy")?;
        let deployment = codec::take_bytes(&mut body, "Deployment")?;
        if deployment.is_empty() {
            return Err(Error::Protocol(
                "field Deployment is missing or empty".into(),
            ));
        }
        let module = codec::take_bytes(&mut body, "Module")?;
        Ok(Self::Deploy { deployment, module })
    }
}

/// One result of a query, as [`crate::RecordStream::next_query_record`] reads it from a
/// `queryRecord`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryRecord {
    /// The named node acknowledged the query (`Type: "ack"`).
    Ack(String),
    /// The named node's whole response (`Type: "response"`; Serf's UDP path).
    Response(String, Vec<u8>),
    /// One piece of a large response, in order (hearsay agents only: a `response` record with
    /// `Stream: true`; see [`crate::RpcServer`]).
    Piece {
        /// The responding node's name (`From`).
        from: String,
        /// The piece's bytes (`Payload`, at most 64 KiB).
        payload: Vec<u8>,
        /// Whether this is the node's final piece (`Last`).
        last: bool,
        /// Why the response failed after the pieces before it (`Error`); set only on the
        /// final piece, whose payload is then empty.
        error: Option<String>,
    },
}

/// One handler as the hearsay-only `handlers` command lists it (see
/// [`crate::HEARSAY_COMMANDS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcHandler {
    /// The handler's name (`Name`).
    pub name: String,
    /// Serf filter syntax, e.g. `query:echo`.
    pub filter: String,
    /// The module file.
    pub module: String,
    /// sha256 of the component, hex.
    pub sha256: String,
    /// Events the handler has started (`Invocations`).
    pub invocations: u64,
    /// Events the guest handled without error (`Ok`).
    pub ok: u64,
    /// Events the guest returned an error for (`Errors`).
    pub errors: u64,
    /// Traps, including timeouts (`Traps`).
    pub traps: u64,
    /// Events stopped at their deadline (`Timeouts`).
    pub timeouts: u64,
    /// Events dropped because the handler's queue was full (`Drops`).
    pub drops: u64,
    /// Events waiting in the handler's queue.
    pub queued: u64,
    /// Median run time of an event (`P50`, nanoseconds on the wire); `None` before the first
    /// event.
    pub p50: Option<Duration>,
    /// 99th-percentile run time of an event (`P99`, nanoseconds on the wire); `None` before
    /// the first event.
    pub p99: Option<Duration>,
    /// Events running now (`Running`).
    pub running: u64,
    /// How long the oldest running event has run (`OldestRunning`, nanoseconds on the wire);
    /// `None` when none runs.
    pub oldest_running: Option<Duration>,
    /// Guest log lines dropped by the log budget.
    pub log_suppressed: u64,
    /// The tenant the handler belongs to (`Tenant`; nil on the wire for the operator's).
    pub tenant: Option<String>,
}

impl RpcHandler {
    /// The handler as a msgpack map (durations as nanoseconds, nil when absent).
    pub fn to_value(&self) -> Value {
        let nanos = |d: Option<Duration>| {
            d.map_or(Value::Nil, |d| {
                Value::Uint(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            })
        };
        map(vec![
            ("Name", s(&self.name)),
            ("Filter", s(&self.filter)),
            ("Module", s(&self.module)),
            ("Sha256", s(&self.sha256)),
            ("Invocations", Value::Uint(self.invocations)),
            ("Ok", Value::Uint(self.ok)),
            ("Errors", Value::Uint(self.errors)),
            ("Traps", Value::Uint(self.traps)),
            ("Timeouts", Value::Uint(self.timeouts)),
            ("Drops", Value::Uint(self.drops)),
            ("Queued", Value::Uint(self.queued)),
            ("P50", nanos(self.p50)),
            ("P99", nanos(self.p99)),
            ("Running", Value::Uint(self.running)),
            ("OldestRunning", nanos(self.oldest_running)),
            ("LogSuppressed", Value::Uint(self.log_suppressed)),
            ("Tenant", self.tenant.as_deref().map_or(Value::Nil, s)),
        ])
    }

    /// Reads a handler from a decoded map; `Running` and `LogSuppressed`, absent from older
    /// agents, read as 0, and `Tenant` (absent, nil or empty) as none. A field of the wrong type is [`Error::Protocol`].
    pub fn from_value(v: &Value) -> Result<Self> {
        let f = Fields::of(v, "handler")?;
        let nanos = |name: &str| -> Result<Option<Duration>> {
            Ok(match f.get(name) {
                None | Some(Value::Nil) => None,
                Some(_) => Some(Duration::from_nanos(f.uint(name)?)),
            })
        };
        let optional_uint = |name: &str| -> Result<u64> {
            match f.get(name) {
                None => Ok(0),
                Some(_) => f.uint(name),
            }
        };
        Ok(Self {
            name: f.str("Name")?,
            filter: f.str("Filter")?,
            module: f.str("Module")?,
            sha256: f.str("Sha256")?,
            invocations: f.uint("Invocations")?,
            ok: f.uint("Ok")?,
            errors: f.uint("Errors")?,
            traps: f.uint("Traps")?,
            timeouts: f.uint("Timeouts")?,
            drops: f.uint("Drops")?,
            queued: f.uint("Queued")?,
            p50: nanos("P50")?,
            p99: nanos("P99")?,
            // Absent from agents older than these fields.
            running: optional_uint("Running")?,
            oldest_running: nanos("OldestRunning")?,
            log_suppressed: optional_uint("LogSuppressed")?,
            tenant: match f.get("Tenant") {
                None | Some(Value::Nil) => None,
                Some(_) => Some(f.str("Tenant")?).filter(|t| !t.is_empty()),
            },
        })
    }
}

/// One deployment as the hearsay-only `deployments` command lists it (see
/// [`crate::HEARSAY_COMMANDS`]). The records are opaque signed bytes to this crate; the
/// other fields are what the agent read from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcDeployment {
    /// The handler's name (`Name`).
    pub name: String,
    /// The deployment's version (`Version`).
    pub version: u64,
    /// sha256 of the module, hex (`Sha256`); empty when the deployment is an undeploy.
    pub sha256: String,
    /// The module's size in bytes (`Size`).
    pub size: u64,
    /// The handler's event filter, in Serf's syntax (`Events`).
    pub events: String,
    /// The key that signed the record, `ed25519:BASE64` (`Signer`).
    pub signer: String,
    /// Whether the record is an undeploy (`Removed`).
    pub removed: bool,
    /// The encoded signed record itself (`Record`).
    pub record: Vec<u8>,
    /// Older records for the same name, newest first (`History`).
    pub history: Vec<Vec<u8>>,
    /// Each node's convergence on this deployment (`Nodes`).
    pub nodes: Vec<RpcDeployNode>,
}

impl RpcDeployment {
    /// The deployment as a msgpack map.
    pub fn to_value(&self) -> Value {
        map(vec![
            ("Name", s(&self.name)),
            ("Version", Value::Uint(self.version)),
            ("Sha256", s(&self.sha256)),
            ("Size", Value::Uint(self.size)),
            ("Events", s(&self.events)),
            ("Signer", s(&self.signer)),
            ("Removed", Value::Bool(self.removed)),
            ("Record", Value::Raw(self.record.clone())),
            (
                "History",
                Value::Array(self.history.iter().cloned().map(Value::Raw).collect()),
            ),
            (
                "Nodes",
                Value::Array(self.nodes.iter().map(RpcDeployNode::to_value).collect()),
            ),
        ])
    }

    /// Reads a deployment from a decoded map; a missing field or nil reads as its zero value
    /// (an empty `History` or `Nodes` among them). A field of the wrong type is
    /// [`Error::Protocol`].
    pub fn from_value(v: &Value) -> Result<Self> {
        let f = Fields::of(v, "deployment")?;
        Ok(Self {
            name: f.str("Name")?,
            version: f.uint("Version")?,
            sha256: f.str("Sha256")?,
            size: f.uint("Size")?,
            events: f.str("Events")?,
            signer: f.str("Signer")?,
            removed: f.bool("Removed")?,
            record: f.bytes("Record")?,
            history: f.byte_slices("History")?,
            nodes: array_of(&f, "Nodes", RpcDeployNode::from_value)?,
        })
    }
}

/// One node's convergence on a deployment ([`RpcDeployment::nodes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcDeployNode {
    /// The node's name (`Node`).
    pub node: String,
    /// Where the node stands (`State`): `running`, `pending`, `failed`, `refused`,
    /// `not-selected`, `removed` or `unreachable`.
    pub state: String,
    /// The version the node holds or runs (`Version`).
    pub version: u64,
    /// Why the node is `failed`, `refused` or `pending` (`Reason`); empty otherwise.
    pub reason: String,
}

impl RpcDeployNode {
    /// The node's state as a msgpack map.
    pub fn to_value(&self) -> Value {
        map(vec![
            ("Node", s(&self.node)),
            ("State", s(&self.state)),
            ("Version", Value::Uint(self.version)),
            ("Reason", s(&self.reason)),
        ])
    }

    /// Reads a node's state from a decoded map; a missing field or nil reads as its zero
    /// value. A field of the wrong type is [`Error::Protocol`].
    pub fn from_value(v: &Value) -> Result<Self> {
        let f = Fields::of(v, "deployment node")?;
        Ok(Self {
            node: f.str("Node")?,
            state: f.str("State")?,
            version: f.uint("Version")?,
            reason: f.str("Reason")?,
        })
    }
}

/// What the hearsay-only `deployments` command answers: the deployments, and the records
/// nodes refused lately (`Refused`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcDeployments {
    /// Every deployment with each node's state (`Deployments`).
    pub deployments: Vec<RpcDeployment>,
    /// Records nodes refused lately, with the reason (`Refused`).
    pub refused: Vec<RpcRefusal>,
}

impl RpcDeployments {
    /// The response body: a map with `Deployments` and `Refused`.
    pub fn to_value(&self) -> Value {
        map(vec![
            (
                "Deployments",
                Value::Array(
                    self.deployments
                        .iter()
                        .map(RpcDeployment::to_value)
                        .collect(),
                ),
            ),
            (
                "Refused",
                Value::Array(self.refused.iter().map(RpcRefusal::to_value).collect()),
            ),
        ])
    }

    /// Reads a response body; missing arrays are empty.
    pub fn from_value(v: &Value) -> Result<Self> {
        let f = Fields::of(v, "deploymentsResponse")?;
        Ok(Self {
            deployments: array_of(&f, "Deployments", RpcDeployment::from_value)?,
            refused: array_of(&f, "Refused", RpcRefusal::from_value)?,
        })
    }
}

/// A deployment record a node refused (an untrusted signer, bytes that are not the signed
/// ones, a version older than it has), as `deployments` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcRefusal {
    /// The node that refused it (`Node`).
    pub node: String,
    /// The deployment's name (`Name`).
    pub name: String,
    /// The refused version (`Version`).
    pub version: u64,
    /// Why (`Reason`).
    pub reason: String,
}

impl RpcRefusal {
    /// The refusal as a msgpack map.
    pub fn to_value(&self) -> Value {
        map(vec![
            ("Node", s(&self.node)),
            ("Name", s(&self.name)),
            ("Version", Value::Uint(self.version)),
            ("Reason", s(&self.reason)),
        ])
    }

    /// Reads a refusal from a decoded map; a missing field or nil reads as its zero value.
    pub fn from_value(v: &Value) -> Result<Self> {
        let f = Fields::of(v, "deployment refusal")?;
        Ok(Self {
            node: f.str("Node")?,
            name: f.str("Name")?,
            version: f.uint("Version")?,
            reason: f.str("Reason")?,
        })
    }
}

/// An array field whose items `parse` reads (missing or nil: empty); anything but an array
/// is [`Error::Protocol`] naming the field.
pub(crate) fn array_of<T>(
    f: &Fields<'_>,
    name: &str,
    parse: impl Fn(&Value) -> Result<T>,
) -> Result<Vec<T>> {
    match f.get(name) {
        None | Some(Value::Nil) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(parse).collect(),
        Some(other) => Err(codec::bad(name, "array", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_value, encode_value, frame};

    #[test]
    fn members_and_key_responses_round_trip() {
        let mut tags = BTreeMap::new();
        tags.insert("role".to_owned(), "web".to_owned());
        let m = RpcMember {
            name: "a".into(),
            addr: vec![127, 0, 0, 1],
            port: 7946,
            tags,
            status: "alive".into(),
            vsn: [2, 5, 5, 2, 5, 5],
        };
        let (v, _) = decode_value(&frame(&m.to_value(), None)).unwrap().unwrap();
        let back = RpcMember::from_value(&v).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.ip(), Some("127.0.0.1".parse().unwrap()));
        let mut k = KeyResponse {
            num_nodes: 3,
            num_resp: 2,
            num_err: 1,
            ..Default::default()
        };
        k.messages
            .insert("b".into(), "Requested key is not in the keyring".into());
        k.keys.insert("aGVsbG8=".into(), 2);
        let (v, _) = decode_value(&frame(&k.to_value(), None)).unwrap().unwrap();
        assert_eq!(KeyResponse::from_value(&v).unwrap(), k);
    }

    #[test]
    fn requests_parse_with_serf_field_names() {
        let body = map(vec![
            ("FilterNodes", crate::codec::strings(&["a".to_owned()])),
            ("RequestAck", Value::Bool(true)),
            ("RelayFactor", Value::Uint(2)),
            ("Timeout", Value::Uint(1_000_000_000)),
            ("Name", s("q")),
            ("Payload", Value::Raw(b"p".to_vec())),
        ]);
        let Some(Ok(Request::Query(q))) = Request::parse("query", body) else {
            panic!("query did not parse");
        };
        assert_eq!(q.filter_nodes, ["a"]);
        assert!(q.request_ack);
        assert_eq!((q.relay_factor, q.timeout_ns), (2, 1_000_000_000));
        assert!(Request::parse("bogus", Value::Nil).is_none());
        assert!(matches!(
            Request::parse("members", Value::Nil),
            Some(Ok(Request::Members))
        ));
        let bad = map(vec![("RelayFactor", Value::Uint(300))]);
        assert!(matches!(Request::parse("query", bad), Some(Err(_))));
    }

    #[test]
    fn handler_records_round_trip() {
        let h = RpcHandler {
            name: "echo".into(),
            filter: "query:echo".into(),
            module: "/opt/echo.wasm".into(),
            sha256: "ab".repeat(32),
            invocations: 10,
            ok: 7,
            errors: 1,
            traps: 2,
            timeouts: 1,
            drops: 3,
            queued: 4,
            p50: Some(Duration::from_micros(350)),
            p99: None,
            running: 2,
            oldest_running: Some(Duration::from_millis(1500)),
            log_suppressed: 9,
            tenant: Some("payments".into()),
        };
        let mut bytes = Vec::new();
        encode_value(&mut bytes, &h.to_value());
        let (v, _) = decode_value(&bytes).unwrap().unwrap();
        assert_eq!(RpcHandler::from_value(&v).unwrap(), h);
        let operators = RpcHandler {
            tenant: None,
            ..h.clone()
        };
        let mut bytes = Vec::new();
        encode_value(&mut bytes, &operators.to_value());
        let (v, _) = decode_value(&bytes).unwrap().unwrap();
        assert_eq!(RpcHandler::from_value(&v).unwrap(), operators);
        assert!(RpcHandler::from_value(&s("not a map")).is_err());
    }

    fn protocol_text(r: Option<Result<Request>>) -> String {
        match r {
            Some(Err(Error::Protocol(text))) => text,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn deploy_requests_need_a_deployment_and_take_bytes() {
        let body = map(vec![
            ("Deployment", Value::Raw(b"signed".to_vec())),
            ("Module", Value::Raw(vec![0, 0x61, 0x73, 0x6d])),
        ]);
        assert_eq!(
            Request::parse("deploy", body).unwrap().unwrap(),
            Request::Deploy {
                deployment: b"signed".to_vec(),
                module: vec![0, 0x61, 0x73, 0x6d],
            }
        );
        // An undeploy: no module; go-msgpack may also write bytes as an array of integers.
        let body = map(vec![(
            "Deployment",
            Value::Array(vec![Value::Uint(1), Value::Uint(2)]),
        )]);
        assert_eq!(
            Request::parse("deploy", body).unwrap().unwrap(),
            Request::Deploy {
                deployment: vec![1, 2],
                module: Vec::new(),
            }
        );
        let wrong = map(vec![("Deployment", Value::Uint(5))]);
        assert_eq!(
            protocol_text(Request::parse("deploy", wrong)),
            "field Deployment: expected bytes, found integer"
        );
        let wrong = map(vec![
            ("Deployment", Value::Raw(b"signed".to_vec())),
            ("Module", Value::Bool(true)),
        ]);
        assert_eq!(
            protocol_text(Request::parse("deploy", wrong)),
            "field Module: expected bytes, found bool"
        );
        let missing = map(vec![("Module", Value::Raw(b"m".to_vec()))]);
        assert_eq!(
            protocol_text(Request::parse("deploy", missing)),
            "field Deployment is missing or empty"
        );
        assert_eq!(
            protocol_text(Request::parse("deploy", s("not a map"))),
            "deploy: expected a map, found string"
        );
        assert!(matches!(
            Request::parse("deployments", Value::Nil),
            Some(Ok(Request::Deployments))
        ));
        assert!(crate::command_has_body("deploy"));
        assert!(!crate::command_has_body("deployments"));
        assert!(!crate::command_has_body("handlers"));
    }

    fn deployment() -> RpcDeployment {
        RpcDeployment {
            name: "echo".into(),
            version: 3,
            sha256: "cd".repeat(32),
            size: 1234,
            events: "query:echo".into(),
            signer: "ed25519:AAAA".into(),
            removed: false,
            record: b"record v3".to_vec(),
            history: vec![b"record v2".to_vec(), b"record v1".to_vec()],
            nodes: vec![
                RpcDeployNode {
                    node: "a".into(),
                    state: "running".into(),
                    version: 3,
                    reason: String::new(),
                },
                RpcDeployNode {
                    node: "b".into(),
                    state: "failed".into(),
                    version: 2,
                    reason: "trap: unreachable".into(),
                },
            ],
        }
    }

    #[test]
    fn deployment_records_round_trip() {
        let d = deployment();
        let mut bytes = Vec::new();
        encode_value(&mut bytes, &d.to_value());
        let (v, _) = decode_value(&bytes).unwrap().unwrap();
        assert_eq!(RpcDeployment::from_value(&v).unwrap(), d);
        // Missing fields read as their zero values.
        let sparse = map(vec![("Name", s("gone")), ("Removed", Value::Bool(true))]);
        let back = RpcDeployment::from_value(&sparse).unwrap();
        assert_eq!(back.name, "gone");
        assert!(back.removed && back.history.is_empty() && back.nodes.is_empty());
        assert_eq!(
            RpcDeployNode::from_value(&map(vec![("Node", s("c"))])).unwrap(),
            RpcDeployNode {
                node: "c".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn deployment_records_reject_wrong_types() {
        let err = |v: Value| match RpcDeployment::from_value(&v) {
            Err(Error::Protocol(text)) => text,
            other => panic!("expected a protocol error, got {other:?}"),
        };
        assert_eq!(
            err(map(vec![("Version", s("3"))])),
            "field Version: expected unsigned integer, found string"
        );
        assert_eq!(
            err(map(vec![("History", s("r"))])),
            "field History: expected array of bytes, found string"
        );
        assert_eq!(
            err(map(vec![(
                "History",
                Value::Array(vec![Value::Bool(true)])
            )])),
            "field History: expected bytes, found bool"
        );
        assert_eq!(
            err(map(vec![("Nodes", Value::Uint(1))])),
            "field Nodes: expected array, found integer"
        );
        assert_eq!(
            err(map(vec![("Nodes", Value::Array(vec![s("a")]))])),
            "deployment node: expected a map, found string"
        );
        assert_eq!(
            err(map(vec![(
                "Nodes",
                Value::Array(vec![map(vec![("Version", Value::Int(-1))])])
            )])),
            "field Version: expected unsigned integer, found integer"
        );
        assert_eq!(
            err(Value::Uint(1)),
            "deployment: expected a map, found integer"
        );
    }
}

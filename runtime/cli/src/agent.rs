//! `hearsay agent`: flags and config files become an agent config
//! ([`hearsay_agent::config`]), then the agent runs ([`hearsay_agent::run`]) until it is told
//! to leave or stop.

use hearsay_agent::config::flags::{self, Command};
use hearsay_agent::run::{self, Logging};
use std::process::ExitCode;

const HELP: &str = r#"Usage: hearsay agent [options]

  Starts the hearsay agent and runs until an interrupt is received. The agent
  represents a single node in a cluster. Flags take Serf's spellings; -flag=value,
  -flag value, --flag=value and --flag value all work. Flags override config files.

Options:

  -dev                     Development mode: no other flag needed. Binds 127.0.0.1:7946
                           (a free port if that one is busy), RPC on 127.0.0.1:7373,
                           the "local" timing profile and log level debug.
  -bind=0.0.0.0:7946       Address to bind the gossip listeners (UDP and TCP) to. The port
                           defaults to 7946. To use an IPv6 address, specify [::1] or
                           [::1]:7946.
  -iface=name              Network interface to bind to. Can be used instead of -bind if the
                           interface is known but not the address (its first address that is
                           not link-local is used). If both are given, the interface must
                           have the -bind address. Also the multicast device for -discover.
  -advertise=addr          Address to advertise to the other cluster members (default: the
                           bind address, or this host's outward address when binding
                           0.0.0.0).
  -config-file=foo         Path to a config file: JSON (Serf's format) or, when the name ends
                           in ".toml", TOML with the same keys. Can be given many times.
  -config-dir=foo          Path to a directory whose "*.json" and "*.toml" files are read as
                           config files in lexical order. Can be given many times.
  -discover=cluster        A cluster name used to discover peers with mDNS (Serf's
                           _serf_<cluster>._tcp.local. service, IPv4 multicast): on networks
                           that support multicast, agents of the same cluster, hearsay or
                           Serf, join each other without an explicit join.
  -encrypt=foo             Key for encrypting network traffic within the cluster.
                           Must be a base64-encoded 16, 24 or 32-byte key.
  -keyring-file=path       A JSON list of base64 keys to load the keyring from (the first is
                           the primary key). Not allowed together with -encrypt.
  -join=addr               An agent to join at start. Can be given many times. The agent
                           exits if none of them can be reached.
  -retry-join=addr         An agent to join, retrying until it succeeds. Can be given many
                           times. Unlike -join, a failure does not stop the agent.
  -retry-interval=30s      How long to wait between -retry-join attempts (at least 1s).
  -retry-max=0             How many times to retry -retry-join before exiting with an error
                           (0: retry forever).
  -replay                  Replay past user events when joining at start.
  -log-level=info          Log level: trace, debug, info, warn or err.
  -log-json                Write logs as JSON objects, one per line.
  -node=hostname           Name of this node. Must be unique in the cluster.
  -profile=lan             Timing profile: lan, wan or local.
  -protocol=5              Serf protocol version to speak (2 to 5). Defaults to the latest,
                           but can be set back for upgrades.
  -rejoin                  Ignore a previous leave and rejoin the cluster at start.
                           Only works together with -snapshot.
  -role=foo                Deprecated: the same as -tag role=foo.
  -rpc-addr=127.0.0.1:7373 Address to bind the RPC listener to.
  -rpc-auth=key            Require this key from RPC clients (Serf's auth command).
  -rpc-max-connections=256 The most RPC connections open at once (0: no cap, as Serf);
                           one over it is closed as soon as it is accepted.
  -snapshot=path           Snapshot file: stores alive nodes and event clocks so the agent
                           can rejoin the cluster and avoid replaying events after a restart.
  -tag key=value           A tag of this node. Can be given many times.
  -tags-file=path          JSON file holding the node's tags (read at start and on SIGHUP).
                           Not allowed together with -tag or tags in a config file.
  -handler=FILTER=PATH     Run the WebAssembly component PATH (built for wasm32-wasip2) for
                           events passing FILTER, Serf's -event-handler filter syntax:
                           "member-join,user:deploy", "query:load", "*" (a lone PATH means
                           "*"). Can be given many times; a handler is named after its file.
                           A query handler's reply is this node's response. Limits and
                           grants (read-only dirs such as /proc, env, clocks, emit) are set
                           in [[handler]] blocks of a config file.
  -handler-cache-dir=DIR   Where compiled handler modules are cached; must be owned by the
                           agent's user and not writable by others (default:
                           $XDG_CACHE_HOME/hearsay/wasm-cache, else
                           ~/.cache/hearsay/wasm-cache, else /var/cache/hearsay/wasm-cache
                           for root).
  -handler-memory-total=1GiB
                           The linear memory of all running handler instances together;
                           an instance that would grow past it traps with this reason.
  -disable-compression     Do not compress gossip messages.
  -broadcast-timeout=5s    The maximum time to wait for the leave and force-leave
                           broadcasts to go out (at least 1s).
  -leave-on-terminate      On SIGTERM, leave the cluster gracefully (default: stop without
                           leaving).
  -skip-leave-on-interrupt On SIGINT, stop without leaving (default: leave gracefully).

Large query responses (hearsay; see docs/query-replies.md):

  -quic-bind=addr          UDP address of the QUIC endpoint that carries query responses over
                           Serf's 1 KiB limit (default: the gossip IP and a port the OS
                           chooses; set one for firewalls). Advertised in the
                           _hearsay_quic tag.
  -quic-advertise=addr     Address to advertise for QUIC (default: -quic-bind, or the gossip
                           advertise IP when binding 0.0.0.0).
  -quic-identity-file=path Keep this node's self-signed QUIC certificate and key here, so its
                           fingerprint survives restarts (default: a new one each start).
  -quic-ca-file=path       CA mode (mutual TLS): the CA certificate(s) peers must chain to.
  -quic-cert-file=path     CA mode: this node's certificate (PEM), issued by that CA.
  -quic-key-file=path      CA mode: this node's private key (PEM). The three go together.
  -query-response-max-bytes=67108864
                           The largest response this node accepts from one node.
  -query-max-bytes=268435456
                           The most all responses to one of this node's queries may bring.
  -disable-quic            No QUIC endpoint: replies stay within the UDP limit (a larger one
                           is refused), and no large responses are received.

Deploying handlers by event (hearsay; see docs/deploy.md):

  -data-dir=DIR            Where this agent keeps deployed handlers and their modules
                           (DIR/deploy, private to the agent's user); they run again at start,
                           before the agent joins.
  -deploy-key=ed25519:KEY  Trust deployments signed by this key (from `hearsay keygen
                           -deploy`). Can be given many times; needs -data-dir. Without one,
                           the agent accepts no deployment.
  -deploy-module-max-bytes=64MiB
                           The largest module this agent takes or fetches.
  The most a deployed handler may be granted (dirs, env, clocks, emit) is set by
  deploy_grants in a config file; by default, nothing beyond the plain sandbox.

Not supported (an error if used): -syslog, -event-handler.

Signals:

  SIGHUP   re-reads the config files: log level, tags (from the tags file when one is
           used), leave_on_terminate, skip_leave_on_interrupt, and the handler set
           (replaced whole; a handler that fails to load keeps the old set running).
  SIGINT   leaves gracefully (unless skip_leave_on_interrupt), then exits.
  SIGTERM  exits; leaves gracefully first only with leave_on_terminate.
  A second signal during the leave exits at once.

See README.md for every config file key, in JSON and in TOML.
"#;

pub(crate) fn run(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let sources = match flags::parse(args)? {
        Command::Help => {
            println!("{HELP}");
            return Ok(ExitCode::SUCCESS);
        }
        Command::Run(s) => *s,
    };
    let config = sources.load()?;
    // Also installs the log hub the RPC server's `monitor` reads.
    let logging = Logging::init(config.log_level, config.log_json, Vec::new())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let exit = rt.block_on(run::run(config, sources, logging))?;
    Ok(ExitCode::from(exit.code()))
}

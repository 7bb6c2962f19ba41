//! Section 13: handlers that act. What one capability call costs per event (a file written into
//! a granted writable directory, an HTTP GET to a loopback server, a granted command run), beside
//! serf's forked shell handler doing the same job, measured by section 5's code in the same run.
//!
//! Agent level ([`crate::handlers::agent_cost_of`], [`crate::handlers::agent_cpu_of`]): a lone
//! `serf agent` whose handler script does the job, then echoes its line (`JOB && echo ...`), and a
//! lone `hearsay agent` whose `[[handler]]` runs the bench's `act` component with the job's
//! grant, the job picked by its `env` grant; both timed from the agent's `Received event` line to
//! the handler's line. Host level ([`host_cost`]): the same component loaded into a
//! [`hearsay_host::Host`] in the bench process through a [`HandlerSpec`] with the same grants,
//! each event timed from `Host::dispatch` to its outcome.
//!
//! The HTTP server is the bench's own ([`Server`], on 127.0.0.1, one thread per connection,
//! `Connection: close`); it counts the GETs it answered, so a run whose handlers did not reach it
//! says so. serf's script makes its GET with the first client found on this machine: `curl`,
//! else `wget`, else bash's `/dev/tcp` ([`HttpClient`]); nothing is installed for it. The full
//! run measures serf's GET again with each other client found.

use crate::guests::Guests;
use crate::handlers::{
    self, finish, p99, secs, send, AgentCpu, CostSamples, HandlerPlan, Kind, Lone, Scratch,
};
use crate::procs::{Impl, Tools};
use crate::report::{Row, Section};
use crate::stats::{Summary, Unit};
use anyhow::{anyhow, bail, Context, Result};
use hearsay_host::{DirGrant, Embedder, HandlerSpec, HttpAllow, ModuleSource};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a handler does per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// Nothing but its log line: the baseline (serf: section 5's `echo` script).
    Log,
    /// Writes `x\n` to a file in a writable directory.
    Write,
    /// A GET to the bench's loopback server, which must answer 200.
    Http,
    /// Runs `/bin/true`, which must exit 0.
    Command,
}

impl Job {
    /// The jobs measured, in report order.
    pub(crate) const ALL: [Job; 4] = [Job::Log, Job::Write, Job::Http, Job::Command];

    /// How rows name the job.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Job::Log => "log only (baseline)",
            Job::Write => "write a small file",
            Job::Http => "HTTP GET to loopback",
            Job::Command => "run /bin/true",
        }
    }

    /// The `act` guest's `ACT`.
    fn act(self) -> &'static str {
        match self {
            Job::Log => "none",
            Job::Write => "write",
            Job::Http => "http",
            Job::Command => "command",
        }
    }
}

/// The path the servers answer, and the granted URL prefix's path.
const PATH: &str = "/bench";
/// The file each write job writes, inside the granted directory (seen by the guest as `/out`).
const FILE: &str = "f";
/// The command's grant name for the `act` guest.
const COMMAND: &str = "true";
const COMMAND_ARGV: &str = "/bin/true";

// ---------------------------------------------------------------- the loopback server

/// An HTTP server on 127.0.0.1 that answers `GET /bench` with 200 `ok` (anything else 404), one
/// thread per connection, closing each; counts the GETs it answered.
pub(crate) struct Server {
    pub port: u16,
    gets: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub(crate) fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the HTTP server")?;
        let port = listener.local_addr()?.port();
        let gets = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (gets.clone(), stop.clone());
        std::thread::Builder::new()
            .name("bench-http".into())
            .spawn(move || {
                for socket in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(socket) = socket else { continue };
                    let count = count.clone();
                    let _ = std::thread::Builder::new()
                        .name("bench-http-conn".into())
                        .spawn(move || serve(socket, &count));
                }
            })
            .context("starting the HTTP server")?;
        Ok(Self { port, gets, stop })
    }

    /// The URL every handler GETs.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}{PATH}", self.port)
    }

    /// GETs answered with 200 so far.
    pub(crate) fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one request head and answers it.
fn serve(socket: TcpStream, gets: &AtomicUsize) {
    let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(socket);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let ok = request_line.starts_with(&format!("GET {PATH} "));
    let (status, body) = if ok {
        ("200 OK", "ok")
    } else {
        ("404 Not Found", "no")
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // Counted before the answer is written: a client has its answer only after this.
    if ok {
        gets.fetch_add(1, Ordering::SeqCst);
    }
    let mut socket = reader.into_inner();
    let _ = socket.write_all(response.as_bytes());
    let _ = socket.flush();
}

// ---------------------------------------------------------------- serf's HTTP client

/// The program serf's handler script sends its GET with: the first of `curl`, `wget` and bash
/// (its `/dev/tcp`) found on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpClient {
    /// `curl`, `wget` or `bash`.
    pub name: &'static str,
    pub path: PathBuf,
    /// The first line of its `--version`.
    pub version: String,
}

impl HttpClient {
    /// The clients on this machine, in that order of preference.
    pub(crate) fn find_all() -> Vec<Self> {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        ["curl", "wget", "bash"]
            .into_iter()
            .filter_map(|name| {
                let path = std::env::split_paths(&path)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())?;
                let out = std::process::Command::new(&path)
                    .arg("--version")
                    .output()
                    .ok()
                    .filter(|o| o.status.success())?;
                let version = short_version(&String::from_utf8_lossy(&out.stdout));
                Some(Self {
                    name,
                    path,
                    version,
                })
            })
            .collect()
    }

    /// The script line that GETs `http://127.0.0.1:PORT/bench` and fails unless it is answered
    /// with 200.
    pub(crate) fn line(&self, port: u16) -> String {
        self.line_for(&port.to_string())
    }

    /// [`Self::line`] with `port` as given (the report shows `PORT`).
    fn line_for(&self, port: &str) -> String {
        let p = self.path.display();
        let url = format!("http://127.0.0.1:{port}{PATH}");
        match self.name {
            "curl" => format!("{p} -sf -o /dev/null {url}"),
            "wget" => format!("{p} -q -O /dev/null {url}"),
            _ => format!(
                "{p} -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && printf \"GET {PATH} HTTP/1.1\\r\\n\
Host: 127.0.0.1:{port}\\r\\nConnection: close\\r\\n\\r\\n\" >&3 && read -r v s r <&3 && [ \"$s\" = 200 ]'"
            ),
        }
    }
}

/// The first line of a `--version` output, without its build details: `curl 7.88.1`, `GNU Wget
/// 1.21.3`, `GNU bash, version 5.2.15(1)-release`.
fn short_version(out: &str) -> String {
    let line = out.lines().next().unwrap_or_default();
    let line = line.split(" (").next().unwrap_or_default();
    line.split(" built on")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

// ---------------------------------------------------------------- the jobs' settings

/// What every job needs for one implementation: a directory to write into, the server.
struct Setting<'a> {
    /// The writable directory (serf's script writes here; hearsay's guest sees it as `/out`).
    dir: PathBuf,
    server: &'a Server,
    client: Option<&'a HttpClient>,
}

impl Setting<'_> {
    /// The handler doing `job` on `imp`'s agent.
    fn kind(&self, job: Job, imp: Impl) -> Result<Kind> {
        let out = |line: String| Kind::Act {
            serf: line,
            grants: String::new(),
        };
        Ok(match (imp, job) {
            // serf's baseline is section 5's script.
            (Impl::Serf, Job::Log) => Kind::Echo,
            (Impl::Serf, Job::Write) => out(format!("echo x > {}/{FILE}", self.dir.display())),
            (Impl::Serf, Job::Http) => out(self
                .client
                .context("no HTTP client (curl, wget or bash) for serf's script")?
                .line(self.server.port)),
            (Impl::Serf, Job::Command) => out(COMMAND_ARGV.to_owned()),
            (Impl::Hearsay, job) => Kind::Act {
                serf: String::new(),
                grants: self.grants_toml(job),
            },
        })
    }

    /// `ACT` and `TARGET` for the guest.
    fn env(&self, job: Job) -> [(String, String); 2] {
        let target = match job {
            Job::Log => String::new(),
            Job::Write => format!("/out/{FILE}"),
            Job::Http => self.server.url(),
            Job::Command => COMMAND.to_owned(),
        };
        [("ACT".into(), job.act().into()), ("TARGET".into(), target)]
    }

    /// The granted URL prefix.
    fn http_allow(&self) -> String {
        format!("http://127.0.0.1:{}{PATH}", self.server.port)
    }

    /// The `grants` inline table's contents for a `[[handler]]` block.
    fn grants_toml(&self, job: Job) -> String {
        let env = self
            .env(job)
            .iter()
            .map(|(k, v)| format!("{k} = {v:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let grant = match job {
            Job::Log => String::new(),
            Job::Write => format!(", write_dirs = [\"{}:/out\"]", self.dir.display()),
            Job::Http => format!(", http = [{:?}]", self.http_allow()),
            Job::Command => format!(", commands = {{ {COMMAND:?} = [{COMMAND_ARGV:?}] }}"),
        };
        format!("env = {{ {env} }}{grant}")
    }

    /// The same handler for a host in this process.
    fn spec(&self, job: Job, module: &Path, queue: usize) -> Result<HandlerSpec> {
        let mut spec = HandlerSpec::new("act", ModuleSource::Path(module.to_path_buf()));
        spec.limits.queue = queue.max(1);
        spec.grants.env = self.env(job).to_vec();
        match job {
            Job::Log => {}
            Job::Write => spec.grants.write_dirs.push(DirGrant {
                host: self.dir.clone(),
                guest: "/out".into(),
            }),
            Job::Http => spec.grants.http.push(
                self.http_allow()
                    .parse::<HttpAllow>()
                    .map_err(|e| anyhow!("http grant: {e}"))?,
            ),
            Job::Command => {
                spec.grants
                    .commands
                    .insert(COMMAND.into(), vec![COMMAND_ARGV.into()]);
            }
        }
        Ok(spec)
    }

    /// After a job's events: that they did their work (the file holds `x\n`).
    fn check_file(&self) -> Result<()> {
        let p = self.dir.join(FILE);
        let got =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        if got != "x\n" {
            bail!("{} holds {got:?}, not \"x\\n\"", p.display());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- measuring

/// How much to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CapPlan {
    /// Agent level: `rounds` of `events` one at a time and a burst of `events`; the CPU figure's
    /// `rounds` bursts of `cpu_events` (section 5's plan; its other fields are unused).
    pub agent: HandlerPlan,
    /// Host level: untimed events, then rounds of events one at a time.
    pub host_warmup: usize,
    pub host_rounds: usize,
    pub host_events: usize,
    /// serf's HTTP job again with each client found after the first.
    pub other_clients: bool,
}

impl CapPlan {
    pub(crate) fn new(quick: bool) -> Self {
        let agent = |rounds, events, cpu_events| HandlerPlan {
            rounds,
            events,
            slow_single: 0,
            slow_stream: 0,
            footprint_reps: 0,
            cpu_events,
        };
        if quick {
            Self {
                agent: agent(1, 20, 20),
                host_warmup: 3,
                host_rounds: 1,
                host_events: 20,
                other_clients: false,
            }
        } else {
            Self {
                agent: agent(5, 100, 200),
                host_warmup: 20,
                host_rounds: 5,
                host_events: 100,
                other_clients: true,
            }
        }
    }
}

/// One implementation's figures for one job.
#[derive(Debug, Default)]
pub(crate) struct ImplSamples {
    pub cost: CostSamples,
    pub cpu: AgentCpu,
    /// CPU per event with the handler − without, burst by burst.
    pub handler_cpu: Vec<f64>,
}

/// One job's figures.
#[derive(Debug, Default)]
pub(crate) struct JobSamples {
    pub serf: ImplSamples,
    pub hearsay: ImplSamples,
    /// hearsay's handler alone, dispatch → outcome, one at a time.
    pub host: CostSamples,
}

/// hearsay's `act` handler alone (host level) doing `job`: per event, dispatch → outcome.
fn host_cost(module: &Path, setting: &Setting<'_>, job: Job, plan: CapPlan) -> Result<CostSamples> {
    let host = handlers::host(2)?;
    let spec = setting.spec(job, module, plan.host_events + 1)?;
    let h = host
        .load(spec)
        .with_context(|| format!("loading {}", module.display()))?;
    let emb: Arc<dyn Embedder> = Arc::new(Lone);
    let mut ltime = 0;
    let mut next = || {
        ltime += 1;
        handlers::user("e", ltime)
    };
    for _ in 0..plan.host_warmup.max(1) {
        finish(&send(&host, &h, next(), &emb)?)?;
    }
    let mut out = CostSamples::default();
    for _ in 0..plan.host_rounds {
        let mut times = Vec::with_capacity(plan.host_events);
        for _ in 0..plan.host_events {
            let t0 = Instant::now();
            let t = send(&host, &h, next(), &emb)?;
            times.push(secs(finish(&t)?.saturating_duration_since(t0)));
        }
        out.p99.push(p99(&times));
        out.per_event.extend(times);
    }
    out.timed = plan.host_warmup.max(1) + plan.host_rounds * plan.host_events;
    Ok(out)
}

/// Section 5's time and CPU measurements of `job` on `imp`'s agent; `without` is the CPU of the
/// same agent without a handler. Checks that the events did their work.
fn agent_job(
    tools: &Tools,
    guests: &Guests,
    imp: Impl,
    setting: &Setting<'_>,
    job: Job,
    plan: CapPlan,
    without: &[f64],
) -> Result<ImplSamples> {
    let kind = setting.kind(job, imp)?;
    let gets0 = setting.server.gets();
    let _ = std::fs::remove_file(setting.dir.join(FILE));
    let cost = handlers::agent_cost_of(tools, Some(guests), imp, plan.agent, kind.clone())?;
    let cpu = handlers::agent_cpu_of(tools, Some(guests), imp, plan.agent, Some(kind))?;
    match job {
        Job::Write => setting.check_file()?,
        Job::Http => {
            let (got, want) = (setting.server.gets() - gets0, cost.timed + cpu.timed);
            if got != want {
                bail!("the server answered {got} GETs for {want} events handled");
            }
        }
        Job::Log | Job::Command => {}
    }
    let handler_cpu = cpu
        .per_event
        .iter()
        .zip(without)
        .map(|(w, wo)| w - wo)
        .collect();
    Ok(ImplSamples {
        cost,
        cpu,
        handler_cpu,
    })
}

// ---------------------------------------------------------------- the section

fn median(samples: &[f64]) -> Option<f64> {
    Summary::of(samples).map(|s| s.median)
}

/// `serf's is 12.3× hearsay's` from two sample sets, or why not.
fn times(serf: &[f64], hearsay: &[f64]) -> String {
    match (median(serf), median(hearsay)) {
        (Some(s), Some(h)) if h > 0.0 => format!("serf's is {:.1}× hearsay's", s / h),
        _ => "no ratio (serf or hearsay not measured)".to_owned(),
    }
}

/// `+1.2 ms over log only` for a job's median over the baseline's, or empty.
fn added(job: &[f64], base: &[f64]) -> Option<String> {
    let (j, b) = (median(job)?, median(base)?);
    let d = j - b;
    Some(format!(
        "{}{}",
        if d < 0.0 { "−" } else { "+" },
        Unit::Secs.fmt(d.abs())
    ))
}

/// The section's rows: per job, the agents' time (p50, p99 of a round), burst throughput and
/// CPU, and hearsay's handler alone at host level; after the HTTP job's, serf's GET with each
/// other client (`others`) beside the same hearsay samples; then the agents' CPU without a
/// handler (`without`: serf's, hearsay's).
pub(crate) fn rows(
    results: &[(Job, JobSamples)],
    others: &[(HttpClient, ImplSamples)],
    without: (&[f64], &[f64]),
) -> Vec<Row> {
    let base = results.iter().find(|(j, _)| *j == Job::Log).map(|(_, s)| s);
    let over = |job: Job, pick: &dyn Fn(&ImplSamples) -> &Vec<f64>, s: &JobSamples| {
        let b = base.filter(|_| job != Job::Log)?;
        Some(format!(
            "; the call adds serf {}, hearsay {} over log only",
            added(pick(&s.serf), pick(&b.serf))?,
            added(pick(&s.hearsay), pick(&b.hearsay))?
        ))
    };
    let mut rows = Vec::new();
    for (job, s) in results {
        let (job, label) = (*job, job.label());
        let mut p50 = Row::new(
            &format!("{label}: handler time per event (p50)"),
            1,
            Unit::Secs,
        )
        .serf(&s.serf.cost.per_event)
        .hearsay(&s.hearsay.cost.per_event)
        .reference(format!(
            "agents; {}{}",
            times(&s.serf.cost.per_event, &s.hearsay.cost.per_event),
            over(job, &|i| &i.cost.per_event, s).unwrap_or_default()
        ));
        if job != Job::Log {
            p50 = p50.headline();
        }
        rows.push(p50);
        rows.push(
            Row::new(
                &format!("{label}: handler time per event (p99 of a round)"),
                1,
                Unit::Secs,
            )
            .serf(&s.serf.cost.p99)
            .hearsay(&s.hearsay.cost.p99)
            .reference(format!(
                "agents; {}",
                times(&s.serf.cost.p99, &s.hearsay.cost.p99)
            )),
        );
        rows.push(
            Row::new(
                &format!("{label}: handler throughput, burst (events/s)"),
                1,
                Unit::Count(" ev/s"),
            )
            .serf(&s.serf.cost.per_sec)
            .hearsay(&s.hearsay.cost.per_sec)
            .reference("above 1.00× hearsay handles more per second; agents"),
        );
        rows.push(
            Row::new(
                &format!("{label}: CPU per event spent on the handler"),
                1,
                Unit::Secs,
            )
            .serf(&s.serf.handler_cpu)
            .hearsay(&s.hearsay.handler_cpu)
            .reference(format!(
                "agent CPU with the handler − without, per burst, child processes included; {}{}",
                times(&s.serf.handler_cpu, &s.hearsay.handler_cpu),
                over(job, &|i| &i.handler_cpu, s).unwrap_or_default()
            )),
        );
        rows.push(
            Row::new(
                &format!("{label}: agent CPU per event, with the handler"),
                1,
                Unit::Secs,
            )
            .serf(&s.serf.cpu.per_event)
            .hearsay(&s.hearsay.cpu.per_event)
            .reference(match job {
                Job::Log | Job::Write => "serf: its `sh` processes included",
                Job::Http => "serf: its `sh` and HTTP client processes included",
                Job::Command => {
                    "serf: its `sh` and `/bin/true` processes included; hearsay: its `/bin/true`"
                }
            }),
        );
        let serf_vs_host = match (median(&s.serf.cost.per_event), median(&s.host.per_event)) {
            (Some(a), Some(h)) if h > 0.0 => {
                format!(
                    "host level, no agent: serf's agent p50 is {:.1}× this",
                    a / h
                )
            }
            _ => "host level, no agent".to_owned(),
        };
        rows.push(
            Row::new(
                &format!("{label}: hearsay handler alone per event (p50)"),
                1,
                Unit::Secs,
            )
            .hearsay(&s.host.per_event)
            .reference(serf_vs_host),
        );
        rows.push(
            Row::new(
                &format!("{label}: hearsay handler alone per event (p99 of a round)"),
                1,
                Unit::Secs,
            )
            .hearsay(&s.host.p99)
            .reference("host level, no agent"),
        );
        if job != Job::Http {
            continue;
        }
        for (c, o) in others {
            let name = format!("{label}, serf's script with {}", c.name);
            rows.push(
                Row::new(
                    &format!("{name}: handler time per event (p50)"),
                    1,
                    Unit::Secs,
                )
                .serf(&o.cost.per_event)
                .hearsay(&s.hearsay.cost.per_event)
                .reference(format!(
                    "agents; serf `{}` ({}); hearsay: its one measurement, as above; {}",
                    c.line_for("PORT"),
                    c.version,
                    times(&o.cost.per_event, &s.hearsay.cost.per_event)
                )),
            );
            rows.push(
                Row::new(
                    &format!("{name}: CPU per event spent on the handler"),
                    1,
                    Unit::Secs,
                )
                .serf(&o.handler_cpu)
                .hearsay(&s.hearsay.handler_cpu)
                .reference(format!(
                    "as above; {}",
                    times(&o.handler_cpu, &s.hearsay.handler_cpu)
                )),
            );
        }
    }
    rows.push(
        Row::new("agent CPU per event, no handler", 1, Unit::Secs)
            .serf(without.0)
            .hearsay(without.1)
            .reference("subtracted, burst by burst, from each job's CPU with the handler"),
    );
    rows
}

/// The section's prose.
pub(crate) fn intro(plan: CapPlan, client: Option<&HttpClient>) -> String {
    let a = plan.agent;
    let http = match client {
        Some(c) => format!(
            "`{}` ({}; the first of curl, wget and bash found on `PATH`: `{}`)",
            c.name,
            c.version,
            c.line_for("PORT")
        ),
        None => "none found (curl, wget or bash): serf's HTTP figures are not measured".to_owned(),
    };
    let others = if plan.other_clients {
        " (then again with each other of them found, in rows naming the client, beside the \
same hearsay samples)"
    } else {
        ""
    };
    format!(
        "Handlers that act through a granted capability, beside serf's event handler script \
doing the same job, measured in the same run by section 5's code. Jobs: write a small file \
(serf: `echo x > DIR/f`; hearsay: `std::fs::write(\"/out/f\", \"x\\n\")` with \
`grants.write_dirs = [\"DIR:/out\"]`), an HTTP GET to a loopback server the bench runs \
(127.0.0.1, one thread per connection, `Connection: close`, answering `GET /bench` with 200 \
`ok`; serf: {http}{others}; hearsay: `hearsay_sdk::http::get` through wasi:http with `grants.http = \
[\"http://127.0.0.1:PORT/bench\"]`, each GET a new connection), and run a command (serf: \
`/bin/true` from the script; hearsay: `hearsay_sdk::commands::run(\"true\")` with \
`grants.commands = {{ true = [\"/bin/true\"] }}`, the host spawning it); and the baseline, \
the handler that only logs (serf: section 5's `echo` script; hearsay: the same component \
doing nothing), so each call's own share shows. hearsay: one component, the bench's `act` \
(`runtime/bench/guests/act`), the job picked by its `grants.env` (`ACT`, `TARGET`); it checks \
its call (the GET answered 200, the command exited 0) and logs its line only then. serf: the \
script is `JOB && echo \"h $SERF_USER_EVENT\"`, so its line also comes only when the job \
succeeded. Checked after each agent: the file holds `x\\n`, and the server answered one GET per \
event handled. Agent level, as section 5: a lone `serf agent` and a lone `hearsay agent` fed \
user events over RPC; one untimed event, then {} round(s) of {} events one at a time, each \
timed from the agent's `Received event: user-event` line to the handler's line (p50 over all \
events; p99 per round; hearsay past its 50 lines per second log budget timed to the host's \
summary line at the event's end), and a burst of {} fired at once (events/s); CPU: {} burst(s) \
of {} events into an agent with the handler, less the same into one without a handler, per \
event, from `/proc` (the agent's threads' `schedstat` plus its reaped children's \
`cutime`+`cstime`: serf's `sh`, `curl` and `true`, hearsay's `true`; the server's CPU is the \
bench's, in neither). Host level, hearsay alone: the same component and grants through a \
`HandlerSpec` into a `hearsay-host` in the bench process (2 threads, no agent, no log pipe), \
{} untimed events, then {} round(s) of {} user events one at a time, `Host::dispatch` to the \
outcome on its ticket.",
        a.rounds,
        a.events,
        a.events,
        a.rounds,
        a.cpu_events,
        plan.host_warmup.max(1),
        plan.host_rounds,
        plan.host_events,
    )
}

/// Section 13: measures every job on both agents and at host level, and renders the rows.
pub(crate) fn section(tools: &Tools, wasm_dir: Option<&Path>, plan: CapPlan) -> Section {
    let clients = HttpClient::find_all();
    let client = clients.first().cloned();
    let mut sec = Section {
        title: "13. Handlers that act: capability calls".into(),
        intro: intro(plan, client.as_ref()),
        ..Section::default()
    };
    let guests = match crate::guests::locate(wasm_dir) {
        Ok(g) if g.act.is_some() => g,
        Ok(_) => {
            sec.notes
                .push("not measured: the bench's `act` guest is not in --wasm-dir".to_owned());
            return sec;
        }
        Err(e) => {
            sec.notes.push(format!(
                "not measured: the wasm components are unavailable: {}",
                crate::first_line(&format!("{e:#}"))
            ));
            return sec;
        }
    };
    let module = guests.act.clone().unwrap_or_default();
    if tools.serf.is_none() {
        sec.notes
            .push("serf was not measured (not installed or --no-serf).".to_owned());
    }
    let have_agent = tools.agent.is_some();
    if !have_agent {
        sec.notes.push(
            "hearsay's agent figures not measured: the `hearsay` binary is not built".to_owned(),
        );
    }
    let server = match Server::start() {
        Ok(s) => s,
        Err(e) => {
            sec.notes.push(format!("not measured: {e:#}"));
            return sec;
        }
    };
    let scratch = match Scratch::new("caps") {
        Ok(s) => s,
        Err(e) => {
            sec.notes.push(format!("not measured: {e:#}"));
            return sec;
        }
    };
    let setting = |imp: Impl| {
        let dir = scratch.0.join(match imp {
            Impl::Serf => "serf",
            Impl::Hearsay => "hearsay",
        });
        let _ = std::fs::create_dir_all(&dir);
        Setting {
            dir,
            server: &server,
            client: client.as_ref(),
        }
    };
    let impls: Vec<Impl> = [Impl::Serf, Impl::Hearsay]
        .into_iter()
        .filter(|imp| match imp {
            Impl::Serf => tools.serf.is_some(),
            Impl::Hearsay => have_agent,
        })
        .collect();
    // Each agent's CPU without a handler, once.
    let mut without: Vec<(Impl, Vec<f64>)> = Vec::new();
    for &imp in &impls {
        let cpu = crate::attempt(
            "capabilities: CPU without a handler",
            imp.label(),
            &mut sec.notes,
            || handlers::agent_cpu_of(tools, Some(&guests), imp, plan.agent, None),
        );
        without.push((imp, cpu.map(|c| c.per_event).unwrap_or_default()));
    }
    let mut results = Vec::new();
    let host_setting = Setting {
        dir: scratch.0.join("host"),
        server: &server,
        client: client.as_ref(),
    };
    let _ = std::fs::create_dir_all(&host_setting.dir);
    for job in Job::ALL {
        let mut samples = JobSamples::default();
        for (imp, base) in &without {
            let s = setting(*imp);
            let what = format!("capabilities: {}", job.label());
            let got = crate::attempt(&what, imp.label(), &mut sec.notes, || {
                agent_job(tools, &guests, *imp, &s, job, plan, base)
            });
            if let Some(got) = got {
                if got.cost.summarised + got.cpu.summarised > 0 {
                    sec.notes.push(format!(
                        "{}, hearsay: {} of {} timed events (warm-up included) and {} of {} CPU \
events went past the handler's log budget and ended at the host's summary line.",
                        job.label(),
                        got.cost.summarised,
                        got.cost.timed,
                        got.cpu.summarised,
                        got.cpu.timed
                    ));
                }
                match imp {
                    Impl::Serf => samples.serf = got,
                    Impl::Hearsay => samples.hearsay = got,
                }
            }
        }
        let what = format!("capabilities: {}, host level", job.label());
        if let Some(h) = crate::attempt(&what, "hearsay", &mut sec.notes, || {
            let gets0 = server.gets();
            let out = host_cost(&module, &host_setting, job, plan)?;
            match job {
                Job::Write => host_setting.check_file()?,
                Job::Http if server.gets() - gets0 != out.timed => bail!(
                    "the server answered {} GETs for {} events",
                    server.gets() - gets0,
                    out.timed
                ),
                _ => {}
            }
            Ok(out)
        }) {
            samples.host = h;
        }
        results.push((job, samples));
    }
    let mut others = Vec::new();
    let serf_base = without.iter().find(|(imp, _)| *imp == Impl::Serf);
    if let (true, Some((_, base))) = (plan.other_clients, serf_base) {
        for c in clients.iter().skip(1) {
            let s = Setting {
                client: Some(c),
                ..setting(Impl::Serf)
            };
            let what = format!(
                "capabilities: {}, serf's script with {}",
                Job::Http.label(),
                c.name
            );
            if let Some(got) = crate::attempt(&what, "serf", &mut sec.notes, || {
                agent_job(tools, &guests, Impl::Serf, &s, Job::Http, plan, base)
            }) {
                others.push((c.clone(), got));
            }
        }
    }
    sec.notes.push(format!(
        "Checks passed where figures are shown: the loopback server answered {} GETs in all, \
one per event the HTTP handlers ran; every write job left `x\\n` in its file.",
        server.gets()
    ));
    let base = |want: Impl| {
        without
            .iter()
            .find(|(imp, _)| *imp == want)
            .map_or(&[][..], |(_, v)| v.as_slice())
    };
    sec.rows = rows(&results, &others, (base(Impl::Serf), base(Impl::Hearsay)));
    sec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(server: &Server) -> Setting<'_> {
        Setting {
            dir: PathBuf::from("/tmp/caps/hearsay"),
            server,
            client: None,
        }
    }

    #[test]
    fn the_server_answers_get_bench_and_counts() {
        let server = Server::start().unwrap();
        let ask = |line: &str| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            write!(s, "{line}\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            std::io::Read::read_to_string(&mut s, &mut out).unwrap();
            out
        };
        assert!(ask("GET /bench HTTP/1.1").starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(ask("GET /other HTTP/1.1").starts_with("HTTP/1.1 404"));
        assert!(ask("GET /bench HTTP/1.1").ends_with("\r\n\r\nok"));
        assert_eq!(server.gets(), 2);
    }

    #[test]
    fn grants_and_scripts_name_the_job() {
        let server = Server::start().unwrap();
        let s = setting(&server);
        let port = server.port;
        assert_eq!(
            s.grants_toml(Job::Write),
            "env = { ACT = \"write\", TARGET = \"/out/f\" }, write_dirs = [\"/tmp/caps/hearsay:/out\"]"
        );
        assert_eq!(
            s.grants_toml(Job::Http),
            format!(
                "env = {{ ACT = \"http\", TARGET = \"http://127.0.0.1:{port}/bench\" }}, \
http = [\"http://127.0.0.1:{port}/bench\"]"
            )
        );
        assert_eq!(
            s.grants_toml(Job::Command),
            "env = { ACT = \"command\", TARGET = \"true\" }, commands = { \"true\" = [\"/bin/true\"] }"
        );
        assert_eq!(
            s.grants_toml(Job::Log),
            "env = { ACT = \"none\", TARGET = \"\" }"
        );
        let spec = s.spec(Job::Http, Path::new("/x.wasm"), 10).unwrap();
        assert_eq!(spec.grants.http.len(), 1);
        assert!(spec.grants.write_dirs.is_empty() && spec.grants.commands.is_empty());
        let spec = s.spec(Job::Command, Path::new("/x.wasm"), 10).unwrap();
        assert_eq!(spec.grants.commands["true"], ["/bin/true"]);
        assert_eq!(s.kind(Job::Log, Impl::Serf).unwrap(), Kind::Echo);
        assert_eq!(
            s.kind(Job::Write, Impl::Serf).unwrap(),
            Kind::Act {
                serf: "echo x > /tmp/caps/hearsay/f".into(),
                grants: String::new()
            }
        );
        // No client: serf's HTTP job cannot run.
        assert!(s.kind(Job::Http, Impl::Serf).is_err());
    }

    #[test]
    fn versions_are_cut_short() {
        assert_eq!(
            short_version(
                "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.19\nRelease-Date: x"
            ),
            "curl 7.88.1"
        );
        assert_eq!(
            short_version("GNU Wget 1.21.3 built on linux-gnu.\n\n-cares +digest"),
            "GNU Wget 1.21.3"
        );
        assert_eq!(
            short_version("GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)\n"),
            "GNU bash, version 5.2.15(1)-release"
        );
    }

    #[test]
    fn each_http_client_gets_the_page() {
        let server = Server::start().unwrap();
        let mut ran = 0;
        for (name, bin) in [
            ("curl", "/usr/bin/curl"),
            ("wget", "/usr/bin/wget"),
            ("bash", "/bin/bash"),
        ] {
            if !Path::new(bin).is_file() {
                continue;
            }
            let c = HttpClient {
                name,
                path: bin.into(),
                version: String::new(),
            };
            let status = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(c.line(server.port))
                .status()
                .unwrap();
            assert!(status.success(), "{name}: {}", c.line(server.port));
            ran += 1;
            assert_eq!(server.gets(), ran, "{name}");
        }
        // A client fails on a status other than 200.
        if Path::new("/bin/bash").is_file() {
            let c = HttpClient {
                name: "bash",
                path: "/bin/bash".into(),
                version: String::new(),
            };
            let line = c.line(server.port).replace("GET /bench", "GET /nope");
            let status = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(line)
                .status()
                .unwrap();
            assert!(!status.success());
        }
    }

    #[test]
    fn rows_carry_ratios_and_the_calls_share() {
        let imp = |t: f64, cpu: f64| ImplSamples {
            cost: CostSamples {
                per_event: vec![t; 3],
                p99: vec![t * 3.0],
                per_sec: vec![1.0 / t],
                ..CostSamples::default()
            },
            handler_cpu: vec![cpu; 2],
            ..ImplSamples::default()
        };
        let job = |s: f64, h: f64| JobSamples {
            serf: imp(s, s / 2.0),
            hearsay: imp(h, h / 2.0),
            host: CostSamples {
                per_event: vec![h / 2.0; 3],
                p99: vec![h],
                ..CostSamples::default()
            },
        };
        let results = vec![
            (Job::Log, job(2e-3, 20e-6)),
            (Job::Write, job(3e-3, 30e-6)),
            (Job::Http, JobSamples::default()),
        ];
        let wget = HttpClient {
            name: "wget",
            path: "/usr/bin/wget".into(),
            version: "GNU Wget 1.21.3".into(),
        };
        let others = vec![(wget, imp(6e-3, 3e-3))];
        let rows = rows(&results, &others, (&[1e-3], &[]));
        assert_eq!(rows.len(), 3 * 7 + 2 + 1);
        let w = rows
            .iter()
            .find(|r| {
                r.figure
                    == "HTTP GET to loopback, serf's script with wget: handler time per event (p50)"
            })
            .unwrap();
        assert!(w.serf.is_some() && w.hearsay.is_none());
        assert!(
            w.reference
                .contains("`/usr/bin/wget -q -O /dev/null http://127.0.0.1:PORT/bench`"),
            "{}",
            w.reference
        );
        let heads: Vec<&str> = Row::headlines(&rows).map(|r| r.figure.as_str()).collect();
        assert_eq!(
            heads,
            [
                "write a small file: handler time per event (p50)",
                "HTTP GET to loopback: handler time per event (p50)"
            ]
        );
        let w = &rows[7];
        assert_eq!(w.figure, "write a small file: handler time per event (p50)");
        assert!(
            w.reference
                .contains("serf's is 100.0× hearsay's; the call adds serf +1.0 ms, hearsay +10 µs over log only"),
            "{}",
            w.reference
        );
        let host = rows
            .iter()
            .find(|r| r.figure == "write a small file: hearsay handler alone per event (p50)")
            .unwrap();
        assert!(host.serf.is_none());
        assert!(host.reference.contains("200.0× this"), "{}", host.reference);
        // A job not measured: empty cells, no ratio.
        let h = &rows[14];
        assert!(h.serf.is_none() && h.hearsay.is_none());
        assert!(h.reference.contains("no ratio"), "{}", h.reference);
        let last = rows.last().unwrap();
        assert_eq!(last.figure, "agent CPU per event, no handler");
        assert!(last.serf.is_some() && last.hearsay.is_none());
    }
}

//! scratch: per-event cost of a component at host level (not committed).
use hearsay_host::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Emb;
struct Sink;
#[async_trait]
impl ReplySink for Sink {
    async fn write(&mut self, _c: &[u8]) -> Result<(), ReplyError> {
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<(), ReplyError> {
        Ok(())
    }
}
fn me() -> Member {
    Member {
        name: "m".into(),
        addr: "127.0.0.1".parse().unwrap(),
        port: 1,
        tags: Default::default(),
        status: MemberStatus::Alive,
        rtt: None,
    }
}
#[async_trait]
impl Embedder for Emb {
    async fn local_member(&self) -> Member {
        me()
    }
    async fn members(&self) -> Vec<Member> {
        vec![me()]
    }
    fn open_reply(&self, _q: &Query) -> Result<Box<dyn ReplySink>, ReplyError> {
        Ok(Box::new(Sink))
    }
    async fn emit(&self, _n: &str, _p: &[u8], _c: bool) -> Result<(), EmitError> {
        Ok(())
    }
}
fn cpu() -> Duration {
    let mut r: libc_rusage = unsafe { std::mem::zeroed() };
    unsafe { getrusage(0, &mut r) };
    Duration::from_micros(
        (r.ru_utime.0 * 1_000_000 + r.ru_utime.1 + r.ru_stime.0 * 1_000_000 + r.ru_stime.1) as u64,
    )
}
#[repr(C)]
struct libc_rusage {
    ru_utime: (i64, i64),
    ru_stime: (i64, i64),
    rest: [i64; 14],
}
extern "C" {
    fn getrusage(who: i32, r: *mut libc_rusage) -> i32;
}

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let n: usize = std::env::args().nth(2).map_or(300, |s| s.parse().unwrap());
    let cache = std::env::temp_dir().join("hearsay-measure-cache");
    let host = Host::new(HostConfig {
        workers: 2,
        cache_dir: Some(cache),
        ..HostConfig::default()
    })
    .unwrap();
    let t = Instant::now();
    let h = host
        .load(HandlerSpec::new("x", ModuleSource::Path(path.into())))
        .unwrap();
    eprintln!("load {:?}", t.elapsed());
    let emb: Arc<dyn Embedder> = Arc::new(Emb);
    let ev = || {
        Event::Query(Query {
            id: 1,
            name: "q".into(),
            payload: b"hi".to_vec(),
            ltime: 1,
            source_node: "a".into(),
        })
    };
    for _ in 0..20 {
        if let Dispatch::Queued(t) = host.dispatch(&h, ev(), emb.clone()) {
            t.wait(Duration::from_secs(10));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut times = vec![];
    let c0 = cpu();
    for _ in 0..n {
        let t = Instant::now();
        match host.dispatch(&h, ev(), emb.clone()) {
            Dispatch::Queued(tk) => assert_eq!(tk.wait(Duration::from_secs(10)), Some(Outcome::Ok)),
            Dispatch::Dropped => panic!(),
        }
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    let c = cpu() - c0;
    times.sort();
    eprintln!(
        "p50 {:?} p90 {:?} p99 {:?} cpu/event {:?}",
        times[n / 2],
        times[n * 9 / 10],
        times[n * 99 / 100],
        c / n as u32
    );
}

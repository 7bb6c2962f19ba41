//! Where `hearsay query` puts responses as they arrive, without holding a large one in memory.
//!
//! Whole (UDP) responses print as `serf query` prints them. A large response arrives as pieces
//! (several `response` records for one node, see `hearsay_rpc::server`): on stdout
//! each run of pieces from one node is introduced by a `==> node <==` line (as `tail` does
//! for several files) and the bytes follow as they are; with `-output-dir DIR` every node's
//! response goes into `DIR/<node>` (a failed large response is left as `DIR/<node>.partial`).
//! On a terminal, stderr shows progress: nodes acked and responded, bytes received.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What happened to one node's large response.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Streamed {
    pub bytes: u64,
    pub error: Option<String>,
    pub file: Option<PathBuf>,
    pub done: bool,
}

/// The sink for one query's responses.
pub(super) struct Sink {
    dir: Option<PathBuf>,
    text: bool,
    files: HashMap<String, BufWriter<File>>,
    /// The node whose pieces stdout shows right now.
    current: Option<String>,
    pub acks: Vec<String>,
    /// Whole responses (text); with `-output-dir` the text names the file.
    pub whole: BTreeMap<String, String>,
    pub streamed: BTreeMap<String, Streamed>,
    bytes: u64,
    progress: Option<Instant>,
}

/// A file name for a node: anything but `[A-Za-z0-9._-]` becomes `_`, and `.`/`..` are
/// prefixed, so a node name can never escape the directory.
pub(super) fn file_name(node: &str) -> String {
    let mut name: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        name.insert(0, '_');
    }
    name
}

impl Sink {
    pub(super) fn new(dir: Option<&str>, text: bool) -> Result<Self, String> {
        let dir = dir.map(PathBuf::from);
        if let Some(d) = &dir {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("Error creating output directory {}: {e}", d.display()))?;
        }
        Ok(Self {
            dir,
            text,
            files: HashMap::new(),
            current: None,
            acks: Vec::new(),
            whole: BTreeMap::new(),
            streamed: BTreeMap::new(),
            bytes: 0,
            progress: std::io::stderr().is_terminal().then(Instant::now),
        })
    }

    fn path(&self, node: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(file_name(node)))
    }

    pub(super) fn ack(&mut self, from: String) {
        if self.text {
            self.clear_progress();
            println!("Ack from '{from}'");
        }
        self.acks.push(from);
        self.show_progress(false);
    }

    /// A whole response.
    pub(super) fn response(&mut self, from: String, payload: Vec<u8>) -> Result<(), String> {
        self.bytes += payload.len() as u64;
        if let Some(path) = self.path(&from) {
            std::fs::write(&path, &payload)
                .map_err(|e| format!("Error writing {}: {e}", path.display()))?;
            let note = format!("{} bytes written to {}", payload.len(), path.display());
            if self.text {
                self.clear_progress();
                println!("Response from '{from}': {note}");
            }
            self.whole.insert(from, note);
        } else {
            let text = String::from_utf8_lossy(&payload).into_owned();
            if self.text {
                self.clear_progress();
                let shown = text.strip_suffix('\n').unwrap_or(&text);
                println!("Response from '{from}': {shown}");
            }
            self.whole.insert(from, text);
        }
        self.show_progress(false);
        Ok(())
    }

    /// One piece of a large response.
    pub(super) fn piece(
        &mut self,
        from: String,
        payload: Vec<u8>,
        last: bool,
        error: Option<String>,
    ) -> Result<(), String> {
        self.bytes += payload.len() as u64;
        let entry = self.streamed.entry(from.clone()).or_default();
        entry.bytes += payload.len() as u64;
        if let Some(path) = self.dir.as_ref().map(|d| d.join(file_name(&from))) {
            if !self.files.contains_key(&from) {
                let f = File::create(&path)
                    .map_err(|e| format!("Error creating {}: {e}", path.display()))?;
                self.files.insert(from.clone(), BufWriter::new(f));
                entry.file = Some(path.clone());
            }
            let f = self.files.get_mut(&from).expect("opened above");
            f.write_all(&payload)
                .map_err(|e| format!("Error writing {}: {e}", path.display()))?;
        } else if self.text {
            self.clear_progress();
            let mut out = std::io::stdout().lock();
            let io = |e: std::io::Error| format!("Error writing to stdout: {e}");
            if self.current.as_deref() != Some(from.as_str()) {
                if self.current.is_some() {
                    writeln!(out).map_err(io)?;
                }
                writeln!(out, "==> {from} <==").map_err(io)?;
                self.current = Some(from.clone());
            }
            out.write_all(&payload).map_err(io)?;
            out.flush().map_err(io)?;
        }
        if last {
            self.end_piece(&from, error)?;
        }
        self.show_progress(false);
        Ok(())
    }

    fn end_piece(&mut self, from: &str, error: Option<String>) -> Result<(), String> {
        self.clear_progress();
        let entry = self.streamed.entry(from.to_owned()).or_default();
        entry.done = true;
        if let Some(mut f) = self.files.remove(from) {
            f.flush()
                .map_err(|e| format!("Error writing the response of {from}: {e}"))?;
            if error.is_some() {
                if let Some(path) = entry.file.take() {
                    let partial = path.with_file_name(format!("{}.partial", file_name(from)));
                    let _ = std::fs::rename(&path, &partial);
                    entry.file = Some(partial);
                }
            }
        }
        if self.current.as_deref() == Some(from) {
            println!();
            self.current = None;
        }
        match &error {
            Some(why) => eprintln!(
                "Response from '{from}' failed after {} bytes: {why}",
                entry.bytes
            ),
            None if self.text => match &entry.file {
                Some(p) => println!(
                    "Response from '{from}': {} bytes written to {}",
                    entry.bytes,
                    p.display()
                ),
                None => println!("Response from '{from}' complete: {} bytes", entry.bytes),
            },
            None => {}
        }
        entry.error = error;
        Ok(())
    }

    /// Nodes that answered (whole or large, complete or not).
    pub(super) fn responded(&self) -> usize {
        self.whole.len()
            + self
                .streamed
                .keys()
                .filter(|k| !self.whole.contains_key(*k))
                .count()
    }

    /// Ends the query: responses cut off by the end of the stream count as failed.
    pub(super) fn finish(&mut self) -> Result<(), String> {
        let open: Vec<String> = self
            .streamed
            .iter()
            .filter(|(_, s)| !s.done)
            .map(|(k, _)| k.clone())
            .collect();
        for from in open {
            self.end_piece(
                &from,
                Some("the query ended before the response did".into()),
            )?;
        }
        self.show_progress(true);
        self.clear_progress();
        Ok(())
    }

    fn show_progress(&mut self, force: bool) {
        let Some(last) = self.progress else { return };
        if !force && last.elapsed() < PROGRESS_EVERY {
            return;
        }
        let streaming = self.streamed.values().filter(|s| !s.done).count();
        eprint!(
            "\r\x1b[Kacked {} · responded {} ({streaming} streaming) · {} received",
            self.acks.len(),
            self.responded(),
            human_bytes(self.bytes)
        );
        self.progress = Some(Instant::now());
    }

    fn clear_progress(&self) {
        if self.progress.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

/// `1536` → `1.5 KiB`.
pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_cannot_escape_the_directory() {
        assert_eq!(file_name("web-1.example"), "web-1.example");
        assert_eq!(file_name("../etc/passwd"), ".._etc_passwd");
        assert_eq!(file_name(".."), "_..");
        assert_eq!(file_name("."), "_.");
        assert_eq!(file_name(""), "_");
        assert_eq!(file_name("a b/c"), "a_b_c");
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16 << 20), "16.0 MiB");
    }

    #[test]
    fn pieces_go_to_one_file_per_node_and_failures_are_marked() {
        let dir = std::env::temp_dir().join(format!("hearsay-sink-{}", std::process::id()));
        let mut sink = Sink::new(dir.to_str(), false).unwrap();
        sink.piece("a".into(), b"hello ".to_vec(), false, None)
            .unwrap();
        sink.piece("b".into(), b"xx".to_vec(), false, None).unwrap();
        sink.piece("a".into(), b"world".to_vec(), true, None)
            .unwrap();
        sink.piece("b".into(), Vec::new(), true, Some("reset".into()))
            .unwrap();
        sink.response("c".into(), b"small".to_vec()).unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"hello world");
        assert_eq!(std::fs::read(dir.join("b.partial")).unwrap(), b"xx");
        assert!(!dir.join("b").exists());
        assert_eq!(std::fs::read(dir.join("c")).unwrap(), b"small");
        assert_eq!(sink.responded(), 3);
        assert_eq!(sink.streamed["b"].error.as_deref(), Some("reset"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

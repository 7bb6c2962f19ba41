//! A plain HTTP/1.1 server on 127.0.0.1 for the tests of outbound HTTP (`http.rs`,
//! `languages.rs`): it counts the connections it accepts and records each request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One request a server saw: its head (request line and fields) and body.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: String,
    pub body: Vec<u8>,
}

/// A server on 127.0.0.1 that counts the connections it accepts, records each request, and
/// answers it with `response` (or never, if `None`).
pub struct Server {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    pub fn start(response: Option<Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (count, record) = (accepted.clone(), seen.clone());
        std::thread::spawn(move || {
            // Silent connections are held open until the test binary ends.
            let mut held = Vec::new();
            for socket in listener.incoming() {
                let Ok(socket) = socket else { return };
                count.fetch_add(1, Ordering::SeqCst);
                match &response {
                    None => held.push(socket),
                    Some(response) => {
                        let (record, response) = (record.clone(), response.clone());
                        std::thread::spawn(move || serve(socket, &response, &record));
                    }
                }
            }
        });
        Server {
            port,
            accepted,
            seen,
        }
    }

    pub fn answering(status_line: &str, body: &[u8]) -> Server {
        let mut response = format!(
            "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body);
        Server::start(Some(response))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Reads one request (head, and a body of its Content-Length) and writes `response`.
fn serve(socket: TcpStream, response: &[u8], seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(socket);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    seen.lock().unwrap().push(Seen { head, body });
    let mut socket = reader.into_inner();
    let _ = socket.write_all(response);
}

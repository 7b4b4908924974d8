//! issue 10, defect 1: `detect` must not wait for echo services that cannot answer.
//! Without a default route they are not asked at all; with one they are asked in parallel under
//! one overall deadline (connect timeout + 1 s), and the first valid answer wins.
//! Every server here listens on 127.0.0.1.
mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Accepts connections and never answers (a stalled service); counts the connections.
struct Stall {
    url: String,
    conns: Arc<AtomicUsize>,
}

fn stall_server() -> Stall {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            held.lock().unwrap().push(s); // kept open, never answered
        }
    });
    Stall { url, conns }
}

/// Answers `body` to every request.
fn answer_server(body: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn detect(host: &str, sets: &[String]) -> (Value, Duration) {
    let root = repo(&format!("tests/fixtures/hosts/{host}"));
    let mut args = vec![
        "detect",
        "--format",
        "json",
        "--root",
        root.to_str().unwrap(),
    ];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    let start = Instant::now();
    let o = omlboot(&args);
    let took = start.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    let v = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    (v, took)
}

/// Generous per-request timeouts, as on a real host: only the overall deadline keeps detect short.
fn timeouts(connect_ms: u64) -> Vec<String> {
    vec![
        format!("metadata_connect_timeout_ms={connect_ms}"),
        "metadata_timeout_ms=5000".into(),
        "metadata_retries=2".into(),
    ]
}

#[test]
fn no_default_route_skips_echo_services() {
    let stall = stall_server();
    let mut sets = timeouts(2000);
    sets.push(format!("public_ip_echo_urls={0}/a,{0}/b,{0}/c", stall.url));
    let (f, took) = detect("lan-no-route", &sets);
    assert_eq!(f["default_route_nic"], Value::Null);
    assert_eq!(f["private_ip"], "192.168.10.44");
    assert_eq!(f["public_ip"], Value::Null);
    assert_eq!(f["infra_env"], "lan");
    // The proof is that no echo service was asked; the bound only catches the old behaviour (three
    // services × three attempts × 2 s) with room for a loaded machine's process start-up.
    assert_eq!(
        stall.conns.load(Ordering::SeqCst),
        0,
        "an echo service was asked"
    );
    assert!(took < Duration::from_secs(5), "detect took {took:?}");
}

#[test]
fn echo_services_are_asked_in_parallel_first_answer_wins() {
    let stall = stall_server();
    let good = answer_server("45.33.32.156\n");
    let mut sets = timeouts(2000);
    sets.push(format!("public_ip_echo_urls={}/ip,{good}/ip", stall.url));
    let (f, took) = detect("lan-single", &sets);
    assert_eq!(f["public_ip"], "45.33.32.156", "{f}");
    assert_eq!(f["public_ip_source"], format!("echo:{good}/ip"));
    assert_eq!(f["infra_env"], "nat");
    // Asked one after the other, the stalled service would cost its 2 s timeout before the good one.
    assert!(took < Duration::from_millis(1900), "detect took {took:?}");
}

#[test]
fn silent_echo_services_cost_one_deadline() {
    let (a, b, c) = (stall_server(), stall_server(), stall_server());
    let mut sets = timeouts(500);
    sets.push(format!(
        "public_ip_echo_urls={}/ip,{}/ip,{}/ip",
        a.url, b.url, c.url
    ));
    let (f, took) = detect("lan-single", &sets);
    assert_eq!(f["public_ip"], Value::Null);
    assert_eq!(f["infra_env"], "lan");
    // One deadline (connect timeout 0.5 s + 1 s) for all three, not three services × three attempts
    // one after the other (≥ 4.5 s); the margin is for a loaded machine's process start-up.
    assert!(took < Duration::from_millis(3500), "detect took {took:?}");
    let w = f["warnings"].to_string();
    assert!(w.contains(&a.url) && w.contains(&c.url), "{w}");
    assert!(w.contains("1500 ms"), "{w}");
}

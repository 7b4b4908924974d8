//! The postgres and redis probes speak the protocols themselves (a `podman exec pg_isready` took
//! ~4.5 s per probe in the VM suite's guest): against a real PostgreSQL 15 and a real redis-server
//! (installed with apt-get when missing), and against servers that answer what those would while
//! starting, or that are not those servers at all.
#[path = "backup_support/mod.rs"]
mod backup_support;

use omlboot::apply::runtime::{postgres_ready, redis_ready};
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A one-connection server on 127.0.0.1 that reads what arrives, then answers `reply`.
fn answering(reply: Vec<u8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&reply);
        }
    });
    addr
}

/// An ErrorResponse with SQLSTATE `code`, as the postmaster sends before any authentication.
fn pg_error(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in [(b'S', "FATAL"), (b'C', code), (b'M', message)] {
        body.push(k);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    msg.extend_from_slice(&body);
    msg
}

#[test]
fn postgres_probe_against_a_real_server_and_what_pg_isready_refuses() {
    let c = backup_support::cluster();
    let addr = format!("127.0.0.1:{}", c.pg.port);
    let ok = block_on(postgres_ready(&addr, "postgres", "omnileads"));
    assert!(ok.is_ok(), "{ok:?}");
    // pg_isready's rule: a refused login or an unknown database still means it accepts connections.
    let other = block_on(postgres_ready(&addr, "nobody", "nowhere"));
    assert!(other.is_ok(), "{other:?}");

    let closed = format!("127.0.0.1:{}", closed_port());
    assert!(block_on(postgres_ready(&closed, "postgres", "omnileads")).is_err());
    let starting = answering(pg_error("57P03", "the database system is starting up"));
    let e = block_on(postgres_ready(&starting, "postgres", "omnileads")).unwrap_err();
    assert!(e.contains("starting up") && e.contains("57P03"), "{e}");
    let http = answering(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec());
    let e = block_on(postgres_ready(&http, "postgres", "omnileads")).unwrap_err();
    assert!(e.contains("not a PostgreSQL answer"), "{e}");
    // A server that accepts and never answers is bounded by the attempt's timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = Instant::now();
    let e = block_on(postgres_ready(
        &silent.local_addr().unwrap().to_string(),
        "postgres",
        "omnileads",
    ))
    .unwrap_err();
    assert!(e.contains("no answer"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis(port: u16, extra: &[&str]) -> Redis {
    backup_support::ensure("/usr/bin/redis-server", "redis-server");
    let child = Command::new("/usr/bin/redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Redis(child)
}

#[test]
fn redis_probe_against_a_real_server_with_and_without_a_password() {
    let port = closed_port();
    let _r = redis(port, &[]);
    let ok = block_on(redis_ready(&format!("127.0.0.1:{port}")));
    assert!(ok.as_deref().is_ok_and(|m| m.contains("+PONG")), "{ok:?}");

    let port = closed_port();
    let _r = redis(port, &["--requirepass", "Redis-Pass-1"]);
    let ok = block_on(redis_ready(&format!("127.0.0.1:{port}")));
    assert!(ok.as_deref().is_ok_and(|m| m.contains("NOAUTH")), "{ok:?}");

    let closed = format!("127.0.0.1:{}", closed_port());
    assert!(block_on(redis_ready(&closed)).is_err());
    let loading = answering(b"-LOADING Redis is loading the dataset in memory\r\n".to_vec());
    let e = block_on(redis_ready(&loading)).unwrap_err();
    assert!(e.contains("LOADING"), "{e}");
}

/// The server, and its directory (configuration, certificate), removed after it.
struct Nginx(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Real nginx on 127.0.0.1:`port` with a self-signed certificate, answering 302 as OMniLeads' does
/// for its login page.
fn nginx(port: u16) -> Nginx {
    backup_support::ensure("/usr/sbin/nginx", "nginx-light");
    let dir = tempfile::tempdir().unwrap();
    let pair = omlboot::apply::tls::self_signed(&["127.0.0.1".into()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &pair.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &pair.key_pem).unwrap();
    let d = dir.path().display();
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log; events {{}}
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};
           fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
           server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {d}/cert.pem;
             ssl_certificate_key {d}/key.pem; location / {{ return 302 /accounts/login/; }} }} }}"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new("/usr/sbin/nginx")
        .args(["-c", &format!("{d}/nginx.conf"), "-p", &d.to_string()])
        .spawn()
        .expect("nginx");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx(child, dir)
}

#[test]
fn https_probe_accepts_the_hosts_self_signed_certificate_and_checks_the_status() {
    use omlboot::apply::runtime::{Live, Runtime as _};
    use omlboot::plan::Probe;
    let port = closed_port();
    let _n = nginx(port);
    let probe = |status| Probe::Http {
        url: format!("https://127.0.0.1:{port}/"),
        status,
        deadline_s: 1,
    };
    let ok = block_on(Live.probe_once(&probe(302)));
    assert!(ok.as_deref().is_ok_and(|m| m.contains("302")), "{ok:?}");
    let e = block_on(Live.probe_once(&probe(200))).unwrap_err();
    assert!(e.contains("answered 302, expected 200"), "{e}");
}

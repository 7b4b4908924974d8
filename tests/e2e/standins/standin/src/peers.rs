//! What the stand-ins do beyond checking their environment: reach the peers their env names (PostgreSQL, Redis,
//! AMI, RTPengine's ng control port, the bucket), do the one-shots' real work, and serve the small protocols
//! other components probe (AMI, ng, uwsgi).

use crate::http;
use crate::sigv4;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

pub fn log(msg: &str) {
    let tag = env("E2E_STANDIN_COMPONENT");
    println!("e2e-standin[{tag}]: {msg}");
    let _ = std::io::stdout().flush();
}

/// The image reference baked into the image at build time (per tag).
pub fn image_ref() -> String {
    std::fs::read_to_string("/etc/e2e-standin/image-ref").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

pub fn broken() -> bool {
    std::path::Path::new("/etc/e2e-standin/broken").exists()
}

/// Seconds a peer check retries before giving up (E2E_STANDIN_PEER_TIMEOUT overrides; default 60).
pub fn peer_timeout() -> Duration {
    Duration::from_secs(env("E2E_STANDIN_PEER_TIMEOUT").parse().unwrap_or(60))
}

pub enum Try<T> {
    Done(T),
    /// Worth retrying (connection refused, not ready yet).
    Again(String),
    /// Definitive (wrong password): no retry.
    Fail(String),
}

/// Retries `f` every 2 s until `deadline`; exits 1 with a FATAL line naming `what` otherwise.
pub fn retry<T>(what: &str, f: impl Fn() -> Try<T>) -> T {
    let t0 = Instant::now();
    let limit = peer_timeout();
    let mut last = String::new();
    let mut n = 0;
    loop {
        match f() {
            Try::Done(v) => {
                if n > 0 {
                    log(&format!("{what}: ok after {:.0?}", t0.elapsed()));
                }
                return v;
            }
            Try::Fail(e) => crate::fatal(1, &format!("{what}: {e}")),
            Try::Again(e) => {
                if e != last {
                    log(&format!("{what}: not yet: {e} (retrying up to {}s)", limit.as_secs()));
                }
                last = e;
            }
        }
        n += 1;
        if t0.elapsed() >= limit {
            crate::fatal(1, &format!("{what}: gave up after {}s: {last}", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let sa = crate::resolve(addr)?;
    let s = TcpStream::connect_timeout(&sa[0], Duration::from_secs(3)).map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    Ok(s)
}

// ---------------------------------------------------------------- PostgreSQL (psql from the image)

pub fn pg_addr() -> String {
    format!("{}:{}", env("PGHOST"), if env("PGPORT").is_empty() { "5432".into() } else { env("PGPORT") })
}

/// Runs SQL with psql as PGUSER/PGPASSWORD on PGHOST:PGPORT/PGDATABASE. Ok(stdout) or Err(stderr).
pub fn psql(sql: &str) -> Result<String, String> {
    let o = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().replace('\n', " | "))
    }
}

fn pg_transient(e: &str) -> bool {
    e.contains("Connection refused") || e.contains("could not connect") && !e.contains("password") || e.contains("timeout expired")
        || e.contains("the database system is starting up") || e.contains("No route to host") || e.contains("could not translate host name")
}

/// Log in to PostgreSQL (password checked by the server); fail loudly on a refused login.
pub fn pg_login() {
    let what = format!("PostgreSQL at {} as {} (db {})", pg_addr(), env("PGUSER"), env("PGDATABASE"));
    let who = retry(&what, || match psql("select current_user") {
        Ok(u) => Try::Done(u),
        Err(e) if pg_transient(&e) => Try::Again(e),
        Err(e) => Try::Fail(format!("login refused: {e}")),
    });
    log(&format!("PostgreSQL login ok at {} as {who}", pg_addr()));
}

/// Wait until the migrations one-shot created the schema (django_migrations with at least one row).
pub fn pg_wait_schema() {
    let what = format!("schema (django_migrations) in {} at {}: run django_migrations.sh first", env("PGDATABASE"), pg_addr());
    let n = retry(&what, || match psql("select count(*) from django_migrations") {
        Ok(n) if n.parse::<u64>().unwrap_or(0) > 0 => Try::Done(n),
        Ok(_) => Try::Again("django_migrations is empty".into()),
        Err(e) if e.contains("password authentication failed") => Try::Fail(format!("login refused: {e}")),
        Err(e) => Try::Again(e),
    });
    log(&format!("schema present: {n} migration run(s) recorded"));
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS django_migrations (id serial PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied timestamptz NOT NULL DEFAULT now(), image_ref text);
CREATE TABLE IF NOT EXISTS auth_user (id serial PRIMARY KEY, username varchar(150) UNIQUE NOT NULL, password varchar(128) NOT NULL, is_superuser boolean NOT NULL DEFAULT false, is_staff boolean NOT NULL DEFAULT false, is_active boolean NOT NULL DEFAULT true, date_joined timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS e2e_admin_resets (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), image_ref text);";

/// django_migrations.sh: create the schema, record the run with the image reference.
pub fn oneshot_migrations() {
    pg_login();
    let r = image_ref();
    let sql = format!("BEGIN; {SCHEMA} INSERT INTO django_migrations (app, name, image_ref) VALUES ('e2e_standin', '0001_initial', {}); COMMIT;", sql_str(&r));
    match psql(&sql) {
        Ok(_) => {}
        Err(e) => crate::fatal(1, &format!("migrations failed on {}: {e}", pg_addr())),
    }
    let n = psql(&format!("select count(*) from django_migrations where image_ref = {}", sql_str(&r))).unwrap_or_default();
    log(&format!("migrations applied (image {r}; runs from this image: {n})"));
}

/// manage.py cambiar_admin_password: upsert admin/admin, record the reset.
pub fn oneshot_admin_password() {
    pg_login();
    let sql = format!(
        "BEGIN; INSERT INTO auth_user (username, password, is_superuser, is_staff) VALUES ('admin', 'pbkdf2_sha256$e2e$admin', true, true) ON CONFLICT (username) DO UPDATE SET password = EXCLUDED.password; INSERT INTO e2e_admin_resets (image_ref) VALUES ({}); COMMIT;",
        sql_str(&image_ref())
    );
    if let Err(e) = psql(&sql) {
        crate::fatal(1, &format!("cambiar_admin_password failed on {} (did the migrations run?): {e}", pg_addr()));
    }
    let n = psql("select count(*) from e2e_admin_resets").unwrap_or_default();
    log(&format!("admin password reset to the default (resets recorded: {n})"));
}

/// django_commands.sh: collect static files into /opt/omnileads/static (the django_static volume).
pub fn oneshot_commands() {
    let dir = std::path::Path::new("/opt/omnileads/static/e2e");
    let body = format!("collected by e2e-standin django_commands.sh from {} at {}\n", image_ref(), sigv4::iso_date(sigv4::now_unix()));
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(dir.join("collected.txt"), body)) {
        crate::fatal(1, &format!("collectstatic: cannot write {}: {e}", dir.display()));
    }
    let mounted = std::fs::read_to_string("/proc/self/mountinfo").map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some("/opt/omnileads/static"))).unwrap_or(false);
    log(&format!("static files collected into /opt/omnileads/static/e2e/collected.txt ({})", if mounted { "a mounted volume" } else { "WARNING: /opt/omnileads/static is not a mount: the files are lost with the container" }));
}

// ---------------------------------------------------------------- Redis

pub fn redis_ping(host: &str, port: &str, password: &str) {
    let addr = format!("{host}:{port}");
    retry(&format!("Redis at {addr}"), || {
        let mut s = match connect(&addr) {
            Ok(s) => s,
            Err(e) => return Try::Again(e),
        };
        let mut cmd = String::new();
        if !password.is_empty() {
            cmd += &format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
        }
        cmd += "*1\r\n$4\r\nPING\r\n";
        if let Err(e) = s.write_all(cmd.as_bytes()) {
            return Try::Again(e.to_string());
        }
        let mut r = BufReader::new(s);
        let lines = if password.is_empty() { 1 } else { 2 };
        for _ in 0..lines {
            let mut l = String::new();
            if let Err(e) = r.read_line(&mut l) {
                return Try::Again(format!("no answer: {e}"));
            }
            let l = l.trim();
            if l.starts_with("-WRONGPASS") || l.starts_with("-NOAUTH") || l.starts_with("-ERR invalid password") {
                return Try::Fail(format!("refused: {l}"));
            }
            if l.starts_with('-') {
                return Try::Again(l.to_string());
            }
            if l == "+PONG" {
                return Try::Done(());
            }
        }
        Try::Again("no PONG".into())
    });
    log(&format!("Redis at {addr}: PONG"));
}

/// Redis as the env names it: REDIS_HOSTNAME (+ REDIS_PORT) or REDIS_HOST=redis://host[:port]; REDIS_PASSWORD.
pub fn redis_from_env() {
    let (mut host, mut port) = (env("REDIS_HOSTNAME"), env("REDIS_PORT"));
    let url = env("REDIS_HOST");
    if host.is_empty() && !url.is_empty() {
        let u = url.trim_start_matches("redis://");
        let u = u.rsplit('@').next().unwrap_or(u).trim_end_matches('/');
        match u.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                host = h.into();
                port = p.into();
            }
            _ => host = u.into(),
        }
    }
    if port.is_empty() {
        port = "6379".into();
    }
    redis_ping(&host, &port, &env("REDIS_PASSWORD"));
}

// ---------------------------------------------------------------- AMI

pub fn ami_login(host: &str, user: &str, password: &str) {
    let addr = format!("{host}:5038");
    retry(&format!("AMI at {addr} as {user}"), || {
        let s = match connect(&addr) {
            Ok(s) => s,
            Err(e) => return Try::Again(e),
        };
        let mut w = match s.try_clone() {
            Ok(w) => w,
            Err(e) => return Try::Again(e.to_string()),
        };
        let mut r = BufReader::new(s);
        let mut banner = String::new();
        if r.read_line(&mut banner).is_err() || !banner.starts_with("Asterisk Call Manager") {
            return Try::Again(format!("no AMI banner ({:?})", banner.trim()));
        }
        let _ = write!(w, "Action: Login\r\nActionID: e2e-1\r\nUsername: {user}\r\nSecret: {password}\r\nEvents: off\r\n\r\n");
        let mut resp = String::new();
        loop {
            let mut l = String::new();
            match r.read_line(&mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) if l.trim().is_empty() => break,
                Ok(_) => resp += &l,
            }
        }
        let _ = write!(w, "Action: Logoff\r\n\r\n");
        if resp.contains("Response: Success") {
            Try::Done(())
        } else if resp.contains("Authentication failed") {
            Try::Fail("login refused: Authentication failed".into())
        } else {
            Try::Again(format!("unexpected answer {:?}", resp.trim()))
        }
    });
    log(&format!("AMI login ok at {addr} as {user}"));
}

/// asterisk's AMI: banner, Login checked against AMI_USER/AMI_PASSWORD, Ping, Logoff.
pub fn serve_ami(l: TcpListener) {
    for conn in l.incoming() {
        let Ok(s) = conn else { continue };
        std::thread::spawn(move || {
            let Ok(mut w) = s.try_clone() else { return };
            let _ = w.write_all(b"Asterisk Call Manager/5.0.1\r\n");
            let mut r = BufReader::new(s);
            let mut authed = false;
            loop {
                let mut pkt: Vec<(String, String)> = vec![];
                loop {
                    let mut l = String::new();
                    match r.read_line(&mut l) {
                        Ok(0) | Err(_) => return,
                        _ => {}
                    }
                    let l = l.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        pkt.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                if pkt.is_empty() {
                    continue;
                }
                let get = |k: &str| pkt.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone()).unwrap_or_default();
                let id = get("actionid");
                let idl = if id.is_empty() { String::new() } else { format!("ActionID: {id}\r\n") };
                let action = get("action").to_ascii_lowercase();
                let out = match action.as_str() {
                    "login" => {
                        if get("username") == env("AMI_USER") && get("secret") == env("AMI_PASSWORD") && !env("AMI_USER").is_empty() {
                            authed = true;
                            format!("Response: Success\r\n{idl}Message: Authentication accepted\r\n\r\n")
                        } else {
                            log(&format!("AMI: login refused for user {:?}", get("username")));
                            let _ = w.write_all(format!("Response: Error\r\n{idl}Message: Authentication failed\r\n\r\n").as_bytes());
                            return;
                        }
                    }
                    "logoff" => {
                        let _ = w.write_all(format!("Response: Goodbye\r\n{idl}Message: Thanks for all the fish.\r\n\r\n").as_bytes());
                        return;
                    }
                    _ if !authed => format!("Response: Error\r\n{idl}Message: Permission denied\r\n\r\n"),
                    "ping" => format!("Response: Success\r\n{idl}Ping: Pong\r\nTimestamp: {}.000000\r\n\r\n", sigv4::now_unix()),
                    _ => format!("Response: Success\r\n{idl}Message: e2e stand-in accepted {action}\r\n\r\n"),
                };
                if w.write_all(out.as_bytes()).is_err() {
                    return;
                }
            }
        });
    }
}

// ---------------------------------------------------------------- RTPengine ng control protocol

pub fn ng_ping(host: &str, port: u16) {
    let addr = format!("{host}:{port}");
    retry(&format!("RTPengine ng control at udp {addr}"), || {
        let sa = match crate::resolve(&addr) {
            Ok(a) => a[0],
            Err(e) => return Try::Again(e),
        };
        let u = match UdpSocket::bind(if sa.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }) {
            Ok(u) => u,
            Err(e) => return Try::Again(e.to_string()),
        };
        let _ = u.set_read_timeout(Some(Duration::from_secs(2)));
        let cookie = format!("e2e{}", std::process::id());
        if let Err(e) = u.send_to(format!("{cookie} d7:command4:pinge").as_bytes(), sa) {
            return Try::Again(e.to_string());
        }
        let mut buf = [0u8; 1500];
        match u.recv_from(&mut buf) {
            Ok((n, _)) => {
                let a = String::from_utf8_lossy(&buf[..n]).into_owned();
                if a.starts_with(&cookie) && a.contains("6:result4:pong") {
                    Try::Done(())
                } else {
                    Try::Again(format!("unexpected answer {a:?}"))
                }
            }
            Err(e) => Try::Again(format!("no answer to ping: {e}")),
        }
    });
    log(&format!("RTPengine at udp {addr}: pong"));
}

/// rtpengine's ng port: `<cookie> d7:command4:pinge` -> `<cookie> d6:result4:ponge`; other commands: error.
pub fn serve_ng(u: UdpSocket) {
    let mut buf = [0u8; 65536];
    loop {
        let Ok((n, peer)) = u.recv_from(&mut buf) else { continue };
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        let Some((cookie, body)) = m.split_once(' ') else { continue };
        let ans = if body.contains("7:command4:ping") {
            "d6:result4:ponge".to_string()
        } else {
            "d6:result5:error12:error-reason31:not implemented by e2e stand-ine".to_string()
        };
        let _ = u.send_to(format!("{cookie} {ans}").as_bytes(), peer);
    }
}

// ---------------------------------------------------------------- S3 (uwsgi's bucket check)

/// Write and read back an object with the application's credentials (django.env).
pub fn bucket_roundtrip() {
    let device = env("CALLREC_DEVICE");
    let endpoint = if device == "s3-minio" && !env("S3_ENDPOINT_MINIO").is_empty() { env("S3_ENDPOINT_MINIO") } else { env("S3_ENDPOINT") };
    if device == "s3-aws" {
        log("bucket check skipped: CALLREC_DEVICE=s3-aws (no AWS from the test bed)");
        return;
    }
    let Some(hostport) = endpoint.strip_prefix("http://").map(|h| h.trim_end_matches('/').to_string()) else {
        log(&format!("bucket check skipped: endpoint {endpoint:?} is not plain http (CALLREC_DEVICE={device})"));
        return;
    };
    let (bucket, ak, sk) = (env("S3_BUCKET_NAME"), env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"));
    if bucket.is_empty() || ak.is_empty() || sk.is_empty() {
        crate::fatal(1, "S3: S3_BUCKET_NAME, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set for the call recordings bucket");
    }
    let region = if env("AWS_DEFAULT_REGION").is_empty() { "us-east-1".into() } else { env("AWS_DEFAULT_REGION") };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let path = format!("/{bucket}/e2e-standin/uwsgi-{host}.txt");
    let payload = format!("written by the uwsgi stand-in ({}) at {}", image_ref(), sigv4::now_unix());
    let addr = hostport.clone();
    retry(&format!("bucket {bucket} at {endpoint} as {ak}"), || {
        let put = sigv4::sign("PUT", &hostport, &path, "", payload.as_bytes(), &ak, &sk, &region);
        match http::client(&addr, "PUT", &path, &put, payload.as_bytes()) {
            Err(e) => return Try::Again(e),
            Ok((200, _, _)) => {}
            Ok((st, _, b)) => {
                let b = String::from_utf8_lossy(&b);
                let code = b.split("<Code>").nth(1).and_then(|x| x.split('<').next()).unwrap_or("").to_string();
                // NoSuchBucket / unknown key / no policy yet: the bootstrap may still be running.
                return Try::Again(format!("PUT {path} -> {st} {code}"));
            }
        }
        let get = sigv4::sign("GET", &hostport, &path, "", b"", &ak, &sk, &region);
        match http::client(&addr, "GET", &path, &get, b"") {
            Err(e) => Try::Again(e),
            Ok((200, _, b)) if b == payload.as_bytes() => Try::Done(()),
            Ok((st, _, b)) => Try::Again(format!("GET {path} -> {st}: {:?}", String::from_utf8_lossy(&b))),
        }
    });
    log(&format!("bucket ok: wrote and read back s3://{bucket}{} at {endpoint} as {ak}", path.trim_start_matches(&format!("/{bucket}"))));
}

// ---------------------------------------------------------------- uwsgi protocol

const LOGIN_PAGE: &str = "<!DOCTYPE html><html><head><title>OMniLeads - Login</title></head><body><form method=\"post\" action=\"/accounts/login/\"><input name=\"username\"><input name=\"password\" type=\"password\"><button>Login</button></form><!-- e2e-standin omlapp uwsgi --></body></html>\n";

fn uwsgi_vars(b: &[u8]) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut i = 0;
    let rd = |i: usize| -> Option<usize> { Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]) as usize) };
    while i + 2 <= b.len() {
        let Some(kl) = rd(i) else { break };
        let k = String::from_utf8_lossy(b.get(i + 2..i + 2 + kl).unwrap_or(&[])).into_owned();
        i += 2 + kl;
        let Some(vl) = rd(i) else { break };
        let v = String::from_utf8_lossy(b.get(i + 2..i + 2 + vl).unwrap_or(&[])).into_owned();
        i += 2 + vl;
        out.push((k, v));
    }
    out
}

/// uwsgi protocol (nginx uwsgi_pass): `/` -> 302 /accounts/login/, /accounts/login/ -> 200 login page; broken
/// image: 500 on everything. Plain HTTP on the same port gets the same answers (handy for probes and curl).
pub fn serve_uwsgi(l: TcpListener, broken: bool) {
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = [0u8; 4];
            if s.read_exact(&mut head).is_err() {
                return;
            }
            let (uri, method) = if head[0] == 0 {
                let size = u16::from_le_bytes([head[1], head[2]]) as usize;
                let mut vars = vec![0u8; size];
                if s.read_exact(&mut vars).is_err() {
                    return;
                }
                let v = uwsgi_vars(&vars);
                let get = |k: &str| v.iter().find(|(a, _)| a == k).map(|(_, x)| x.clone()).unwrap_or_default();
                let uri = if get("PATH_INFO").is_empty() { get("REQUEST_URI") } else { get("PATH_INFO") };
                (uri, get("REQUEST_METHOD"))
            } else {
                let mut rest = vec![0u8; 4096];
                let n = s.read(&mut rest).unwrap_or(0);
                let mut all = head.to_vec();
                all.extend_from_slice(&rest[..n]);
                let line = String::from_utf8_lossy(&all).lines().next().unwrap_or("").to_string();
                let mut p = line.split_whitespace();
                let m = p.next().unwrap_or("").to_string();
                (p.next().unwrap_or("/").to_string(), m)
            };
            let path = uri.split('?').next().unwrap_or("/").to_string();
            let resp = if broken {
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 38\r\n\r\ne2e-standin: broken image (uwsgi 500)\n".to_string()
            } else if path == "/" {
                "HTTP/1.1 302 Found\r\nLocation: /accounts/login/\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 0\r\n\r\n".to_string()
            } else if path == "/accounts/login/" || path == "/accounts/login" {
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n{LOGIN_PAGE}", LOGIN_PAGE.len())
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nNot Found\n".to_string()
            };
            let _ = method;
            let _ = s.write_all(resp.as_bytes());
        });
    }
}

// ---------------------------------------------------------------- call counting CLIs

pub fn calls() -> u64 {
    std::fs::read_to_string("/tmp/e2e-calls").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// `asterisk -rx ...`, `kamcmd ...`, `rtpengine-ctl ...` inside the stand-in images. None: not such a CLI.
pub fn cli(argv0: &str, args: &[String]) -> Option<i32> {
    let n = calls();
    let joined = args.join(" ");
    match argv0 {
        "asterisk" => {
            let cmd = args.iter().position(|a| a == "-rx" || a == "-x").and_then(|i| args.get(i + 1)).cloned().unwrap_or_default();
            if cmd.trim() == "core show channels count" {
                println!("{n} active channels\n{n} active calls\n{n} calls processed");
            } else if cmd.starts_with("core show version") {
                println!("Asterisk 18.0.0-e2e-standin built by omlboot e2e");
            } else if cmd.is_empty() {
                eprintln!("asterisk (e2e stand-in): only -rx \"<command>\" is supported");
                return Some(1);
            } else {
                println!("No such command '{cmd}' (e2e stand-in)");
            }
            Some(0)
        }
        "kamcmd" => {
            if joined.trim() == "dlg.stats_active" {
                println!("{{\n\tstarting: 0\n\tconnecting: 0\n\tanswering: 0\n\tongoing: {n}\n\tall: {n}\n}}");
                Some(0)
            } else {
                eprintln!("error: 500 - command {joined} not found (e2e stand-in)");
                Some(1)
            }
        }
        "rtpengine-ctl" => {
            if joined.trim() == "list numsessions" {
                println!("Current sessions own: {n}\nCurrent sessions foreign: 0\nCurrent sessions total: {n}\nCurrent transcoded media: 0\nCurrent sessions ipv4 only media: {n}\nCurrent sessions ipv6 only media: 0\nCurrent sessions ip mixed  media: 0");
                Some(0)
            } else {
                eprintln!("rtpengine-ctl (e2e stand-in): unsupported command {joined:?}");
                Some(1)
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uwsgi_vars_parse() {
        let mut b = vec![];
        for (k, v) in [("PATH_INFO", "/"), ("REQUEST_METHOD", "GET")] {
            b.extend((k.len() as u16).to_le_bytes());
            b.extend(k.as_bytes());
            b.extend((v.len() as u16).to_le_bytes());
            b.extend(v.as_bytes());
        }
        assert_eq!(uwsgi_vars(&b), vec![("PATH_INFO".into(), "/".into()), ("REQUEST_METHOD".into(), "GET".into())]);
    }
}

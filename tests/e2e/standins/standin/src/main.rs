//! e2e stand-in for an OMniLeads component container.
//!
//! The image config sets `E2E_STANDIN_COMPONENT`; `/etc/e2e-standin/spec.tsv` (generated from
//! tests/e2e/standins/components.json) says, per component and command, which ports to bind and which
//! environment variables / files are required. The process logs what it got, exits 78 loudly when something
//! required is missing, 64 on a command the real image would not accept, 71 when a port cannot be bound, and
//! otherwise serves a one-line banner (or a tiny HTTP 200) on every port until SIGTERM.
//!
//! Invocation: as the image entrypoint (`standin [CMD...]`), through a symlink named like the real command
//! (`/opt/omnileads/bin/init_uwsgi.sh`, `python /app/fastagi.py`, ...), or `standin --check CMD...` (validate
//! and log only; used by the real-server images' entrypoint script).

mod http;
mod madmin;
mod minio;
mod peers;
mod sigv4;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::time::Duration;

const SPEC_PATH: &str = "/etc/e2e-standin/spec.tsv";

#[derive(Debug, Default, Clone)]
struct Mode {
    component: String,
    mode: String,
    command: Vec<String>,
    tcp: Vec<u16>,
    udp: Vec<u16>,
    required_env: Vec<String>,
    expected_env: Vec<String>,
    required_files: Vec<String>,
    bind_env: Vec<(String, String)>,
    bind_args: Vec<(String, String)>,
    bind_conf: Option<(String, String, u16)>,
    oneshot: bool,
}

fn list(field: &str) -> Vec<String> {
    if field == "-" || field.is_empty() {
        return vec![];
    }
    field.split(',').map(|s| s.to_string()).collect()
}

fn pairs(field: &str) -> Vec<(String, String)> {
    list(field)
        .into_iter()
        .filter_map(|p| p.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect()
}

fn ports(field: &str) -> Vec<u16> {
    list(field).iter().filter_map(|p| p.parse().ok()).collect()
}

/// One mode per line, tab separated:
/// component mode command(space separated, '-' = none) tcp udp required_env expected_env required_files
/// bind_env(VAR:proto,..) bind_args(flag:proto,..) bind_conf(file|key|port) flags
fn parse_spec(text: &str) -> Vec<Mode> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 12 {
                return None;
            }
            let bind_conf = if f[10] == "-" {
                None
            } else {
                let p: Vec<&str> = f[10].split('|').collect();
                Some((p[0].to_string(), p.get(1).unwrap_or(&"").to_string(), p.get(2).and_then(|x| x.parse().ok()).unwrap_or(0)))
            };
            Some(Mode {
                component: f[0].into(),
                mode: f[1].into(),
                command: if f[2] == "-" { vec![] } else { f[2].split(' ').map(String::from).collect() },
                tcp: ports(f[3]),
                udp: ports(f[4]),
                required_env: list(f[5]),
                expected_env: list(f[6]),
                required_files: list(f[7]),
                bind_env: pairs(f[8]),
                bind_args: pairs(f[9]),
                bind_conf,
                oneshot: list(f[11]).iter().any(|x| x == "oneshot"),
            })
        })
        .collect()
}

fn word_matches(pat: &str, w: &str) -> bool {
    if pat.len() > 1 && pat.ends_with('*') {
        w.starts_with(&pat[..pat.len() - 1])
    } else if pat.len() > 1 && pat.starts_with('*') {
        w.ends_with(&pat[1..])
    } else {
        pat == w
    }
}

fn command_matches(pat: &[String], argv: &[String]) -> bool {
    if pat.is_empty() {
        return argv.is_empty();
    }
    for (i, p) in pat.iter().enumerate() {
        if p == "*" && i == pat.len() - 1 {
            return true;
        }
        match argv.get(i) {
            Some(w) if word_matches(p, w) => {}
            _ => return false,
        }
    }
    argv.len() == pat.len()
}

fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    n.contains("PASS") || n.contains("SECRET") || n.contains("KEY") || n.contains("DATA_SOURCE_NAME") || n.contains("TOKEN")
}

fn shown(name: &str, value: &str) -> String {
    if is_secret(name) {
        format!("<set, {} chars>", value.len())
    } else {
        value.to_string()
    }
}

fn fatal(code: i32, msg: &str) -> ! {
    let tag = std::env::var("E2E_STANDIN_COMPONENT").unwrap_or_else(|_| "?".into());
    eprintln!("e2e-standin[{tag}]: FATAL: {msg}");
    println!("e2e-standin[{tag}]: FATAL: {msg}");
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(code: i32) -> !;
}

extern "C" fn on_term(_sig: i32) {
    unsafe { _exit(0) }
}

/// "host:port", ":port", "port", "[v6]:port" -> socket addresses.
fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    let addr = addr.trim().trim_matches('"').trim_matches('\'');
    if let Ok(p) = addr.parse::<u16>() {
        return Ok(vec![SocketAddr::from(([0, 0, 0, 0], p))]);
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("not host:port: {addr:?}"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port in {addr:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let all: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {host:?}: {e}"))?.collect();
    // Prefer IPv4 (the real servers bind one address); keep the first of each family otherwise.
    let v4: Vec<SocketAddr> = all.iter().copied().filter(|a| a.is_ipv4()).take(1).collect();
    if !v4.is_empty() {
        return Ok(v4);
    }
    Ok(all.into_iter().take(1).collect())
}

fn conf_value(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let l = l.trim();
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

fn arg_value(argv: &[String], flag: &str) -> Option<String> {
    for (i, a) in argv.iter().enumerate() {
        if a == flag {
            return argv.get(i + 1).cloned();
        }
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            return Some(v.to_string());
        }
    }
    None
}

fn serve_tcp(l: TcpListener, banner: String) {
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        let banner = banner.clone();
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let http = ["GET ", "HEAD ", "POST ", "PUT ", "OPTIONS "].iter().any(|m| head.starts_with(m));
            if http {
                let body = format!("{banner}\n");
                let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", body.len(), body);
            } else {
                let _ = writeln!(s, "{banner}");
            }
        });
    }
}

fn serve_udp(u: UdpSocket, banner: String) {
    let mut buf = [0u8; 65536];
    loop {
        if let Ok((_, peer)) = u.recv_from(&mut buf) {
            let _ = u.send_to(format!("{banner}\n").as_bytes(), peer);
        }
    }
}

fn main() {
    unsafe {
        signal(15, on_term);
        signal(2, on_term);
    }
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()).unwrap_or_default();
    if let Some(code) = peers::cli(&argv0, &args[1..]) {
        std::process::exit(code);
    }
    if argv0 == "standin" && args.get(1).map(|s| s.as_str()) == Some("--set-calls") {
        let n: u64 = args.get(2).and_then(|x| x.parse().ok()).unwrap_or_else(|| fatal(64, "usage: standin --set-calls N"));
        std::fs::write("/tmp/e2e-calls", format!("{n}\n")).unwrap_or_else(|e| fatal(1, &format!("/tmp/e2e-calls: {e}")));
        return;
    }
    let (check_only, cmd): (bool, Vec<String>) = if argv0 == "standin" {
        if args.get(1).map(|s| s.as_str()) == Some("--check") {
            (true, args[2..].to_vec())
        } else {
            (false, args[1..].to_vec())
        }
    } else {
        (false, args.clone())
    };

    let component = std::env::var("E2E_STANDIN_COMPONENT")
        .unwrap_or_else(|_| fatal(78, "E2E_STANDIN_COMPONENT is not set (not run from a stand-in image?)"));
    let spec_path = std::env::var("E2E_STANDIN_SPEC").unwrap_or_else(|_| SPEC_PATH.to_string());
    let spec_text = std::fs::read_to_string(&spec_path).unwrap_or_else(|e| fatal(70, &format!("cannot read {spec_path}: {e}")));
    let modes: Vec<Mode> = parse_spec(&spec_text).into_iter().filter(|m| m.component == component).collect();
    let tag = format!("e2e-standin[{component}]");
    let Some(mode) = modes.iter().find(|m| command_matches(&m.command, &cmd)).cloned() else {
        let accepted: Vec<String> = modes
            .iter()
            .map(|m| if m.command.is_empty() { "(image default, no command)".into() } else { m.command.join(" ") })
            .collect();
        fatal(64, &format!("command {cmd:?} is not one the real image accepts here; accepted: {}", accepted.join(" | ")));
    };
    println!("{tag}: starting mode={} argv={:?} pid={}", mode.mode, cmd, std::process::id());

    // Environment: log what is needed, fail loudly on what is missing.
    let mut missing = vec![];
    for v in &mode.required_env {
        match std::env::var(v) {
            Ok(val) if !val.is_empty() => println!("{tag}: env {v}={}", shown(v, &val)),
            _ => missing.push(v.clone()),
        }
    }
    for v in &mode.expected_env {
        match std::env::var(v) {
            Ok(val) => println!("{tag}: env {v}={}", shown(v, &val)),
            Err(_) => println!("{tag}: warning: expected variable {v} is not set"),
        }
    }
    let mut missing_files = vec![];
    for f in &mode.required_files {
        if std::path::Path::new(f).is_file() {
            println!("{tag}: file {f} present ({} bytes)", std::fs::metadata(f).map(|m| m.len()).unwrap_or(0));
        } else {
            missing_files.push(f.clone());
        }
    }
    if !missing.is_empty() || !missing_files.is_empty() {
        let mut msg = String::new();
        if !missing.is_empty() {
            msg += &format!("missing required environment variable(s): {}", missing.join(", "));
        }
        if !missing_files.is_empty() {
            if !msg.is_empty() {
                msg += "; ";
            }
            msg += &format!("missing required file(s): {}", missing_files.join(", "));
        }
        fatal(78, &msg);
    }
    if check_only {
        println!("{tag}: check ok");
        return;
    }
    if mode.oneshot {
        match (component.as_str(), mode.mode.as_str()) {
            ("omlapp", "django_migrations") => peers::oneshot_migrations(),
            ("omlapp", "admin_password") => peers::oneshot_admin_password(),
            ("omlapp", "django_commands") => peers::oneshot_commands(),
            _ => {}
        }
        println!("{tag}: one-shot {} done", mode.mode);
        return;
    }

    // Peers: what the real process would need before it serves (bounded retry, then exit 1 loudly).
    let env = peers::env;
    match (component.as_str(), mode.mode.as_str()) {
        ("omlapp", m @ ("uwsgi" | "daphne" | "cron")) => {
            peers::pg_login();
            peers::pg_wait_schema();
            if m == "uwsgi" {
                peers::bucket_roundtrip();
            }
        }
        ("asterisk", _) => peers::pg_login(),
        ("fastagi", _) => {
            peers::pg_login();
            peers::redis_from_env();
        }
        ("astami", _) => {
            peers::redis_from_env();
            peers::ami_login(&env("ASTERISK_HOSTNAME"), &env("AMI_USER"), &env("AMI_PASSWORD"));
        }
        ("kamailio", _) => {
            peers::redis_from_env();
            peers::ng_ping(&env("RTPENGINE_HOSTNAME"), 22222);
        }
        ("websockets", _) => peers::redis_from_env(),
        _ => {}
    }
    let broken = peers::broken();
    if broken {
        println!("{tag}: this is a broken image ({}): it stays up but its health check must fail", peers::image_ref());
    }

    // Ports.
    let mut binds: Vec<(String, String)> = vec![]; // (proto, addr)
    for p in &mode.tcp {
        if component == "minio" && *p == 9000 && arg_value(&cmd, "--address").is_some() {
            continue; // --address replaces the default API port
        }
        binds.push(("tcp".into(), p.to_string()));
    }
    for p in &mode.udp {
        binds.push(("udp".into(), p.to_string()));
    }
    for (var, proto) in &mode.bind_env {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                binds.push((proto.clone(), v));
            }
        }
    }
    for (flag, proto) in &mode.bind_args {
        if let Some(v) = arg_value(&cmd, flag) {
            binds.push((proto.clone(), v));
        }
    }
    if let Some((file, key, port)) = &mode.bind_conf {
        match conf_value(file, key) {
            Some(v) => binds.push(("tcp".into(), v)),
            None => binds.push(("tcp".into(), port.to_string())),
        }
    }
    if broken && !(component == "omlapp" && mode.mode == "uwsgi") {
        println!("{tag}: broken image: not binding {}", binds.iter().map(|(p, a)| format!("{p}/{a}")).collect::<Vec<_>>().join(" "));
        binds.clear();
    }
    let minio_api = if component == "minio" { arg_value(&cmd, "--address").unwrap_or_else(|| "9000".into()) } else { String::new() };
    let minio = if component == "minio" {
        let data = std::env::var("E2E_STANDIN_DATA_DIR").unwrap_or_else(|_| cmd.get(1).cloned().unwrap_or_else(|| "/data".into()));
        let _ = std::fs::create_dir_all(&data);
        let s = std::sync::Arc::new(minio::Server::new(env("MINIO_ROOT_USER"), env("MINIO_ROOT_PASSWORD"), data.clone().into()));
        println!("{tag}: S3 + admin API on {minio_api}, data in {data}, users: [{}]", s.users_summary());
        Some(s)
    } else {
        None
    };
    let uwsgi_port = if component == "omlapp" && mode.mode == "uwsgi" { env("UWSGI_PORT") } else { String::new() };
    let banner = format!("e2e-standin component={component} mode={}", mode.mode);
    let mut bound = vec![];
    let mut handles = vec![];
    for (proto, addr) in binds {
        let sas = resolve(&addr).unwrap_or_else(|e| fatal(71, &format!("cannot bind {proto} {addr}: {e}")));
        for sa in sas {
            if proto == "udp" {
                let u = UdpSocket::bind(sa).unwrap_or_else(|e| fatal(71, &format!("cannot bind udp {sa}: {e}")));
                let b = banner.clone();
                if component == "rtpengine" && sa.port() == 22222 {
                    handles.push(std::thread::spawn(move || peers::serve_ng(u)));
                } else {
                    handles.push(std::thread::spawn(move || serve_udp(u, b)));
                }
            } else {
                let l = TcpListener::bind(sa).unwrap_or_else(|e| fatal(71, &format!("cannot bind tcp {sa}: {e}")));
                let b = banner.clone();
                if let (Some(m), true) = (&minio, addr == minio_api) {
                    let m = m.clone();
                    handles.push(std::thread::spawn(move || m.serve(l)));
                } else if component == "asterisk" && sa.port() == 5038 {
                    handles.push(std::thread::spawn(move || peers::serve_ami(l)));
                } else if !uwsgi_port.is_empty() && addr == uwsgi_port {
                    handles.push(std::thread::spawn(move || peers::serve_uwsgi(l, broken)));
                } else {
                    handles.push(std::thread::spawn(move || serve_tcp(l, b)));
                }
            }
            bound.push(format!("{proto}/{sa}"));
        }
    }
    println!("{tag}: ready mode={} listening=[{}]", mode.mode, bound.join(" "));
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn matching() {
        assert!(command_matches(&[], &[]));
        assert!(!command_matches(&[], &v(&["x"])));
        assert!(command_matches(&v(&["*"]), &[]));
        assert!(command_matches(&v(&["postgres", "*"]), &v(&["postgres", "-c", "listen_addresses=x"])));
        assert!(command_matches(&v(&["postgres", "*"]), &v(&["postgres"])));
        assert!(command_matches(&v(&["python", "*manage.py", "*"]), &v(&["python", "/opt/o/manage.py", "x"])));
        assert!(!command_matches(&v(&["python", "/app/app.py"]), &v(&["python", "/app/fastagi.py"])));
    }

    #[test]
    fn spec_line() {
        let m = parse_spec("c\tm\tserver /data *\t9000\t-\tA,B\t-\t-\tX:tcp\t--console-address:tcp\tf|k|5672\toneshot\n");
        assert_eq!(m[0].command, v(&["server", "/data", "*"]));
        assert_eq!(m[0].bind_args, vec![("--console-address".to_string(), "tcp".to_string())]);
        assert_eq!(m[0].bind_conf, Some(("f".into(), "k".into(), 5672)));
        assert!(m[0].oneshot);
    }

    #[test]
    fn addresses() {
        assert_eq!(resolve("8000").unwrap()[0].port(), 8000);
        assert_eq!(resolve(":9001").unwrap()[0].to_string(), "0.0.0.0:9001");
        assert_eq!(resolve("127.0.0.1:5672").unwrap()[0].to_string(), "127.0.0.1:5672");
    }
}

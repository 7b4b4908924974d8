//! Minimal client for the QEMU guest agent (virtio-serial `org.qemu.guest_agent.0`), used as the exec channel:
//! it needs no guest network, so it works the same for a user-net guest and for guests on the private network.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

pub struct Qga {
    path: PathBuf,
    conn: Option<(UnixStream, BufReader<UnixStream>)>,
    next_id: u64,
}

/// Result of one command run in the guest.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl Qga {
    pub fn new(path: &Path) -> Self {
        Qga {
            path: path.to_path_buf(),
            conn: None,
            next_id: 1 + (std::process::id() as u64) * 1000,
        }
    }

    fn connect(&mut self, timeout: Duration) -> Result<()> {
        if self.conn.is_some() {
            return Ok(());
        }
        let s = UnixStream::connect(&self.path)
            .with_context(|| format!("connect {}", self.path.display()))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        let r = BufReader::new(s.try_clone()?);
        self.conn = Some((s, r));
        // Resynchronise: the agent may have stale output from an earlier client.
        let deadline = Instant::now() + timeout;
        loop {
            let id = self.next_id;
            self.next_id += 1;
            let (w, r) = self.conn.as_mut().unwrap();
            let msg = json!({"execute": "guest-sync-delimited", "arguments": {"id": id}});
            if w.write_all(format!("{msg}\n").as_bytes()).is_err() {
                self.conn = None;
                bail!("guest agent socket closed");
            }
            let attempt_end = (Instant::now() + Duration::from_secs(3)).min(deadline);
            while Instant::now() < attempt_end {
                let mut buf = Vec::new();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) => {
                        self.conn = None;
                        bail!("guest agent socket closed");
                    }
                    Ok(_) => {
                        let line: Vec<u8> = buf.into_iter().filter(|b| *b != 0xff).collect();
                        if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                            if v["return"].as_u64() == Some(id) {
                                return Ok(());
                            }
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => {
                        self.conn = None;
                        return Err(e.into());
                    }
                }
            }
            if Instant::now() >= deadline {
                self.conn = None;
                bail!("guest agent did not answer within {timeout:?}");
            }
        }
    }

    /// One QGA command; returns its "return" value.
    pub fn call(&mut self, execute: &str, arguments: Value, timeout: Duration) -> Result<Value> {
        self.connect(timeout)?;
        let (w, r) = self.conn.as_mut().unwrap();
        let msg = if arguments.is_null() {
            json!({"execute": execute})
        } else {
            json!({"execute": execute, "arguments": arguments})
        };
        if let Err(e) = w.write_all(format!("{msg}\n").as_bytes()) {
            self.conn = None;
            return Err(e.into());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let mut buf = Vec::new();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    self.conn = None;
                    bail!("guest agent socket closed during {execute}");
                }
                Ok(_) => {
                    let line: Vec<u8> = buf.into_iter().filter(|b| *b != 0xff).collect();
                    let v: Value = match serde_json::from_slice(&line) {
                        Ok(v) => v,
                        Err(_) => continue,
                    };
                    if let Some(e) = v.get("error") {
                        bail!("guest agent {execute}: {e}");
                    }
                    if let Some(ret) = v.get("return") {
                        return Ok(ret.clone());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        self.conn = None; // the answer may still come: do not reuse this stream
                        bail!("guest agent {execute}: no answer within {timeout:?}");
                    }
                }
                Err(e) => {
                    self.conn = None;
                    return Err(e.into());
                }
            }
        }
    }

    pub fn ping(&mut self, timeout: Duration) -> Result<()> {
        self.call("guest-ping", Value::Null, timeout).map(|_| ())
    }

    /// Runs `/bin/sh -c script` in the guest (as root), optionally with stdin, and waits for it.
    pub fn exec(
        &mut self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let mut args = json!({"path": "/bin/sh", "arg": ["-c", script], "capture-output": true,
                              "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]});
        if let Some(input) = stdin {
            args["input-data"] = Value::String(b64_encode(input));
        }
        let ret = self.call("guest-exec", args, Duration::from_secs(30))?;
        let pid = ret["pid"]
            .as_i64()
            .ok_or_else(|| anyhow!("guest-exec returned no pid: {ret}"))?;
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(50);
        loop {
            let st = self.call(
                "guest-exec-status",
                json!({"pid": pid}),
                Duration::from_secs(30),
            )?;
            if st["exited"].as_bool() == Some(true) {
                let dec = |k: &str| -> String {
                    st.get(k)
                        .and_then(|v| v.as_str())
                        .map(|s| String::from_utf8_lossy(&b64_decode(s)).into_owned())
                        .unwrap_or_default()
                };
                let code = match (st["exitcode"].as_i64(), st["signal"].as_i64()) {
                    (Some(c), _) => c as i32,
                    (None, Some(sig)) => 128 + sig as i32,
                    _ => -1,
                };
                return Ok(ExecOutput {
                    code,
                    stdout: dec("out-data"),
                    stderr: dec("err-data"),
                });
            }
            if Instant::now() >= deadline {
                bail!("command still running after {timeout:?} in the guest: {script}");
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn b64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

//! The lab's private network: an Ethernet hub inside the test process. Each guest NIC is a QEMU
//! `-netdev dgram` on a unix datagram socket; the hub forwards every frame it receives from one port to all
//! other ports. Nothing here touches an IP socket, so guests reach each other and nothing else.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

pub struct Hub {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The two socket paths of one hub port: QEMU binds `guest_sock` and sends to `hub_sock`.
#[derive(Debug, Clone)]
pub struct Port {
    pub hub_sock: PathBuf,
    pub guest_sock: PathBuf,
}

impl Hub {
    /// Creates `n` ports under `dir`.
    pub fn start(dir: &Path, n: usize) -> Result<(Hub, Vec<Port>)> {
        std::fs::create_dir_all(dir)?;
        let ports: Vec<Port> = (0..n)
            .map(|i| Port {
                hub_sock: dir.join(format!("hub-{i}.sock")),
                guest_sock: dir.join(format!("guest-{i}.sock")),
            })
            .collect();
        let mut socks = vec![];
        for p in &ports {
            let _ = std::fs::remove_file(&p.hub_sock);
            let s = UnixDatagram::bind(&p.hub_sock)
                .with_context(|| format!("bind {}", p.hub_sock.display()))?;
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            socks.push(Arc::new(s));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = vec![];
        for i in 0..n {
            let socks = socks.clone();
            let ports = ports.clone();
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(len) = socks[i].recv(&mut buf) else {
                        continue;
                    };
                    for (j, p) in ports.iter().enumerate() {
                        if j != i {
                            // A guest that is not up yet (or gone) just misses the frame, like on a real hub.
                            let _ = socks[j].send_to(&buf[..len], &p.guest_sock);
                        }
                    }
                }
            }));
        }
        Ok((Hub { stop, threads }, ports))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

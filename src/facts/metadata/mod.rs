//! Cloud metadata services and echo services: where the public IPv4 comes from.
use std::time::Duration;

/// Base URLs of every external endpoint detection may call. All configurable so tests point them at 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub aws: String,
    pub gcp: String,
    pub azure: String,
    pub digitalocean: String,
    pub oracle: String,
    pub hetzner: String,
    /// "What is my IP" services, tried in order; each must answer a bare IPv4.
    pub echo: Vec<String>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            aws: "http://169.254.169.254".into(),
            gcp: "http://metadata.google.internal".into(),
            azure: "http://169.254.169.254".into(),
            digitalocean: "http://169.254.169.254".into(),
            oracle: "http://169.254.169.254".into(),
            hetzner: "http://169.254.169.254".into(),
            echo: vec![
                "https://checkip.amazonaws.com".into(),
                "https://ifconfig.co/ip".into(),
                "https://ipinfo.io/ip".into(),
            ],
        }
    }
}

/// Timeouts and retries applied to every metadata/echo request.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    /// Extra attempts after the first, for transient failures (connect errors, timeouts, 5xx).
    pub retries: u32,
    pub backoff: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(200),
        }
    }
}

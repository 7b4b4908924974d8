//! "What is my IP" echo services: the last resort, and the only source on unknown platforms.
//!
//! Each service must answer the caller's address as bare text (checkip.amazonaws.com,
//! ifconfig.co/ip and ipinfo.io/ip all do). They are tried in order, and the first that gives
//! a public IPv4 wins; a wrong answer from one is a warning and the next is asked.
use super::{ip_outcome, Http, Outcome, Request};

/// The first public IPv4 any service gives, with the URL (as shown) that gave it, and the
/// warnings and "none here" notes from the services asked before it.
pub async fn lookup(
    http: &Http,
    urls: &[String],
) -> (Option<(std::net::Ipv4Addr, String)>, Vec<Outcome>) {
    let mut misses = Vec::new();
    for url in urls {
        let shown = display_url(url);
        let reply = http.send(&Request::get(url, &[])).await;
        match ip_outcome(&shown, reply) {
            Outcome::Found(ip) => return (Some((ip, shown)), misses),
            miss => misses.push(miss),
        }
    }
    (None, misses)
}

/// The URL as it may appear in output: without user info or query, where an API key for a
/// paid echo service would live.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u)
            if u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            url.to_string()
        }
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        // Not a URL at all: the request fails too; show nothing of it that could be secret.
        Err(_) => "<unparseable echo URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_shown() {
        assert_eq!(
            display_url("https://user:pw@ipinfo.io/ip?token=abc"),
            "https://ipinfo.io/ip"
        );
        assert_eq!(
            display_url("http://127.0.0.1:8080/ip"),
            "http://127.0.0.1:8080/ip"
        );
    }
}

//! "What is my IP" echo services: the last resort, and the only source on unknown platforms.
//!
//! Each service must answer the caller's address as bare text (checkip.amazonaws.com,
//! ifconfig.co/ip and ipinfo.io/ip all do). They are all asked at once, under one overall
//! deadline ([`deadline`]), and the first that gives a public IPv4 wins; a wrong answer from one
//! is a warning. So a host whose egress silently drops packets pays one deadline, not one
//! timeout per service and attempt.
use super::{ip_outcome, Http, HttpPolicy, Outcome, Request};
use std::time::Duration;

/// How long the echo services are waited for, all together: the connect timeout plus one
/// second for the answer (retries of quick failures fit inside it; a silent network does not
/// get a second chance).
pub fn deadline(policy: &HttpPolicy) -> Duration {
    policy.connect_timeout + Duration::from_secs(1)
}

/// The first public IPv4 any service gives, with the URL (as shown) that gave it, and the
/// warnings and "none here" notes from the services that answered otherwise (in `urls` order).
/// Services still busy when one answers are abandoned.
pub async fn lookup(
    http: &Http,
    urls: &[String],
) -> (Option<(std::net::Ipv4Addr, String)>, Vec<Outcome>) {
    let deadline = deadline(http.policy());
    let mut tasks = tokio::task::JoinSet::new();
    for (i, url) in urls.iter().enumerate() {
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move {
            let shown = display_url(&url);
            let reply = http.send(&Request::get(&url, &[])).await;
            (i, ip_outcome(&shown, reply), shown)
        });
    }
    let mut misses: Vec<Option<Outcome>> = vec![None; urls.len()];
    let timer = tokio::time::sleep(deadline);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                None => break,
                Some(Ok((_, Outcome::Found(ip), shown))) => {
                    // Dropping the set aborts the services still being asked.
                    return (Some((ip, shown)), misses.into_iter().flatten().collect());
                }
                Some(Ok((i, miss, _))) => misses[i] = Some(miss),
                Some(Err(e)) => tracing::debug!("echo lookup task ended: {e}"),
            },
            _ = &mut timer => {
                for (i, url) in urls.iter().enumerate() {
                    if misses[i].is_none() {
                        misses[i] = Some(Outcome::Failed(format!(
                            "{} gave no answer within {} ms (the echo services' overall deadline)",
                            display_url(url),
                            deadline.as_millis()
                        )));
                    }
                }
                break;
            }
        }
    }
    (None, misses.into_iter().flatten().collect())
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

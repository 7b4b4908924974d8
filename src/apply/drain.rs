//! Telephony safety: whether a voice component (asterisk, kamailio, rtpengine) may restart now.
//!
//! Pure: [`decide`] takes the wall clock, the calls it carries, the maintenance window, when the wait
//! began, the drain timeout and `--force`, and says proceed (and why) or wait (for what). The engine
//! polls it; its tests run it on a simulated clock.
use serde::{Deserialize, Serialize};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A weekly maintenance window in UTC: the weekdays it opens on and the hours `[start, end)`; an
/// end at or before the start wraps past midnight (the window belongs to the day it opens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Monday first.
    pub days: [bool; 7],
    pub start_hour: u8,
    pub end_hour: u8,
}

impl Window {
    /// From `maintenance_weekdays` (`mon,tue`, `mon-fri`; all days when unset) and
    /// `maintenance_hours` (`02-05`; the whole day when unset). `None` when neither is set.
    pub fn parse(weekdays: Option<&str>, hours: Option<&str>) -> Result<Option<Window>, String> {
        let weekdays = weekdays.map(str::trim).filter(|s| !s.is_empty());
        let hours = hours.map(str::trim).filter(|s| !s.is_empty());
        if weekdays.is_none() && hours.is_none() {
            return Ok(None);
        }
        let mut days = [weekdays.is_none(); 7];
        if let Some(w) = weekdays {
            let day = |s: &str| {
                let s = s.trim().to_ascii_lowercase();
                DAYS.iter()
                    .position(|d| s.starts_with(d) && s.len() >= 3)
                    .ok_or_else(|| {
                        format!("maintenance_weekdays: {s:?} is not a weekday (mon … sun)")
                    })
            };
            for part in w.split(',') {
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day(a)?, day(b)?);
                        let mut i = a;
                        loop {
                            days[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => days[day(part)?] = true,
                }
            }
        }
        let (start_hour, end_hour) = match hours {
            None => (0, 24),
            Some(h) => {
                let bad =
                    || format!("maintenance_hours: {h:?} is not HH-HH (UTC hours, e.g. 02-05)");
                let (a, b) = h.split_once('-').ok_or_else(bad)?;
                let a: u8 = a.trim().parse().map_err(|_| bad())?;
                let b: u8 = b.trim().parse().map_err(|_| bad())?;
                if a > 23 || b > 24 || a == b {
                    return Err(bad());
                }
                (a, b)
            }
        };
        Ok(Some(Window {
            days,
            start_hour,
            end_hour,
        }))
    }

    /// Whether the window is open at `unix` (seconds, UTC).
    pub fn is_open(&self, unix: u64) -> bool {
        let day = ((unix / 86_400 + 3) % 7) as usize; // 1970-01-01 was a Thursday
        let hour = ((unix % 86_400) / 3600) as u8;
        let yesterday = (day + 6) % 7;
        if self.start_hour < self.end_hour {
            self.days[day] && hour >= self.start_hour && hour < self.end_hour
        } else {
            (self.days[day] && hour >= self.start_hour)
                || (self.days[yesterday] && hour < self.end_hour)
        }
    }

    /// The next moment (a whole hour) the window is open, from `unix` on; `None` if never.
    pub fn next_open(&self, unix: u64) -> Option<u64> {
        if self.is_open(unix) {
            return Some(unix);
        }
        let mut t = unix - unix % 3600 + 3600;
        for _ in 0..(8 * 24) {
            if self.is_open(t) {
                return Some(t);
            }
            t += 3600;
        }
        None
    }

    pub fn describe(&self) -> String {
        let days: Vec<&str> = DAYS
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(d, _)| *d)
            .collect();
        format!(
            "{} {:02}-{:02} UTC",
            days.join(","),
            self.start_hour,
            self.end_hour
        )
    }
}

/// What a voice restart needs to be decided.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub now_unix: u64,
    /// When this restart began to wait.
    pub since_unix: u64,
    /// Calls it carries now, or why they could not be counted (counted as carrying calls).
    pub calls: Result<u64, String>,
    pub window: Option<&'a Window>,
    pub drain_timeout_s: u64,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Restart now; why it is allowed.
    Proceed(String),
    /// Not yet.
    Wait(Waiting),
    /// Neither drained within the timeout nor a window configured: it is not restarted this run.
    GiveUp(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Waiting {
    /// For its calls to end, until `until_unix` at the latest.
    Drain { calls: String, until_unix: u64 },
    /// For the maintenance window, which opens at `opens_unix`.
    Window { calls: String, opens_unix: u64 },
}

impl Waiting {
    /// `waiting for drain` / `waiting for window`: the outcome status shows.
    pub fn outcome(&self) -> &'static str {
        match self {
            Waiting::Drain { .. } => "waiting for drain",
            Waiting::Window { .. } => "waiting for window",
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Waiting::Drain { calls, until_unix } => {
                format!("waiting for {calls} to end (at most until {until_unix})")
            }
            Waiting::Window { calls, opens_unix } => {
                format!("{calls}; waiting for the maintenance window, which opens at {opens_unix}")
            }
        }
    }
}

fn calls_text(calls: &Result<u64, String>) -> String {
    match calls {
        Ok(1) => "1 call".into(),
        Ok(n) => format!("{n} calls"),
        Err(e) => format!("calls that could not be counted ({e})"),
    }
}

/// Restart now, or wait for what.
pub fn decide(i: &Input) -> Decision {
    let calls = calls_text(&i.calls);
    if i.force {
        return Decision::Proceed(format!("--force: restarted at once, carrying {calls}"));
    }
    if i.calls == Ok(0) {
        return Decision::Proceed("it carries no call".into());
    }
    if let Some(w) = i.window {
        if w.is_open(i.now_unix) {
            return Decision::Proceed(format!(
                "maintenance window {} is open (carrying {calls})",
                w.describe()
            ));
        }
    }
    let until = i.since_unix + i.drain_timeout_s;
    if i.now_unix < until {
        return Decision::Wait(Waiting::Drain {
            calls,
            until_unix: until,
        });
    }
    match i.window.and_then(|w| w.next_open(i.now_unix)) {
        Some(opens) => Decision::Wait(Waiting::Window {
            calls,
            opens_unix: opens,
        }),
        None => Decision::GiveUp(format!(
            "still carrying {calls} after drain_timeout_s={} and no maintenance window is configured: not restarted (run again, or with --force)",
            i.drain_timeout_s
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-07 00:00 UTC is a Monday.
    const MONDAY: u64 = 1_796_601_600;

    fn input(now: u64, calls: Result<u64, String>, window: Option<&Window>) -> Input<'_> {
        Input {
            now_unix: now,
            since_unix: MONDAY,
            calls,
            window,
            drain_timeout_s: 600,
            force: false,
        }
    }

    #[test]
    fn monday_is_monday() {
        let w = Window::parse(Some("mon"), None).unwrap().unwrap();
        assert!(w.is_open(MONDAY) && w.is_open(MONDAY + 86_399));
        assert!(!w.is_open(MONDAY - 1) && !w.is_open(MONDAY + 86_400));
    }

    #[test]
    fn parses_days_ranges_and_hours() {
        assert_eq!(Window::parse(None, Some(" ")).unwrap(), None);
        let w = Window::parse(Some("mon-wed,sun"), Some("02-05"))
            .unwrap()
            .unwrap();
        assert_eq!(w.days, [true, true, true, false, false, false, true]);
        assert_eq!((w.start_hour, w.end_hour), (2, 5));
        let w = Window::parse(Some("fri-mon"), None).unwrap().unwrap();
        assert_eq!(w.days, [true, false, false, false, true, true, true]);
        assert!(Window::parse(Some("monday,xyz"), None).is_err());
        assert!(Window::parse(None, Some("2")).is_err());
        assert!(Window::parse(None, Some("25-02")).is_err());
    }

    #[test]
    fn hours_and_wrapping_windows() {
        let w = Window::parse(Some("mon"), Some("02-05")).unwrap().unwrap();
        assert!(!w.is_open(MONDAY + 3600));
        assert!(w.is_open(MONDAY + 2 * 3600));
        assert!(!w.is_open(MONDAY + 5 * 3600));
        assert_eq!(w.next_open(MONDAY), Some(MONDAY + 2 * 3600));
        assert_eq!(
            w.next_open(MONDAY + 6 * 3600),
            Some(MONDAY + 7 * 86_400 + 2 * 3600)
        );
        // 22-02 on Monday: Monday 23:00 and Tuesday 01:00 are in, Tuesday 23:00 is not.
        let w = Window::parse(Some("mon"), Some("22-02")).unwrap().unwrap();
        assert!(w.is_open(MONDAY + 23 * 3600));
        assert!(w.is_open(MONDAY + 25 * 3600));
        assert!(!w.is_open(MONDAY + 47 * 3600));
    }

    #[test]
    fn no_call_proceeds_a_call_waits_until_the_drain_timeout_then_gives_up() {
        assert!(matches!(
            decide(&input(MONDAY, Ok(0), None)),
            Decision::Proceed(_)
        ));
        assert_eq!(
            decide(&input(MONDAY + 10, Ok(1), None)),
            Decision::Wait(Waiting::Drain {
                calls: "1 call".into(),
                until_unix: MONDAY + 600
            })
        );
        // A call that ends at second 300: proceed.
        assert!(matches!(
            decide(&input(MONDAY + 300, Ok(0), None)),
            Decision::Proceed(_)
        ));
        assert!(matches!(
            decide(&input(MONDAY + 600, Ok(2), None)),
            Decision::GiveUp(_)
        ));
        // Calls that cannot be counted are calls.
        assert!(matches!(
            decide(&input(MONDAY + 1, Err("exit 1".into()), None)),
            Decision::Wait(Waiting::Drain { .. })
        ));
    }

    #[test]
    fn a_closed_window_is_waited_for_an_open_one_proceeds_force_always_proceeds() {
        let w = Window::parse(Some("mon"), Some("02-05")).unwrap().unwrap();
        // Past the drain timeout, window closed: wait for it.
        assert_eq!(
            decide(&input(MONDAY + 700, Ok(1), Some(&w))),
            Decision::Wait(Waiting::Window {
                calls: "1 call".into(),
                opens_unix: MONDAY + 2 * 3600
            })
        );
        let d = decide(&input(MONDAY + 2 * 3600, Ok(1), Some(&w)));
        assert!(
            matches!(&d, Decision::Proceed(r) if r.contains("window mon 02-05 UTC is open")),
            "{d:?}"
        );
        let mut i = input(MONDAY, Ok(5), Some(&w));
        i.force = true;
        assert!(matches!(decide(&i), Decision::Proceed(r) if r.contains("--force")));
    }
}

//! The schedule, as the ERA backup controller: weekdays (1–7, Monday = 1) and an hour window in UTC
//! (`01-04` = from 01:00 to 04:59; `20-03` wraps past midnight and belongs to the day it starts), at
//! most one successful backup per window, a failed run retried no earlier than 20 minutes later while
//! the window is open.
//!
//! systemd only wakes the service ([`units`]): every 10 minutes inside the window. Whether to run is
//! decided by [`decide`], a pure function of the clock and the backup record, so it is tested here
//! with a simulated clock rather than by waiting for timers.
use anyhow::{bail, Result};
use std::collections::BTreeSet;

/// Failed runs are retried no earlier than this.
pub const RETRY_AFTER_S: u64 = 20 * 60;
/// The timer wakes the service this often inside the window (minutes).
pub const TICK_MIN: u32 = 10;

/// A UTC calendar time (no time zones: the schedule is in UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    /// 1–7, Monday = 1.
    pub weekday: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Days since 1970-01-01.
    pub days: i64,
}

impl Utc {
    pub fn from_unix(t: u64) -> Utc {
        let days = (t / 86_400) as i64;
        let secs = t % 86_400;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            // 1970-01-01 was a Thursday (4).
            weekday: ((days + 3).rem_euclid(7) + 1) as u32,
            hour: (secs / 3600) as u32,
            minute: (secs % 3600 / 60) as u32,
            second: (secs % 60) as u32,
            days,
        }
    }

    /// `YYYYMMDDTHHMMSSZ`
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `YYYY-MM-DD HH:MM:SS UTC`
    pub fn human(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// 1–7, Monday = 1.
    pub weekdays: BTreeSet<u32>,
    /// First and last hour (inclusive), 0–23; `start > end` wraps past midnight.
    pub start: u32,
    pub end: u32,
    /// Minute of the first run in the start hour (omldeploytool's cron_backup_mm), 0 otherwise.
    pub minute: u32,
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Window {
    /// `weekdays`: `1,3,5`, `1-5`, `mon,wed`, `*` (every day); `hours`: `HH-HH` or `HH`.
    pub fn parse(weekdays: &str, hours: &str, minute: u32) -> Result<Window> {
        Window {
            weekdays: parse_weekdays(weekdays)?,
            start: 0,
            end: 0,
            minute,
        }
        .with_hours(hours)
    }

    fn with_hours(mut self, hours: &str) -> Result<Window> {
        let hour = |s: &str| -> Result<u32> {
            match s.trim().parse::<u32>() {
                Ok(h) if h < 24 => Ok(h),
                _ => bail!("hour {s:?} is not 0–23"),
            }
        };
        let (a, b) = match hours.split_once('-') {
            Some((a, b)) => (hour(a)?, hour(b)?),
            None => (hour(hours)?, hour(hours)?),
        };
        self.start = a;
        self.end = b;
        Ok(self)
    }

    fn hours(&self) -> Vec<u32> {
        if self.start <= self.end {
            (self.start..=self.end).collect()
        } else {
            (self.start..24).chain(0..=self.end).collect()
        }
    }

    /// The day (days since the epoch) of the window `t` falls in, if it falls in one.
    pub fn window_day(&self, t: u64) -> Option<i64> {
        let u = Utc::from_unix(t);
        if !self.hours().contains(&u.hour) {
            return None;
        }
        if u.hour == self.start && u.minute < self.minute {
            return None;
        }
        let wraps_back = self.start > self.end && u.hour <= self.end;
        let (day, weekday) = if wraps_back {
            (u.days - 1, (u.weekday + 5) % 7 + 1)
        } else {
            (u.days, u.weekday)
        };
        self.weekdays.contains(&weekday).then_some(day)
    }

    /// When the next backup is due: `now` (rounded down to the minute) when the window is open and
    /// no backup succeeded in it yet, else the first minute of the next window; None when the
    /// window never opens (no weekday).
    pub fn next_window(&self, now: u64, last_success: Option<u64>) -> Option<u64> {
        let done = last_success.and_then(|s| self.window_day(s));
        let mut t = now - now % 60;
        for _ in 0..=(8 * 24 * 60) {
            if let Some(d) = self.window_day(t) {
                if Some(d) != done {
                    return Some(t);
                }
            }
            t += 60;
        }
        None
    }

    /// `Mon,Tue 01:00–04:59 UTC`.
    pub fn describe(&self) -> String {
        let days: Vec<&str> = self
            .weekdays
            .iter()
            .map(|d| DAY_NAMES[(*d as usize - 1) % 7])
            .collect();
        format!(
            "{} {:02}:{:02}–{:02}:59 UTC",
            if days.len() == 7 {
                "every day".to_string()
            } else {
                days.join(",")
            },
            self.start,
            self.minute,
            self.end
        )
    }

    /// systemd OnCalendar expressions waking the service every [`TICK_MIN`] minutes in the window.
    /// Each ends in `UTC`: systemd reads a calendar without a zone in the host's local time, and
    /// `apply` sets the host's zone to the operator's `TZ`.
    pub fn on_calendar(&self) -> Vec<String> {
        let days = |shift: u32| -> String {
            let names: Vec<&str> = self
                .weekdays
                .iter()
                .map(|d| DAY_NAMES[((d - 1 + shift) % 7) as usize])
                .collect();
            names.join(",")
        };
        let mut out = Vec::new();
        let mut push = |days: String, from: u32, to: u32| {
            // The start hour begins at `minute`; later hours at :00.
            if from == self.start && self.minute > 0 {
                out.push(format!(
                    "{days} *-*-* {from:02}:{:02}/{TICK_MIN}:00 UTC",
                    self.minute
                ));
                if from < to {
                    out.push(format!(
                        "{days} *-*-* {:02}..{to:02}:00/{TICK_MIN}:00 UTC",
                        from + 1
                    ));
                }
            } else {
                out.push(format!(
                    "{days} *-*-* {from:02}..{to:02}:00/{TICK_MIN}:00 UTC"
                ));
            }
        };
        if self.start <= self.end {
            push(days(0), self.start, self.end);
        } else {
            push(days(0), self.start, 23);
            push(days(1), 0, self.end);
        }
        out
    }
}

fn parse_weekdays(s: &str) -> Result<BTreeSet<u32>> {
    let s = s.trim();
    if s == "*" || s.is_empty() {
        return Ok((1..=7).collect());
    }
    let day = |w: &str| -> Result<u32> {
        let w = w.trim().to_ascii_lowercase();
        if let Ok(n) = w.parse::<u32>() {
            if (1..=7).contains(&n) {
                return Ok(n);
            }
        }
        if let Some(i) = DAY_NAMES
            .iter()
            .position(|d| w.len() >= 3 && d.to_ascii_lowercase() == w[..3])
        {
            return Ok(i as u32 + 1);
        }
        bail!("weekday {w:?} is not 1–7 (Monday = 1) or a day name")
    };
    let mut out = BTreeSet::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                if a > b {
                    bail!("weekday range {part:?} runs backwards");
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(day(part)?);
            }
        }
    }
    Ok(out)
}

/// What the scheduled service should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run,
    /// Not now, and why.
    Skip(String),
}

/// The pure decision: run when inside a window, no success yet in this window, and the last failed
/// (or interrupted) attempt is at least [`RETRY_AFTER_S`] old.
pub fn decide(
    window: &Window,
    now: u64,
    last_success: Option<u64>,
    last_attempt: Option<u64>,
) -> Decision {
    let Some(day) = window.window_day(now) else {
        return Decision::Skip("outside the backup window".into());
    };
    if last_success.is_some_and(|s| window.window_day(s) == Some(day) && s <= now) {
        return Decision::Skip("already backed up in this window".into());
    }
    if let Some(a) = last_attempt {
        let failed = last_success.is_none_or(|s| a > s);
        if failed && a <= now && now - a < RETRY_AFTER_S {
            return Decision::Skip(format!(
                "the last attempt failed; retry no earlier than {}",
                Utc::from_unix(a + RETRY_AFTER_S).human()
            ));
        }
    }
    Decision::Run
}

pub const SERVICE: &str = "omlboot-backup.service";
pub const TIMER: &str = "omlboot-backup.timer";

/// Where `apply` puts this binary (and so what the service runs).
pub const BINARY: &str = "/usr/local/bin/omlboot";

/// The timer and service `apply` installs when a schedule is configured (backup_hours or
/// cron_backup_hh): (host path, content); empty when no schedule is configured.
pub fn units(settings: &crate::config::schema::Settings) -> Vec<(String, String)> {
    match super::config::Backup::from_settings(settings).window {
        Some(w) => render_units(&w, BINARY),
        None => Vec::new(),
    }
}

/// The timer and service for `window`, the service running `binary`.
pub fn render_units(window: &Window, binary: &str) -> Vec<(String, String)> {
    let calendars: String = window
        .on_calendar()
        .iter()
        .map(|c| format!("OnCalendar={c}\n"))
        .collect();
    let timer = format!(
        "# {TIMER}: managed by omlboot (backup_weekdays/backup_hours).\n\
         [Unit]\n\
         Description=OMniLeads backup window (wakes {SERVICE}; it decides whether to run)\n\
         \n\
         [Timer]\n\
         {calendars}\
         AccuracySec=1min\n\
         Persistent=false\n\
         Unit={SERVICE}\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    );
    let service = format!(
        "# {SERVICE}: managed by omlboot.\n\
         [Unit]\n\
         Description=OMniLeads backup (at most once per window; failed runs retried after 20 min)\n\
         Wants=network-online.target\n\
         After=network-online.target postgresql.service\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={binary} backup --scheduled\n\
         Nice=10\n\
         IOSchedulingClass=best-effort\n\
         IOSchedulingPriority=7\n\
         TimeoutStartSec=6h\n"
    );
    vec![
        (format!("/etc/systemd/system/{TIMER}"), timer),
        (format!("/etc/systemd/system/{SERVICE}"), service),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-03-04 00:00:00 UTC, a Monday.
    const MON: u64 = 1_709_510_400;
    const H: u64 = 3600;
    const M: u64 = 60;

    #[test]
    fn calendar_math() {
        let u = Utc::from_unix(MON + 7 * H + 8 * M + 9);
        assert_eq!(
            (u.year, u.month, u.day, u.weekday, u.hour, u.minute),
            (2024, 3, 4, 1, 7, 8)
        );
        assert_eq!(u.compact(), "20240304T070809Z");
        assert_eq!(Utc::from_unix(0).weekday, 4);
        assert_eq!(Utc::from_unix(951_782_400).day, 29); // 2000-02-29
    }

    #[test]
    fn window_and_weekdays() {
        let w = Window::parse("1,3", "01-04", 0).unwrap();
        assert_eq!(w.window_day(MON + H), Some((MON / 86_400) as i64));
        assert_eq!(
            w.window_day(MON + 4 * H + 59 * M),
            Some((MON / 86_400) as i64)
        );
        assert_eq!(w.window_day(MON + 5 * H), None);
        assert_eq!(
            w.window_day(MON + 86_400 + 2 * H),
            None,
            "Tuesday is not in 1,3"
        );
        // Wrapping window 20-03 on Sunday (7): Monday 02:00 belongs to Sunday's window.
        let w = Window::parse("sun", "20-03", 0).unwrap();
        assert_eq!(w.window_day(MON + 2 * H), Some((MON / 86_400) as i64 - 1));
        assert_eq!(w.window_day(MON + 21 * H), None);
        assert_eq!(parse_weekdays("1-5").unwrap().len(), 5);
        assert!(parse_weekdays("8").is_err());
        assert!(Window::parse("*", "24", 0).is_err());
    }

    #[test]
    fn simulated_clock_once_a_day_and_retry_after_20_minutes() {
        let w = Window::parse("*", "01-04", 0).unwrap();
        let (mut success, mut attempt): (Option<u64>, Option<u64>) = (None, None);
        let mut runs = Vec::new();
        // Every 10 minutes for two days; the first attempt of day 1 fails, every other succeeds.
        let mut fail_next = true;
        let mut t = MON;
        while t < MON + 2 * 86_400 {
            if decide(&w, t, success, attempt) == Decision::Run {
                attempt = Some(t);
                if fail_next {
                    fail_next = false;
                } else {
                    success = Some(t);
                }
                runs.push(t);
            }
            t += 10 * M;
        }
        // Day 1: 01:00 fails, 01:20 (not 01:10) retries and succeeds; day 2: 01:00 only.
        assert_eq!(runs, vec![MON + H, MON + H + 20 * M, MON + 86_400 + H]);
    }

    #[test]
    fn an_interrupted_run_counts_as_a_failure() {
        let w = Window::parse("*", "01-04", 0).unwrap();
        let killed_at = MON + H;
        assert!(matches!(
            decide(&w, MON + H + 19 * M, None, Some(killed_at)),
            Decision::Skip(_)
        ));
        assert_eq!(
            decide(&w, MON + H + 20 * M, None, Some(killed_at)),
            Decision::Run
        );
        // Yesterday's success does not block today.
        assert_eq!(
            decide(&w, MON + 86_400 + H, Some(MON + H), Some(MON + H)),
            Decision::Run
        );
    }

    #[test]
    fn calendars() {
        let w = Window::parse("1-5", "01-04", 0).unwrap();
        assert_eq!(
            w.on_calendar(),
            vec!["Mon,Tue,Wed,Thu,Fri *-*-* 01..04:00/10:00 UTC"]
        );
        let w = Window::parse("7", "22-01", 0).unwrap();
        assert_eq!(
            w.on_calendar(),
            vec![
                "Sun *-*-* 22..23:00/10:00 UTC",
                "Mon *-*-* 00..01:00/10:00 UTC"
            ]
        );
        let w = Window::parse("*", "03", 30).unwrap();
        assert_eq!(w.on_calendar().len(), 1);
    }
}

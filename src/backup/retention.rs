//! Retention: keep the newest backup of each of the last N days, N ISO weeks and N months that have
//! backups (restic's `forget --keep-daily/weekly/monthly`), and never the newest verified backup.
//! Pure: the caller deletes what [`plan`] returns.
use super::schedule::Utc;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
}

/// What retention needs to know about one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    /// Unix seconds.
    pub created_at: u64,
    pub verified: bool,
}

/// Split into (keep, delete), both newest first. Every item lands in exactly one of them.
pub fn plan(items: &[Item], policy: Policy) -> (Vec<Item>, Vec<Item>) {
    let mut sorted: Vec<&Item> = items.iter().collect();
    sorted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.name.cmp(&a.name)));
    let mut keep: BTreeSet<usize> = BTreeSet::new();
    if let Some(i) = sorted.iter().position(|i| i.verified) {
        keep.insert(i);
    }
    type Bucket = fn(u64) -> i64;
    let buckets: [(usize, Bucket); 3] = [
        (policy.daily, |t| Utc::from_unix(t).days),
        // ISO weeks start on Monday: days since the epoch's Monday (1969-12-29) / 7.
        (policy.weekly, |t| {
            (Utc::from_unix(t).days + 3).div_euclid(7)
        }),
        (policy.monthly, |t| {
            let u = Utc::from_unix(t);
            u.year * 12 + i64::from(u.month)
        }),
    ];
    for (n, bucket) in buckets {
        let mut seen = BTreeSet::new();
        for (i, item) in sorted.iter().enumerate() {
            if seen.len() >= n {
                break;
            }
            if seen.insert(bucket(item.created_at)) {
                keep.insert(i);
            }
        }
    }
    let (mut k, mut d) = (Vec::new(), Vec::new());
    for (i, item) in sorted.into_iter().enumerate() {
        if keep.contains(&i) {
            k.push(item.clone());
        } else {
            d.push(item.clone());
        }
    }
    (k, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(i: usize, t: u64, verified: bool) -> Item {
        Item {
            name: format!("b{i}"),
            created_at: t,
            verified,
        }
    }

    #[test]
    fn daily_weekly_monthly() {
        let day = 86_400;
        // One backup a day for 100 days, all verified.
        let items: Vec<Item> = (0..100)
            .map(|i| item(i, 1_700_000_000 + i as u64 * day, true))
            .collect();
        let (keep, delete) = plan(
            &items,
            Policy {
                daily: 7,
                weekly: 4,
                monthly: 3,
            },
        );
        assert_eq!(keep.len() + delete.len(), 100);
        assert_eq!(keep[0].name, "b99");
        assert!(keep.len() <= 14 && keep.len() >= 7, "{}", keep.len());
    }

    proptest! {
        #[test]
        fn never_deletes_the_newest_verified_and_partitions(
            raw in proptest::collection::vec((0u64..400 * 86_400, any::<bool>()), 0..60),
            daily in 0usize..10, weekly in 0usize..6, monthly in 0usize..6,
        ) {
            let items: Vec<Item> = raw.iter().enumerate()
                .map(|(i, (t, v))| item(i, 1_600_000_000 + t, *v)).collect();
            let policy = Policy { daily, weekly, monthly };
            let (keep, delete) = plan(&items, policy);
            // A partition of the input.
            prop_assert_eq!(keep.len() + delete.len(), items.len());
            for i in &items {
                prop_assert!(keep.contains(i) != delete.contains(i));
            }
            // The newest verified backup is kept.
            let newest_verified = items.iter().filter(|i| i.verified)
                .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
            if let Some(nv) = newest_verified {
                prop_assert!(keep.contains(nv));
            }
            // Bounded: at most one per bucket plus the newest verified.
            prop_assert!(keep.len() <= daily + weekly + monthly + 1);
            // With any daily retention, the newest backup of all is kept.
            if daily > 0 && !items.is_empty() {
                let newest = items.iter().map(|i| i.created_at).max().unwrap();
                prop_assert!(keep.iter().any(|k| k.created_at == newest));
            }
            // The newest backup of each of the `daily` most recent days is kept.
            let mut days: Vec<i64> = items.iter().map(|i| Utc::from_unix(i.created_at).days).collect();
            days.sort_unstable_by(|a, b| b.cmp(a));
            days.dedup();
            for d in days.iter().take(daily) {
                let newest_that_day = items.iter().filter(|i| Utc::from_unix(i.created_at).days == *d)
                    .map(|i| i.created_at).max().unwrap();
                prop_assert!(keep.iter().any(|k| k.created_at == newest_that_day));
            }
        }
    }
}

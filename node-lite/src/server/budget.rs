//! What a node may send, besides the upload rate cap: an egress budget per UTC day and per
//! UTC month (`serve.max_egress_per_day`, `serve.max_egress_per_month`) and a cap on the
//! downloaders served at once (`serve.max_concurrent_downloaders`). Past either the node
//! answers `503` with `Retry-After` (the seconds until the period ends, or 1) and says so
//! in its log and metrics.
//!
//! Bytes are reserved before they are sent, so the budget is never passed, and the counts
//! are saved to `egress.json` in the data directory every few seconds and when the node
//! stops, so a restart does not hand out the budget again (a crash forgets at most the
//! last few seconds).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dsi_api::ErrorCode;
use dsi_protocol::NodeId;
use dsi_service::http::ApiError;
use serde::{Deserialize, Serialize};

/// Milliseconds in a day.
const DAY_MS: u64 = 86_400_000;

/// The UTC (year, month) of a day number (days since 1970-01-01), by the civil-from-days
/// algorithm of H. Hinnant.
pub fn year_month(days: u64) -> (i64, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// The day number of the first day of the month after (`year`, `month`).
fn next_month_start(year: i64, month: u32) -> u64 {
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    // Days from civil (H. Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468).max(0) as u64
}

/// The counts saved in `egress.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressCounts {
    /// The UTC day counted (days since 1970-01-01).
    pub day: u64,
    /// Bytes sent that day.
    pub day_bytes: u64,
    /// The UTC month counted, `YYYY-MM`.
    pub month: String,
    /// Bytes sent that month.
    pub month_bytes: u64,
}

impl EgressCounts {
    /// Starts new periods for `now_ms` where the counted ones ended.
    fn roll(&mut self, now_ms: u64) {
        let day = now_ms / DAY_MS;
        let (year, month) = year_month(day);
        let month = format!("{year:04}-{month:02}");
        if self.day != day {
            self.day = day;
            self.day_bytes = 0;
        }
        if self.month != month {
            self.month = month;
            self.month_bytes = 0;
        }
    }
}

/// Why bytes may not be sent now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    /// The day's budget: until the next UTC midnight.
    Day {
        /// Seconds until it renews.
        retry_after: u64,
    },
    /// The month's budget: until the first of the next month.
    Month {
        /// Seconds until it renews.
        retry_after: u64,
    },
}

impl Spent {
    /// Seconds until the budget renews.
    pub fn retry_after(self) -> u64 {
        match self {
            Spent::Day { retry_after } | Spent::Month { retry_after } => retry_after,
        }
    }

    /// The answer a refused request gets.
    pub fn error(self, limits: (u64, u64)) -> ApiError {
        let (what, limit) = match self {
            Spent::Day { .. } => ("day", "serve.max_egress_per_day"),
            Spent::Month { .. } => ("month", "serve.max_egress_per_month"),
        };
        let bytes = match self {
            Spent::Day { .. } => limits.0,
            Spent::Month { .. } => limits.1,
        };
        ApiError::new(
            ErrorCode::EgressBudgetSpent,
            format!(
                "this node has sent its {} for the {what} ({limit}); it serves again in {} s",
                crate::size::human_bytes(bytes),
                self.retry_after()
            ),
        )
    }
}

/// The egress budget of one node.
#[derive(Debug)]
pub struct Egress {
    per_day: u64,
    per_month: u64,
    path: Option<PathBuf>,
    state: Mutex<(EgressCounts, bool)>,
    /// Whether the refusal of the current period was logged.
    warned: Mutex<Option<(u64, String)>>,
}

impl Egress {
    /// A budget of `per_day` and `per_month` bytes (0: none), counted in `path` (None: in
    /// memory only).
    pub fn open(per_day: u64, per_month: u64, path: Option<PathBuf>) -> Self {
        let counts = match path.as_ref().map(std::fs::read) {
            Some(Ok(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "egress.json is damaged: counting from zero");
                EgressCounts::default()
            }),
            Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(error = %e, "cannot read egress.json: counting from zero");
                EgressCounts::default()
            }
            _ => EgressCounts::default(),
        };
        Self {
            per_day,
            per_month,
            path,
            state: Mutex::new((counts, false)),
            warned: Mutex::new(None),
        }
    }

    /// The budgets (per day, per month; 0: none).
    pub fn limits(&self) -> (u64, u64) {
        (self.per_day, self.per_month)
    }

    /// The counts now.
    pub fn counts(&self, now_ms: u64) -> EgressCounts {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.roll(now_ms);
        state.0.clone()
    }

    /// Which budget sending `bytes` more would pass at `now_ms`, if any (the month's first:
    /// when both are spent, the later renewal is the one to wait for).
    fn passes(&self, counts: &EgressCounts, bytes: u64, now_ms: u64) -> Option<Spent> {
        if self.per_month > 0 && counts.month_bytes.saturating_add(bytes) > self.per_month {
            let (year, month) = year_month(counts.day);
            let end_ms = next_month_start(year, month).saturating_mul(DAY_MS);
            return Some(Spent::Month {
                retry_after: end_ms.saturating_sub(now_ms).div_ceil(1000).max(1),
            });
        }
        if self.per_day > 0 && counts.day_bytes.saturating_add(bytes) > self.per_day {
            return Some(Spent::Day {
                retry_after: (DAY_MS - now_ms % DAY_MS).div_ceil(1000),
            });
        }
        None
    }

    /// Which budget sending `bytes` now would pass, without reserving anything.
    pub fn check(&self, bytes: u64, now_ms: u64) -> Option<Spent> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.roll(now_ms);
        self.passes(&state.0, bytes, now_ms)
    }

    /// Reserves `bytes` to send now, or says which budget they would pass.
    pub fn reserve(&self, bytes: u64, now_ms: u64) -> Result<(), Spent> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (counts, dirty) = &mut *state;
        counts.roll(now_ms);
        if let Some(spent) = self.passes(counts, bytes, now_ms) {
            self.warn(counts, spent);
            return Err(spent);
        }
        counts.day_bytes += bytes;
        counts.month_bytes += bytes;
        *dirty = true;
        Ok(())
    }

    fn warn(&self, counts: &EgressCounts, spent: Spent) {
        let period = match spent {
            Spent::Day { .. } => (counts.day, String::new()),
            Spent::Month { .. } => (0, counts.month.clone()),
        };
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.as_ref() != Some(&period) {
            tracing::warn!(
                day_bytes = counts.day_bytes,
                month_bytes = counts.month_bytes,
                retry_after_secs = spent.retry_after(),
                "egress budget spent: refusing downloads (503) until it renews"
            );
            *warned = Some(period);
        }
    }

    /// Saves the counts if they changed: a temporary file (named for this process),
    /// synced, renamed into place, and the directory synced. A failed save is tried again
    /// at the next call.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let counts = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !state.1 {
                return Ok(());
            }
            state.1 = false;
            state.0.clone()
        };
        let written = (|| {
            use std::io::Write;
            let temp = path.with_extension(format!("json.{}.tmp", std::process::id()));
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&serde_json::to_vec(&counts).unwrap_or_default())?;
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if written.is_err() {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        }
        written
    }
}

/// Who a download counts as: its signed downloader key, else its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DownloaderKey {
    /// The `x-dsi-downloader` signer.
    Node(NodeId),
    /// The connection's address (a seeder that does not gate serving).
    Address(IpAddr),
}

/// The downloaders being served at once.
#[derive(Debug, Default)]
pub struct Downloaders {
    max: usize,
    serving: Mutex<HashMap<DownloaderKey, usize>>,
}

/// A downloader's request in flight; dropped when its body is sent (or abandoned).
#[derive(Debug)]
pub struct Slot {
    downloaders: Arc<Downloaders>,
    key: DownloaderKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut serving = self
            .downloaders
            .serving
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = serving.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                serving.remove(&self.key);
            }
        }
    }
}

impl Downloaders {
    /// At most `max` downloaders at once (0: no cap).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            serving: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `key`: a downloader already being served always gets one (its requests
    /// are pipelined); a new one only while fewer than the cap are served.
    pub fn admit(self: &Arc<Self>, key: DownloaderKey) -> Result<Slot, ApiError> {
        let mut serving = self.serving.lock().unwrap_or_else(|e| e.into_inner());
        if self.max > 0 && !serving.contains_key(&key) && serving.len() >= self.max {
            return Err(ApiError::new(
                ErrorCode::TooManyDownloaders,
                format!(
                    "this node serves {} downloaders at once (serve.max_concurrent_downloaders); \
                     retry in a moment",
                    self.max
                ),
            ));
        }
        *serving.entry(key).or_default() += 1;
        Ok(Slot {
            downloaders: self.clone(),
            key,
        })
    }

    /// Downloaders served now.
    pub fn serving(&self) -> usize {
        self.serving.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(year_month(0), (1970, 1));
        // 2026-12-04 is day 20_791; 2024-02-29 is day 19_782.
        assert_eq!(year_month(20_791), (2026, 12));
        assert_eq!(year_month(19_782), (2024, 2));
        assert_eq!(year_month(19_783), (2024, 3));
        assert_eq!(next_month_start(1970, 1), 31);
        assert_eq!(next_month_start(2026, 12), 20_819); // 2027-01-01
        assert_eq!(next_month_start(2024, 2), 19_783); // 2024-03-01
    }

    #[test]
    fn the_budget_is_never_passed_and_renews() {
        let egress = Egress::open(100, 250, None);
        let day = 20_791 * DAY_MS;
        assert_eq!(egress.reserve(60, day), Ok(()));
        assert_eq!(egress.reserve(40, day + 1), Ok(()));
        let spent = egress.reserve(1, day + 1000).unwrap_err();
        assert_eq!(
            spent,
            Spent::Day {
                retry_after: (DAY_MS - 1000) / 1000
            }
        );
        // The next day: 100 more, then the month (250) stops it.
        assert_eq!(egress.reserve(100, day + DAY_MS), Ok(()));
        assert_eq!(egress.reserve(50, day + 2 * DAY_MS), Ok(()));
        let spent = egress.reserve(1, day + 2 * DAY_MS).unwrap_err();
        // Until 2027-01-01, from 2026-12-06 00:00.
        assert_eq!(spent.retry_after(), 26 * DAY_MS / 1000);
        assert!(matches!(spent, Spent::Month { .. }));
        assert_eq!(
            spent.error(egress.limits()).code(),
            ErrorCode::EgressBudgetSpent
        );
    }

    #[test]
    fn the_counts_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("egress.json");
        let now = 20_791 * DAY_MS;
        let egress = Egress::open(100, 0, Some(path.clone()));
        egress.reserve(70, now).unwrap();
        egress.save().unwrap();
        let again = Egress::open(100, 0, Some(path));
        assert_eq!(again.counts(now).day_bytes, 70);
        assert!(again.reserve(31, now).is_err());
    }

    #[test]
    fn the_downloader_cap_counts_downloaders_not_requests() {
        let downloaders = Downloaders::new(1);
        let a = DownloaderKey::Address(IpAddr::from([127, 0, 0, 1]));
        let b = DownloaderKey::Address(IpAddr::from([127, 0, 0, 2]));
        let first = downloaders.admit(a).unwrap();
        let second = downloaders.admit(a).unwrap();
        assert_eq!(
            downloaders.admit(b).unwrap_err().code(),
            ErrorCode::TooManyDownloaders
        );
        drop(first);
        assert!(
            downloaders.admit(b).is_err(),
            "a still has a request in flight"
        );
        drop(second);
        assert!(downloaders.admit(b).is_ok());
        assert_eq!(downloaders.serving(), 0);
    }
}

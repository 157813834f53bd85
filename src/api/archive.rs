//! `GET /v1/archive/search`: the archive's log search for the dashboard's log
//! tables and for scripts, with the query language of `secmon archive
//! search`; `GET /v1/archive/counts`: the same matches counted by a field's
//! value in time buckets (the dashboard's heatmap and top-N tables). The
//! running daemon owns the archive, so both run on its writer thread; every
//! search or count is an access-audit record naming the API key (or
//! dashboard user) that made it.

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::Uri;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::archive::writer::ArchiveMsg;
use secmon_core::Timestamp;

const MAX_LIMIT: usize = 10_000;

#[derive(Deserialize)]
pub struct SearchQuery {
    /// RFC 3339, epoch ms or a duration ago; default 24h.
    since: Option<String>,
    until: Option<String>,
    /// Comma-separated categories; default all but `audit`.
    category: Option<String>,
    /// A condition (`event = auth.login_failed and fields.ip = 1.2.3.4`).
    #[serde(rename = "where")]
    where_: Option<String>,
    /// Same as `where`.
    q: Option<String>,
    limit: Option<usize>,
}

/// What every archive route starts with: the archive thread's queue (or
/// 503 when the archive is off), now, and the range asked for (`since`
/// defaults to 24 h ago; no `until` means open-ended).
fn archive_range(
    app: &AppState,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<
    (
        flume::Sender<ArchiveMsg>,
        Timestamp,
        Timestamp,
        Option<Timestamp>,
    ),
    ApiError,
> {
    let Some(tx) = app.archive.clone() else {
        return Err(ApiError::Unavailable(
            "the archive is disabled (archive.enabled: false)".into(),
        ));
    };
    let now = app.now();
    let from = super::parse_time(since.unwrap_or("24h"), now, "since")?;
    let to = until
        .map(|u| super::parse_time(u, now, "until"))
        .transpose()?;
    Ok((tx, now, from, to))
}

pub async fn search(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let (tx, _, from, to) = archive_range(&app, q.since.as_deref(), q.until.as_deref())?;
    let expr = q
        .where_
        .as_deref()
        .or(q.q.as_deref())
        .filter(|s| !s.trim().is_empty());
    let pred = crate::archive::predicate(expr).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = q.limit.unwrap_or(200).clamp(1, MAX_LIMIT);
    let query = secmon_archive::Query {
        from: Some(from),
        to,
        categories: categories(q.category.as_deref()),
        limit,
        text: uri.query().unwrap_or("").to_string(),
    };
    let (reply, rx) = tokio::sync::oneshot::channel();
    tx.send_async(ArchiveMsg::Search {
        query,
        pred,
        who: format!("api:{}", caller.author()),
        reply,
    })
    .await
    .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    let (hits, sum) = rx
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?
        .map_err(ApiError::BadRequest)?;
    let hits: Vec<Value> = hits
        .iter()
        .map(|h| json!({ "category": h.category, "seq": h.seq, "event": h.event.to_json() }))
        .collect();
    Ok(Json(json!({
        "hits": hits,
        "scanned": sum.scanned,
        "damaged": sum.damaged,
        "limited": sum.limited,
    })))
}

/// Distinct values a count keeps rows for; further values are counted
/// together in `other` (a botnet's million addresses must not cost a
/// million rows of memory).
const MAX_VALUES: usize = 10_000;
/// Columns a count may ask for.
const MAX_BUCKETS: usize = 240;
/// Rows a count may return.
const MAX_TOP: usize = 100;

#[derive(Deserialize)]
pub struct CountsQuery {
    /// RFC 3339, epoch ms or a duration ago; default 24h.
    since: Option<String>,
    until: Option<String>,
    category: Option<String>,
    /// Which events count (`event = auth.login_failed`).
    #[serde(rename = "where")]
    where_: Option<String>,
    /// The field whose values make the rows (`fields.ip`); default `event`
    /// (the top event names).
    by: Option<String>,
    /// Columns over the range (default 24).
    buckets: Option<usize>,
    /// Rows returned, the largest totals first (default 20).
    top: Option<usize>,
}

/// One value's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub total: u64,
    pub counts: Vec<u64>,
    /// Event time of the first and last counted event.
    pub first: i64,
    pub last: i64,
}

impl Row {
    fn new(buckets: usize) -> Self {
        Row {
            total: 0,
            counts: vec![0; buckets],
            first: i64::MAX,
            last: i64::MIN,
        }
    }

    fn add(&mut self, bucket: usize, t: i64) {
        self.total += 1;
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += 1;
        }
        self.first = self.first.min(t);
        self.last = self.last.max(t);
    }

    fn merge(&mut self, o: &Row) {
        self.total += o.total;
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
    }

    fn json(&self) -> Value {
        let t = |v: i64| {
            if v == i64::MIN || v == i64::MAX {
                Value::Null
            } else {
                Value::from(v)
            }
        };
        json!({"total": self.total, "counts": self.counts, "first": t(self.first), "last": t(self.last)})
    }
}

/// Counts of matching events by one field's value in time buckets: what
/// the heatmap and the top-N tables draw. Pure, so it is tested alone.
#[derive(Debug)]
pub struct Counts {
    by: String,
    /// Start of the first bucket (aligned to `step`) and bucket width, ms.
    pub start: i64,
    pub step: i64,
    rows: std::collections::HashMap<String, Row>,
    /// Values past [`MAX_VALUES`], together.
    overflow: Row,
    overflow_values: u64,
    /// Matching events without the field.
    pub missing: u64,
}

impl Counts {
    /// `buckets` columns over `[since, until)`: the width is rounded up to
    /// whole 10 s (whole minutes from a minute on) and the first column
    /// starts on a multiple of it, so auto-refresh does not shift columns.
    pub fn new(by: &str, since: i64, until: i64, buckets: usize) -> Self {
        let span = until.saturating_sub(since).max(1);
        let buckets = buckets.clamp(1, MAX_BUCKETS) as i64;
        let raw = (span + buckets - 1) / buckets;
        let unit = if raw >= 60_000 { 60_000 } else { 10_000 };
        let step = ((raw + unit - 1) / unit).max(1) * unit;
        let start = since - since.rem_euclid(step);
        let n = ((until - start + step - 1) / step).max(1) as usize;
        Counts {
            by: by.to_string(),
            start,
            step,
            rows: std::collections::HashMap::new(),
            overflow: Row::new(n),
            overflow_values: 0,
            missing: 0,
        }
    }

    pub fn buckets(&self) -> usize {
        self.overflow.counts.len()
    }

    pub fn add(&mut self, ev: &secmon_core::Event) {
        let t = ev.time.0;
        let Some(v) = ev.get(&self.by).filter(|v| !v.is_null()) else {
            self.missing += 1;
            return;
        };
        let bucket = (t.saturating_sub(self.start) / self.step).max(0) as usize;
        let n = self.buckets();
        let bucket = bucket.min(n - 1);
        let key = v.to_key();
        if let Some(r) = self.rows.get_mut(key.as_str()) {
            r.add(bucket, t);
        } else if self.rows.len() < MAX_VALUES {
            let mut r = Row::new(n);
            r.add(bucket, t);
            self.rows.insert(key.to_string(), r);
        } else {
            self.overflow_values += 1;
            self.overflow.add(bucket, t);
        }
    }

    /// The `top` rows with the largest totals (ties by value), and every
    /// other value summed into `other`.
    pub fn top(&self, top: usize) -> (Vec<(&str, &Row)>, Row, u64) {
        let mut all: Vec<(&str, &Row)> = self.rows.iter().map(|(k, r)| (k.as_str(), r)).collect();
        all.sort_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(b.0)));
        let rest = all.split_off(all.len().min(top));
        let mut other = self.overflow.clone();
        for (_, r) in &rest {
            other.merge(r);
        }
        (all, other, rest.len() as u64 + self.overflow_values)
    }

    pub fn total(&self) -> u64 {
        self.rows.values().map(|r| r.total).sum::<u64>() + self.overflow.total
    }

    pub fn to_json(&self, top: usize) -> Value {
        let (rows, other, other_values) = self.top(top);
        let rows: Vec<Value> = rows
            .iter()
            .map(|(v, r)| {
                let mut j = r.json();
                j["value"] = Value::from(*v);
                j
            })
            .collect();
        let mut other_j = other.json();
        other_j["values"] = Value::from(other_values);
        json!({
            "by": self.by,
            "start": self.start,
            "step_ms": self.step,
            "buckets": self.buckets(),
            "rows": rows,
            "other": other_j,
            "total": self.total(),
            "missing": self.missing,
            "distinct": self.rows.len() as u64 + self.overflow_values,
            "capped": self.overflow.total > 0,
        })
    }
}

/// `GET /v1/archive/counts`: matching archived events counted by a field's
/// value (`by`) in time buckets over the range, the `top` values as rows.
/// The heatmap of failed logins by IP reads this: every failed login, not
/// only those that made an alert. Runs on the archive thread like a search
/// and is recorded in the access audit as one.
pub async fn counts(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    Query(q): Query<CountsQuery>,
) -> Result<Json<Value>, ApiError> {
    let (tx, now, from, to) = archive_range(&app, q.since.as_deref(), q.until.as_deref())?;
    let to = to.unwrap_or(now);
    if to.0 <= from.0 {
        return Err(ApiError::BadRequest("until must be after since".into()));
    }
    let by = q.by.as_deref().unwrap_or("event").trim();
    if by.is_empty() || by.len() > 256 {
        return Err(ApiError::BadRequest(
            "by: a field path such as fields.ip".into(),
        ));
    }
    let expr = q.where_.as_deref().filter(|s| !s.trim().is_empty());
    let pred = crate::archive::predicate(expr).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let buckets = q.buckets.unwrap_or(24).clamp(1, MAX_BUCKETS);
    let top = q.top.unwrap_or(20).clamp(1, MAX_TOP);
    let counts = std::sync::Arc::new(std::sync::Mutex::new(Counts::new(
        by, from.0, to.0, buckets,
    )));
    let visit = {
        let counts = counts.clone();
        Box::new(move |h: secmon_archive::Hit| {
            if let Ok(mut c) = counts.lock() {
                c.add(&h.event);
            }
        })
    };
    let query = secmon_archive::Query {
        from: Some(from),
        to: Some(to),
        categories: categories(q.category.as_deref()),
        limit: 0,
        text: uri.query().unwrap_or("").to_string(),
    };
    let (reply, rx) = tokio::sync::oneshot::channel();
    tx.send_async(ArchiveMsg::Scan {
        query,
        pred,
        who: format!("api:{}", caller.author()),
        visit,
        reply,
    })
    .await
    .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    let sum = rx
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?
        .map_err(ApiError::BadRequest)?;
    let c = counts
        .lock()
        .map_err(|_| ApiError::Internal("counts lock".into()))?;
    let mut out = c.to_json(top);
    out["since"] = Value::from(from.0);
    out["until"] = Value::from(to.0);
    out["scanned"] = Value::from(sum.scanned);
    out["damaged"] = Value::from(sum.damaged);
    Ok(Json(out))
}

fn categories(c: Option<&str>) -> Vec<String> {
    c.map(|c| {
        c.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmon_core::{Event, Fields, Timestamp};

    fn ev(t: i64, ip: Option<&str>) -> Event {
        let mut f = Fields::new();
        f.insert("event", "auth.login_failed".into());
        if let Some(ip) = ip {
            f.insert("fields.ip", ip.into());
        }
        Event::new(Timestamp(t), f)
    }

    #[test]
    fn buckets_are_aligned_and_cover_the_range() {
        // 24 h in 24 columns: whole hours from the hour.
        let h = 3_600_000;
        let c = Counts::new("fields.ip", 10 * h + 5, 34 * h + 5, 24);
        assert_eq!((c.start, c.step, c.buckets()), (10 * h, h, 25));
        // A minute in 24 columns: 10 s wide (2.5 s rounded up).
        let c = Counts::new("fields.ip", 0, 60_000, 24);
        assert_eq!((c.start, c.step, c.buckets()), (0, 10_000, 6));
        // Out-of-range asks are clamped, never zero.
        let c = Counts::new("fields.ip", 0, 1, 0);
        assert_eq!(c.buckets(), 1);
        assert!(Counts::new("x", 0, 10 * h, 100_000).buckets() <= MAX_BUCKETS + 1);
    }

    #[test]
    fn counts_rows_by_value_with_top_and_other() {
        let mut c = Counts::new("fields.ip", 0, 60_000, 6);
        for (t, ip) in [
            (1_000, "a"),
            (2_000, "a"),
            (15_000, "a"),
            (15_000, "b"),
            (59_999, "c"),
            (20_000, "c"),
        ] {
            c.add(&ev(t, Some(ip)));
        }
        c.add(&ev(3_000, None));
        let (top, other, others) = c.top(2);
        assert_eq!(top[0].0, "a");
        assert_eq!(top[0].1.counts, vec![2, 1, 0, 0, 0, 0]);
        assert_eq!((top[0].1.first, top[0].1.last), (1_000, 15_000));
        assert_eq!(top[1].0, "c", "ties broken by value");
        assert_eq!(top[1].1.counts, vec![0, 0, 1, 0, 0, 1]);
        assert_eq!((other.total, others), (1, 1));
        assert_eq!(other.counts, vec![0, 1, 0, 0, 0, 0]);
        assert_eq!((c.total(), c.missing), (6, 1));
        let j = c.to_json(2);
        assert_eq!(j["rows"][0]["value"], "a");
        assert_eq!(j["rows"][0]["total"], 3);
        assert_eq!(j["other"]["values"], 1);
        assert_eq!(j["distinct"], 3);
        assert_eq!(j["capped"], false);
    }

    #[test]
    fn values_past_the_cap_are_counted_together() {
        let mut c = Counts::new("fields.ip", 0, 60_000, 1);
        for i in 0..MAX_VALUES + 5 {
            c.add(&ev(1_000, Some(&format!("10.0.{}.{}", i / 256, i % 256))));
        }
        assert_eq!(c.total(), (MAX_VALUES + 5) as u64);
        let j = c.to_json(10);
        assert_eq!(j["capped"], true);
        assert_eq!(j["distinct"], (MAX_VALUES + 5) as u64);
        assert_eq!(j["other"]["total"], (MAX_VALUES + 5 - 10) as u64);
    }
}

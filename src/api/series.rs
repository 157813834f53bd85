//! `GET /v1/series` and `GET /v1/series/list`: metric history for the
//! dashboard's charts, from the series store the engine thread records into
//! every 10 s (10 s resolution for 24 h, 5 min for 7 days).

use axum::Json;
use axum::extract::{Query, State};
use secmon_core::Dur;
use secmon_series::{Func, LabelFilter, Labels, QueryError};
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, AppState};

/// Points a default step aims at (a chart a few hundred pixels wide).
const DEFAULT_POINTS: i64 = 360;

#[derive(Deserialize)]
pub struct SeriesQuery {
    metric: String,
    /// RFC 3339 or a duration ago; default 24h.
    since: Option<String>,
    until: Option<String>,
    /// e.g. 10s, 5m; default: about 360 points over the range.
    step: Option<String>,
    /// last (default), avg, min, max, rate, increase.
    func: Option<String>,
    /// `k=v,k2=v2`: one exact label set; default every label set of the metric.
    labels: Option<String>,
}

pub async fn query(
    State(app): State<AppState>,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = app.now();
    let since = super::parse_time(q.since.as_deref().unwrap_or("24h"), now, "since")?;
    let until = match q.until.as_deref() {
        Some(u) => super::parse_time(u, now, "until")?,
        None => now,
    };
    let step = match q.step.as_deref() {
        Some(s) => Dur::parse(s).map_err(|e| ApiError::BadRequest(format!("step: {e}")))?,
        None => {
            let span = until.0.saturating_sub(since.0).max(1);
            let raw = span / DEFAULT_POINTS;
            let res = if now.0.saturating_sub(since.0) <= 24 * 3_600_000 {
                secmon_series::RAW_STEP_MS
            } else {
                secmon_series::ROLLUP_STEP_MS
            };
            Dur::from_millis(raw.div_euclid(res).saturating_add(1).saturating_mul(res))
        }
    };
    let func: Func = q
        .func
        .as_deref()
        .unwrap_or("last")
        .parse()
        .map_err(|e: QueryError| ApiError::BadRequest(e.to_string()))?;
    let labels = match q.labels.as_deref() {
        None | Some("") => LabelFilter::All,
        Some(s) => {
            let mut l = Labels::new();
            for pair in s.split(',') {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    ApiError::BadRequest(format!("labels: {pair:?} is not key=value"))
                })?;
                l.insert(k.trim(), v.trim());
            }
            LabelFilter::Exact(l)
        }
    };
    let query = secmon_series::Query {
        metric: q.metric,
        labels,
        since,
        until,
        step,
        func,
    };
    let store = app
        .shared
        .series
        .lock()
        .map_err(|_| ApiError::Internal("series lock".into()))?;
    match store.query(&query) {
        Ok(data) => serde_json::to_value(data)
            .map(Json)
            .map_err(|e| ApiError::Internal(e.to_string())),
        Err(e @ (QueryError::UnknownMetric(_) | QueryError::UnknownSeries { .. })) => {
            Err(ApiError::NotFound(e.to_string()))
        }
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

pub async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = app
        .shared
        .series
        .lock()
        .map_err(|_| ApiError::Internal("series lock".into()))?;
    serde_json::to_value(store.list())
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

//! `GET /v1/archive/search`: the archive's log search for the dashboard's log
//! tables and for scripts, with the query language of `secmon archive
//! search`. The running daemon owns the archive, so the search runs on its
//! writer thread; every search is an access-audit record naming the API key
//! (or dashboard user) that made it.

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::Uri;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::archive::writer::ArchiveMsg;

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

pub async fn search(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let Some(tx) = app.archive.clone() else {
        return Err(ApiError::Unavailable(
            "the archive is disabled (archive.enabled: false)".into(),
        ));
    };
    let now = app.now();
    let from = super::parse_time(q.since.as_deref().unwrap_or("24h"), now, "since")?;
    let to = q
        .until
        .as_deref()
        .map(|u| super::parse_time(u, now, "until"))
        .transpose()?;
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
        categories: q
            .category
            .as_deref()
            .map(|c| {
                c.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
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

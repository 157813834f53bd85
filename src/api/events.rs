//! `POST /v1/events`: events pushed by applications join the same pipeline
//! as lines tailed from files — same parser (aliases, timestamp field), same
//! engine, same catalog checks.
//!
//! The body is NDJSON or one JSON array. Parsing runs on a blocking thread so
//! the async workers stay free for decision lookups; the answer comes once
//! the engine has taken the batch, which is what pushes back on a client
//! sending faster than detection runs. Bad lines are reported by line (or
//! array index, from 1) and never reject the good ones.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use secmon_core::{Event, SourceId};
use secmon_parse::{LineCtx, LineParser};
use serde_json::value::RawValue;

use super::{ApiError, AppState};
use crate::daemon::Msg;
use crate::daemon::shared::ApiCounters;
use crate::summary::Summary;

/// Per-line errors listed in one answer; the rest are only counted.
const MAX_LISTED_ERRORS: usize = 100;
/// The source id HTTP events carry (files use their index).
pub const HTTP_SOURCE: SourceId = SourceId(u32::MAX);

pub async fn ingest(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if !app.accepting.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::Unavailable("shutting down".into()));
    }
    let parser = app.parser.clone();
    let now = app.now();
    let (events, summary) = tokio::task::spawn_blocking(move || parse_body(&parser, &body, now))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let accepted = events.len() as u64;
    let rejected = summary.error_count();
    let errors: Vec<serde_json::Value> = summary
        .errors
        .iter()
        .flat_map(|(kind, t)| {
            t.samples.iter().map(
                move |s| serde_json::json!({ "line": s.line, "kind": kind, "error": s.message }),
            )
        })
        .collect();
    let c = app.counters();
    ApiCounters::add(&c.ingest_requests, 1);
    ApiCounters::add(&c.ingest_rejected_lines, rejected);
    if accepted > 0 || rejected > 0 {
        let (reply, rx) = tokio::sync::oneshot::channel();
        app.tx
            .send_async(Msg::Ingest {
                events,
                summary,
                reply,
            })
            .await
            .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
        rx.await
            .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    }
    ApiCounters::add(&c.ingested, accepted);
    let status = if accepted == 0 && rejected > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let listed = errors.len();
    Ok((
        status,
        Json(serde_json::json!({
            "accepted": accepted,
            "rejected": rejected,
            "errors": errors,
            "errors_truncated": (listed as u64) < rejected,
        })),
    ))
}

/// Splits the body into events (NDJSON or a JSON array) and parses each one.
pub fn parse_body(
    parser: &LineParser,
    body: &[u8],
    now: secmon_core::Timestamp,
) -> Result<(Vec<Event>, Summary), ApiError> {
    let mut summary = Summary::new(MAX_LISTED_ERRORS);
    let mut events = Vec::new();
    let mut ctx = LineCtx::new(HTTP_SOURCE, now);
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    match first.map(|i| body[i]) {
        None => {
            return Err(ApiError::BadRequest(
                "empty body: send NDJSON or a JSON array of events".into(),
            ));
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
                ApiError::BadRequest(format!("body is not a valid JSON array: {e}"))
            })?;
            events.reserve(items.len());
            for (i, item) in items.iter().enumerate() {
                ctx.line_no = i as u64 + 1;
                crate::pipeline::parse_line(
                    parser,
                    &mut ctx,
                    item.get().as_bytes(),
                    "http",
                    &mut events,
                    &mut summary,
                );
            }
        }
        Some(_) => {
            for (i, line) in body.split(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                ctx.line_no = i as u64 + 1;
                crate::pipeline::parse_line(
                    parser,
                    &mut ctx,
                    line,
                    "http",
                    &mut events,
                    &mut summary,
                );
            }
        }
    }
    Ok((events, summary))
}

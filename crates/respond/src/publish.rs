//! Publishing decisions to the enforcing side: Redis (a key per decision
//! with the remaining TTL, plus a message on a channel) and an exec hook (a
//! program run with a templated argv, e.g. to update an nftables set).
//!
//! Publishers are told about changes after they are committed; they keep no
//! state of their own and do not retry (the caller decides, e.g. by
//! republishing `list_active` after a Redis outage). The exec hook never
//! goes through a shell: each template element yields exactly one argument,
//! so a value cannot add arguments or commands.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secmon_core::{Dur, Timestamp};

use crate::config::{ExecConfig, RedisPublishConfig};
use crate::decisions::{Decision, DecisionChange};
use crate::error::{RespondError, Result};

pub trait DecisionPublisher {
    fn publish(&mut self, change: &DecisionChange, now: Timestamp) -> Result<()>;
}

/// How long a Redis connect or command may take: the respond loop must not
/// hang on a dead server.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// `SET <prefix><scope>:<value> <decision json> PX <remaining ms>` on add,
/// `DEL` on removal, and `PUBLISH <channel> {"op": "added"|"removed", "decision": …}`
/// for both, sent as one MULTI/EXEC so subscribers never see a message
/// without its key.
pub struct RedisPublisher {
    client: redis::Client,
    conn: Option<redis::Connection>,
    key_prefix: String,
    channel: String,
}

impl RedisPublisher {
    /// Connects now, so a wrong URL or unreachable server is an error at
    /// startup rather than at the first ban.
    pub fn connect(cfg: &RedisPublishConfig) -> Result<Self> {
        let client = redis::Client::open(cfg.url.as_str())?;
        let conn = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
        conn.set_read_timeout(Some(REDIS_TIMEOUT))?;
        conn.set_write_timeout(Some(REDIS_TIMEOUT))?;
        Ok(RedisPublisher {
            client,
            conn: Some(conn),
            key_prefix: cfg.key_prefix.clone(),
            channel: cfg.channel.clone(),
        })
    }

    pub fn key(&self, d: &Decision) -> String {
        format!("{}{}:{}", self.key_prefix, d.scope, d.value)
    }

    fn connection(&mut self) -> Result<&mut redis::Connection> {
        if self.conn.is_none() {
            let c = self.client.get_connection_with_timeout(REDIS_TIMEOUT)?;
            c.set_read_timeout(Some(REDIS_TIMEOUT))?;
            c.set_write_timeout(Some(REDIS_TIMEOUT))?;
            self.conn = Some(c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| RespondError::Conflict("redis connection unavailable".into()))
    }
}

impl DecisionPublisher for RedisPublisher {
    fn publish(&mut self, change: &DecisionChange, now: Timestamp) -> Result<()> {
        let d = change.decision();
        let key = self.key(d);
        let msg = serde_json::to_string(change)
            .map_err(|e| RespondError::invalid("decision json", e.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let remaining = d.remaining(now).as_millis();
        match change {
            // An add that is already over (published late) must not leave a
            // key without TTL behind: delete instead.
            DecisionChange::Added(_) if remaining > 0 => {
                let body = serde_json::to_string(d)
                    .map_err(|e| RespondError::invalid("decision json", e.to_string()))?;
                pipe.cmd("SET")
                    .arg(&key)
                    .arg(body)
                    .arg("PX")
                    .arg(remaining)
                    .ignore();
            }
            _ => {
                pipe.cmd("DEL").arg(&key).ignore();
            }
        }
        pipe.cmd("PUBLISH").arg(&self.channel).arg(msg).ignore();
        let channel_result = {
            let conn = self.connection()?;
            pipe.query::<()>(conn)
        };
        if let Err(e) = channel_result {
            // A broken connection is replaced at the next publish.
            self.conn = None;
            return Err(e.into());
        }
        Ok(())
    }
}

/// Runs `argv` with placeholders substituted: `{scope}`, `{value}`,
/// `{duration_secs}` (remaining seconds, rounded up; 0 on removal),
/// `{action}` and `{op}` (`add` or `del`). Substitution happens inside an
/// element (so `{ {value} timeout {duration_secs}s }` works for nft), and an
/// element always stays one argument. The environment is cleared except for
/// a fixed `PATH`; stdin and stdout are closed.
#[derive(Clone, Debug)]
pub struct ExecPublisher {
    argv: Vec<String>,
    timeout: Duration,
}

/// What is kept of a failing hook's stderr for the error message.
const STDERR_KEEP: usize = 2048;

impl ExecPublisher {
    pub fn new(cfg: &ExecConfig) -> Result<Self> {
        let Some(program) = cfg.argv.first() else {
            return Err(RespondError::Config("publish.exec.argv: empty".into()));
        };
        if program.is_empty() || program.contains('{') {
            return Err(RespondError::Config(
                "publish.exec.argv[0]: must be a fixed program".into(),
            ));
        }
        let ms = u64::try_from(cfg.timeout.as_millis()).unwrap_or(0);
        if ms == 0 {
            return Err(RespondError::Config(
                "publish.exec.timeout: must be positive".into(),
            ));
        }
        Ok(ExecPublisher {
            argv: cfg.argv.clone(),
            timeout: Duration::from_millis(ms),
        })
    }

    /// The argument vector for a change (exposed for tests and dry runs).
    pub fn render(&self, change: &DecisionChange, now: Timestamp) -> Vec<String> {
        let d = change.decision();
        let (op, secs) = match change {
            DecisionChange::Added(_) => ("add", ceil_secs(d.remaining(now))),
            DecisionChange::Removed(_) => ("del", 0),
        };
        let secs = secs.to_string();
        self.argv
            .iter()
            .map(|t| substitute(t, d.scope.as_str(), &d.value, &secs, &d.action, op))
            .collect()
    }
}

fn ceil_secs(d: Dur) -> i64 {
    (d.as_millis() + 999).div_euclid(1000)
}

/// One pass left to right, so a substituted value containing `{value}` is
/// never substituted again.
fn substitute(t: &str, scope: &str, value: &str, secs: &str, action: &str, op: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let rep = [
            ("{scope}", scope),
            ("{value}", value),
            ("{duration_secs}", secs),
            ("{action}", action),
            ("{op}", op),
        ]
        .into_iter()
        .find(|(p, _)| tail.starts_with(p));
        match rep {
            Some((p, v)) => {
                out.push_str(v);
                rest = &tail[p.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl DecisionPublisher for ExecPublisher {
    fn publish(&mut self, change: &DecisionChange, now: Timestamp) -> Result<()> {
        let argv = self.render(change, now);
        let program = argv.first().cloned().unwrap_or_default();
        let err = |reason: String| RespondError::Exec {
            program: program.clone(),
            reason,
        };
        let mut child = Command::new(&program)
            .args(&argv[1..])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("spawn: {e}")))?;
        // Drain stderr on a thread so a chatty hook cannot block on a full pipe;
        // keep only the head for the error message.
        let stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut kept = Vec::new();
            if let Some(mut s) = stderr {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let room = STDERR_KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            kept
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    // The reader ends when the killed child's pipe closes
                    // (unless a grandchild holds it: then don't wait for it).
                    return Err(err(format!("timed out after {:?}, killed", self.timeout)));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(err(format!("wait: {e}"))),
            }
        };
        let kept = reader.join().unwrap_or_default();
        if !status.success() {
            let text = String::from_utf8_lossy(&kept);
            return Err(err(format!("{status}: {}", text.trim().escape_debug())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_is_single_pass() {
        assert_eq!(
            substitute("{value}", "ip", "{scope}", "1", "a", "add"),
            "{scope}"
        );
        assert_eq!(
            substitute(
                "{ {value} timeout {duration_secs}s }",
                "ip",
                "1.2.3.4",
                "60",
                "a",
                "add"
            ),
            "{ 1.2.3.4 timeout 60s }"
        );
        assert_eq!(
            substitute("x{unknown}{op}", "", "", "", "", "del"),
            "x{unknown}del"
        );
        assert_eq!(ceil_secs(Dur(1)), 1);
        assert_eq!(ceil_secs(Dur(3_600_000)), 3600);
    }
}

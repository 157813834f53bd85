//! A tolerant parser for the text Redis answers to `INFO`.
//!
//! The format is `# Section` headers and `key:value` lines separated by CRLF.
//! Servers of different versions (and forks such as Valkey or KeyDB, and
//! managed services that rename or hide fields) add, drop and reorder fields,
//! so nothing here is required: a missing or malformed field is simply absent
//! and the collector leaves the corresponding event field out. Lines that are
//! not `key:value` are skipped.
//!
//! This module only parses; it does not talk to Redis.

use std::collections::HashMap;

/// Per-database line of the `# Keyspace` section:
/// `db0:keys=12,expires=3,avg_ttl=5000[,subexpiry=0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbStats {
    pub keys: u64,
    pub expires: u64,
    pub avg_ttl: u64,
}

/// A parsed `INFO` reply.
#[derive(Debug, Clone, Default)]
pub struct Info {
    fields: HashMap<String, String>,
    /// `(db index, stats)` in the order given (Redis lists them ascending).
    keyspace: Vec<(u32, DbStats)>,
}

impl Info {
    pub fn parse(text: &str) -> Info {
        let mut info = Info::default();
        for line in text.lines() {
            let line = line.trim_end_matches('\r').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Values may themselves contain ':' (paths, `executable:/usr/…`),
            // keys never do.
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if let Some(db) = k.strip_prefix("db").and_then(|n| n.parse::<u32>().ok())
                && let Some(stats) = parse_db(v)
            {
                info.keyspace.push((db, stats));
                continue;
            }
            info.fields.insert(k.to_string(), v.to_string());
        }
        info
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.trim().parse().ok()
    }

    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key)?.trim().parse().ok()
    }

    /// Finite floats only (`mem_fragmentation_ratio` can be `nan` or `inf`
    /// on some platforms right after start).
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key)?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
    }

    pub fn keyspace(&self) -> &[(u32, DbStats)] {
        &self.keyspace
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.keyspace.is_empty()
    }
}

fn parse_db(v: &str) -> Option<DbStats> {
    let mut s = DbStats::default();
    let mut seen_keys = false;
    for kv in v.split(',') {
        let (k, v) = kv.split_once('=')?;
        let n: u64 = v.trim().parse().ok()?;
        match k.trim() {
            "keys" => {
                s.keys = n;
                seen_keys = true;
            }
            "expires" => s.expires = n,
            "avg_ttl" => s.avg_ttl = n,
            // `subexpiry` (Redis 7.4) and whatever comes next.
            _ => {}
        }
    }
    seen_keys.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from the local Redis 7.0 with `redis-cli INFO` (CRLF kept),
    /// after writing two keys to db 5, one with a TTL.
    const REAL: &str = include_str!("../../tests/data/info-redis-7.0.txt");

    #[test]
    fn parses_real_redis_7_info() {
        let i = Info::parse(REAL);
        assert_eq!(i.get("redis_version"), Some("7.0.15"));
        assert_eq!(i.u64("used_memory"), Some(1_040_856));
        assert_eq!(i.u64("total_system_memory"), Some(25_276_510_208));
        assert_eq!(i.f64("mem_fragmentation_ratio"), Some(7.5));
        assert_eq!(i.u64("maxmemory"), Some(0));
        assert_eq!(i.get("maxmemory_policy"), Some("noeviction"));
        assert!(i.u64("connected_clients").is_some());
        assert!(i.u64("instantaneous_ops_per_sec").is_some());
        assert!(i.u64("keyspace_hits").is_some());
        assert!(i.u64("used_memory_dataset").is_some());
        // `executable:/usr/bin/redis-server` keeps its colon-free path intact.
        assert!(i.get("executable").is_some_and(|e| e.starts_with('/')));
        assert_eq!(
            i.keyspace(),
            &[(
                5,
                DbStats {
                    keys: 2,
                    expires: 1,
                    avg_ttl: 0
                }
            )]
        );
        assert!(i.len() > 150);
    }

    #[test]
    fn tolerates_odd_input() {
        let i = Info::parse(
            "garbage line\n# Memory\nused_memory:12\nmem_fragmentation_ratio:nan\n\
             weird:\n:novalue\ndb0:keys=3,expires=0,avg_ttl=0,subexpiry=0\n\
             dbx:keys=1\ndb1:nonsense\nused_memory_rss:abc\n",
        );
        assert_eq!(i.u64("used_memory"), Some(12));
        assert_eq!(i.f64("mem_fragmentation_ratio"), None);
        assert_eq!(i.u64("used_memory_rss"), None);
        assert_eq!(i.get("weird"), Some(""));
        assert_eq!(i.keyspace().len(), 1);
        assert_eq!(i.keyspace()[0].1.keys, 3);
        // Unparseable db lines are kept as plain fields, not lost or panicked on.
        assert_eq!(i.get("db1"), Some("nonsense"));
        assert!(Info::parse("").is_empty());
    }
}

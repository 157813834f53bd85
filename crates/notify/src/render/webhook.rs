//! Generic webhook: the [`Message`] as JSON, custom headers,
//! `Idempotency-Key`, and `X-Secmon-Signature: sha256=<hex HMAC-SHA256 of the
//! body>` when a secret is configured.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::HttpRequest;
use crate::model::{Message, hex};
use crate::secret::SecretString;
use crate::{Error, Result};

pub const SIGNATURE_HEADER: &str = "X-Secmon-Signature";

#[derive(Debug)]
pub struct Webhook {
    pub url: SecretString,
    pub headers: Vec<(String, String)>,
    pub secret: Option<SecretString>,
}

/// `sha256=<hex>` of the body under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Checks a signature in constant time (for receivers written in Rust and for
/// tests).
pub fn verify(key: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hexsig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(bytes) = unhex(hexsig) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Webhook {
    pub fn render(&self, msg: &Message, _footer: &str) -> Result<HttpRequest> {
        let body = serde_json::to_vec(msg)?;
        let mut headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Idempotency-Key".to_string(), msg.idempotency_key.clone()),
        ];
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case(SIGNATURE_HEADER) || k.eq_ignore_ascii_case("idempotency-key")
            {
                return Err(Error::Render(format!("header {k} is set by secmon")));
            }
            headers.push((k.clone(), v.clone()));
        }
        if let Some(s) = &self.secret {
            headers.push((
                SIGNATURE_HEADER.to_string(),
                sign(s.expose().as_bytes(), &body),
            ));
        }
        Ok(HttpRequest {
            method: "POST",
            url: self.url.expose().to_string(),
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tests::{alert, message};

    #[test]
    fn body_headers_and_signature() {
        let w = Webhook {
            url: SecretString::new("http://127.0.0.1:9/hook"),
            headers: vec![("X-Team".into(), "sec".into())],
            secret: Some(SecretString::new("shh")),
        };
        let m = message(vec![alert()]);
        let req = w.render(&m, "f").unwrap();
        let v = req.json().unwrap();
        assert_eq!(v["idempotency_key"], "key-1");
        assert_eq!(v["kind"], "alert");
        assert_eq!(v["status"], "firing");
        assert_eq!(
            v["alerts"][0]["group"],
            serde_json::json!([["ip", "192.168.1.100"]])
        );
        assert_eq!(v["alerts"][0]["window"], "5m");
        assert_eq!(v["alerts"][0]["fired_at"], "2024-01-15T09:50:00.000Z");
        let back: Message = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(back, m);
        assert_eq!(req.header("idempotency-key"), Some("key-1"));
        assert_eq!(req.header("x-team"), Some("sec"));
        let sig = req.header("x-secmon-signature").unwrap();
        assert!(verify(b"shh", &req.body, sig));
        assert!(!verify(b"other", &req.body, sig));
        // Known answer (RFC 4231 test case 2).
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

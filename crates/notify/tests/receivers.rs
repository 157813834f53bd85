//! Every receiver against a real loopback server asserting the exact payload.

mod common;

use common::{HttpServer, Reply, config, message};
use secmon_core::Timestamp;
use secmon_notify::render::webhook::verify;
use secmon_notify::{AlertStatus, DeliveryResult, Dispatcher};
use serde_json::json;

const NOW: Timestamp = Timestamp(1_705_312_260_000);

#[test]
fn slack_incoming_webhook_gets_the_seed_attachment() {
    let srv = HttpServer::start(|_| Reply::status(200).body("ok"));
    let url = srv.url("/services/T000/B000/SECRETTOKEN");
    let cfg = config(json!({
        "receivers": [{"name": "slack", "kind": "slack", "url": {"env": "SLACK_URL"}, "channel": "#security-alerts"}],
        "footer": "OCMT Security | Production"
    }));
    let d = Dispatcher::new(&cfg, &|n: &str| (n == "SLACK_URL").then(|| url.clone())).unwrap();
    assert_eq!(
        d.deliver(&message("slack", "k1"), NOW),
        DeliveryResult::Sent
    );
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/services/T000/B000/SECRETTOKEN")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({
          "channel": "#security-alerts",
          "attachments": [{
            "color": "danger",
            "title": "Security Alert: Multiple Failed Logins",
            "fields": [
              { "title": "IP Address", "value": "192.168.1.100", "short": true },
              { "title": "Attempts", "value": "10", "short": true },
              { "title": "Time Window", "value": "5 minutes", "short": true },
              { "title": "Action Taken", "value": "IP blocked for 1 hour", "short": true }
            ],
            "footer": "OCMT Security | Production",
            "ts": 1705312200
          }]
        })
    );
    // `notify test` reaches the same endpoint.
    assert_eq!(d.send_test("slack", NOW).unwrap(), DeliveryResult::Sent);
    let t = srv.requests()[1].json();
    assert_eq!(
        t["attachments"][0]["title"],
        "[TEST] Security Alert: Test notification"
    );
    assert!(d.send_test("nobody", NOW).is_err());
}

#[test]
fn http_errors_are_classified_and_never_leak_the_secret_url() {
    let srv = HttpServer::start(|r| match r.path.as_str() {
        p if p.ends_with("/gone") => Reply::status(404).body("no_service"),
        p if p.ends_with("/busy") => Reply::status(429).header("Retry-After", "7"),
        _ => Reply::status(500).body("oops"),
    });
    for (path, expect_retry) in [
        ("/s/SECRET1/gone", false),
        ("/s/SECRET2/busy", true),
        ("/s/SECRET3/x", true),
    ] {
        let url = srv.url(path);
        let cfg =
            config(json!({"receivers": [{"name": "s", "kind": "slack", "url": {"env": "U"}}]}));
        let d = Dispatcher::new(&cfg, &|_: &str| Some(url.clone())).unwrap();
        let res = d.deliver(&message("s", "k"), NOW);
        let text = format!("{res:?}");
        assert!(!text.contains("SECRET"), "{text}");
        match res {
            DeliveryResult::Retry { after, reason } => {
                assert!(expect_retry, "{reason}");
                if path.ends_with("busy") {
                    assert_eq!(after, Some(secmon_core::Dur::from_secs(7)));
                    assert!(reason.starts_with("HTTP 429"), "{reason}");
                } else {
                    assert_eq!(reason, "HTTP 500: oops");
                }
            }
            DeliveryResult::Permanent { reason } => {
                assert!(!expect_retry);
                assert_eq!(reason, "HTTP 404: no_service");
            }
            DeliveryResult::Sent => panic!("not sent"),
        }
    }
    // Connection refused: retried, and the URL (a secret) is not in the reason.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{dead}/hooks/SECRET4");
    let cfg = config(json!({"receivers": [{"name": "s", "kind": "slack", "url": {"env": "U"}}]}));
    let d = Dispatcher::new(&cfg, &|_: &str| Some(url.clone())).unwrap();
    match d.deliver(&message("s", "k"), NOW) {
        DeliveryResult::Retry { reason, .. } => assert!(!reason.contains("SECRET4"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn discord_webhook_gets_embeds() {
    let srv = HttpServer::start(|_| Reply::status(204));
    let url = srv.url("/api/webhooks/123/tok");
    let cfg = config(json!({"receivers": [{"name": "d", "kind": "discord", "url": {"env": "D"}}]}));
    let d = Dispatcher::new(&cfg, &|_: &str| Some(url.clone())).unwrap();
    assert_eq!(d.deliver(&message("d", "k"), NOW), DeliveryResult::Sent);
    let r = &srv.requests()[0];
    assert_eq!(r.path, "/api/webhooks/123/tok");
    let v = r.json();
    assert_eq!(
        v["embeds"][0]["title"],
        "Security Alert: Multiple Failed Logins"
    );
    assert_eq!(v["embeds"][0]["color"], 0xE01E5A);
    assert_eq!(v["embeds"][0]["footer"]["text"], "secmon | production");
    assert_eq!(
        v["embeds"][0]["fields"][0],
        json!({"name": "IP Address", "value": "192.168.1.100", "inline": true})
    );
    assert_eq!(v["embeds"][0]["timestamp"], "2024-01-15T09:50:00.000Z");
}

#[test]
fn pagerduty_trigger_then_resolve() {
    let srv = HttpServer::start(|_| {
        Reply::status(202)
            .body(r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#)
    });
    let cfg = config(json!({"receivers": [{
        "name": "pd", "kind": "pagerduty", "routing_key": {"env": "PD_KEY"},
        "url": srv.url("/v2/enqueue"), "source": "ocmt-management-server"
    }]}));
    let d = Dispatcher::new(&cfg, &|n: &str| {
        (n == "PD_KEY").then(|| "R0UTINGKEY".to_string())
    })
    .unwrap();
    let mut m = message("pd", "k1");
    m.alerts[0].severity = secmon_core::Severity::Critical;
    m.alerts[0].description = "Admin authentication brute force detected".into();
    assert_eq!(d.deliver(&m, NOW), DeliveryResult::Sent);
    m.alerts[0].status = AlertStatus::Resolved;
    m.status = AlertStatus::Resolved;
    assert_eq!(d.deliver(&m, NOW), DeliveryResult::Sent);
    let reqs = srv.requests();
    assert_eq!(reqs[0].path, "/v2/enqueue");
    assert_eq!(
        reqs[0].json(),
        json!({
            "routing_key": "R0UTINGKEY",
            "event_action": "trigger",
            "dedup_key": "failed_logins_ip/192.168.1.100",
            "payload": {
                "summary": "CRITICAL: Admin authentication brute force detected",
                "source": "ocmt-management-server",
                "severity": "critical",
                "custom_details": {
                    "ip_address": "192.168.1.100",
                    "attempts": 10,
                    "action": "IP blocked for 1 hour",
                    "rule": "failed_logins_ip",
                    "value": 10,
                    "threshold": 10,
                    "window": "5 minutes",
                    "fired_at": "2024-01-15T09:50:00.000Z"
                }
            }
        })
    );
    assert_eq!(
        reqs[1].json(),
        json!({"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": "failed_logins_ip/192.168.1.100"})
    );
}

#[test]
fn webhook_is_signed_with_the_shared_secret() {
    let srv = HttpServer::start(|_| Reply::status(200));
    let cfg = config(json!({"receivers": [{
        "name": "w", "kind": "webhook", "url": srv.url("/hook"),
        "headers": {"X-Team": "security"}, "secret": {"env": "HOOK_SECRET"}
    }]}));
    let d = Dispatcher::new(&cfg, &|n: &str| {
        (n == "HOOK_SECRET").then(|| "sh4red".to_string())
    })
    .unwrap();
    assert!(
        d.warnings().iter().any(|w| w.contains("url")),
        "literal url warned"
    );
    let m = message("w", "idem-42");
    assert_eq!(d.deliver(&m, NOW), DeliveryResult::Sent);
    let r = &srv.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.header("Idempotency-Key"), Some("idem-42"));
    assert_eq!(r.header("X-Team"), Some("security"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let sig = r.header("X-Secmon-Signature").unwrap();
    assert!(
        verify(b"sh4red", &r.body, sig),
        "signature verifies with the shared secret"
    );
    assert!(!verify(b"wrong", &r.body, sig));
    let got: secmon_notify::Message = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got, m);
}

#[test]
fn alertmanager_receives_postable_alerts() {
    let srv = HttpServer::start(|_| Reply::status(200));
    let cfg =
        config(json!({"receivers": [{"name": "am", "kind": "alertmanager", "url": srv.url("")}]}));
    let d = Dispatcher::new(&cfg, &|_: &str| None).unwrap();
    assert_eq!(d.deliver(&message("am", "k"), NOW), DeliveryResult::Sent);
    let r = &srv.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/api/v2/alerts")
    );
    assert_eq!(
        r.json(),
        json!([{
            "labels": {"alertname": "failed_logins_ip", "severity": "high", "ip": "192.168.1.100"},
            "annotations": {
                "summary": "HIGH: Multiple failed logins from one IP",
                "description": "HIGH: 10 Multiple Failed Logins in 5 minutes (threshold 10)"
            },
            "startsAt": "2024-01-15T09:50:00.000Z"
        }])
    );
}

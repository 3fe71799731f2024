//! Outgoing webhooks end to end: the real binary delivers signed events to an HTTP receiver
//! in this process, retries after a 500, logs every attempt, disables a failing subscription,
//! refuses private targets without the lab setting, and delivers after a kill -9.

mod common;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Got {
    headers: BTreeMap<String, String>,
    body: String,
    answered: u16,
}

#[derive(Default)]
struct Plan {
    /// Statuses for the next requests, then `default`.
    next: VecDeque<u16>,
    default: u16,
    got: Vec<Got>,
}

/// A loopback HTTP receiver (axum on its own runtime) answering as planned.
struct Receiver {
    port: u16,
    plan: Arc<Mutex<Plan>>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    fn start(next: &[u16], default: u16) -> Receiver {
        let plan = Arc::new(Mutex::new(Plan {
            next: next.iter().copied().collect(),
            default,
            got: Vec::new(),
        }));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let p = plan.clone();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let app = axum::Router::new()
                .route(
                    "/hook",
                    axum::routing::post(
                        move |headers: axum::http::HeaderMap, body: String| async move {
                            let mut plan = p.lock().unwrap();
                            let answered = plan.next.pop_front().unwrap_or(plan.default);
                            plan.got.push(Got {
                                headers: headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_string(),
                                            v.to_str().unwrap_or("").to_string(),
                                        )
                                    })
                                    .collect(),
                                body,
                                answered,
                            });
                            (
                                axum::http::StatusCode::from_u16(answered).unwrap(),
                                format!("answered {answered}"),
                            )
                        },
                    ),
                )
                // Never followed: a redirect to the recording route.
                .route(
                    "/redirect",
                    axum::routing::post(|| async {
                        (
                            axum::http::StatusCode::FOUND,
                            [(axum::http::header::LOCATION, "/hook")],
                        )
                    }),
                )
                // A large answer: only its start is kept.
                .route(
                    "/big",
                    axum::routing::post(|| async { "x".repeat(1_000_000) }),
                );
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            port,
            plan,
            _rt: rt,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn got(&self) -> Vec<Got> {
        self.plan.lock().unwrap().got.clone()
    }

    fn answer(&self, status: u16) {
        self.plan.lock().unwrap().default = status;
    }

    fn wait_for(&self, what: &str, secs: u64, f: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.got();
            if f(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "waited for {what}; got {got:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn lab_server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("MAILSTEAD_ALLOW_PRIVATE_TARGETS", "true"),
        ("MAILSTEAD_WEBHOOK_RETRY_BASE_MS", "200"),
    ];
    env.extend_from_slice(extra);
    Server::start_with(&env)
}

fn subscribe(s: &Server, url: &str, events: &[&str]) -> Value {
    let r = s.post(
        "/api/v1/webhook-subscriptions",
        &json!({"url": url, "events": events, "description": "CRM sync"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    r.json().unwrap()
}

/// The check a receiver does, written independently of the server's code.
fn verify(secret: &str, got: &Got) -> bool {
    let ts = &got.headers["x-mailstead-timestamp"];
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", got.body).as_bytes());
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    got.headers["x-mailstead-signature"] == expected
}

fn poll_json(s: &Server, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = s.get_json(path);
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waited for {what}; last {v:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn signed_event_is_retried_after_a_500_and_both_attempts_are_logged() {
    let rx = Receiver::start(&[500], 200);
    let s = lab_server(&[]);
    let sub = subscribe(&s, &rx.url(), &["contact.created"]);
    let id = sub["id"].as_u64().unwrap();
    let secret = sub["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{sub}");
    assert_eq!(sub["status"], "active");

    // The secret is shown once: neither the list nor a single read carries it.
    let list = s.get("/api/v1/webhook-subscriptions").text().unwrap();
    assert!(
        !list.contains(&secret) && list.contains(&rx.url()),
        "{list}"
    );
    let one = s
        .get(&format!("/api/v1/webhook-subscriptions/{id}"))
        .text()
        .unwrap();
    assert!(!one.contains(&secret), "{one}");

    let r = s.post(
        "/api/v1/contacts",
        &json!({"email": "hook@example.com", "first_name": "Hook"}),
    );
    assert_eq!(r.status(), 201);
    let contact_id = r.json::<Value>().unwrap()["id"].as_u64().unwrap();

    let got = rx.wait_for("a 500 then a retry", 20, |g| g.len() >= 2);
    assert_eq!((got[0].answered, got[1].answered), (500, 200));
    for g in &got {
        assert!(verify(&secret, g), "bad signature on {g:#?}");
        assert!(!verify("whsec_wrong", g));
        assert_eq!(g.headers["x-mailstead-event"], "contact.created");
        assert_eq!(g.headers["content-type"], "application/json");
        let ts: i64 = g.headers["x-mailstead-timestamp"].parse().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((now - ts).abs() < 60, "timestamp {ts} is not now ({now})");
        let body: Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(body["type"], "contact.created");
        assert_eq!(body["data"]["contact"]["id"], contact_id);
        assert_eq!(body["data"]["contact"]["email"], "hook@example.com");
    }
    // One delivery, retried: the same idempotency id and the same bytes both times.
    assert_eq!(
        got[0].headers["x-mailstead-delivery"],
        got[1].headers["x-mailstead-delivery"]
    );
    assert_eq!(got[0].body, got[1].body);

    let log = poll_json(
        &s,
        &format!("/api/v1/webhook-subscriptions/{id}/deliveries"),
        "two logged attempts",
        |v| v["items"].as_array().is_some_and(|a| a.len() >= 2),
    );
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log:#}");
    // newest first
    assert_eq!(items[0]["status"], 200);
    assert_eq!(items[0]["ok"], true);
    assert_eq!(items[0]["attempt"], 2);
    assert_eq!(items[1]["status"], 500);
    assert_eq!(items[1]["ok"], false);
    assert_eq!(items[1]["attempt"], 1);
    assert_eq!(items[1]["response"], "answered 500");
    assert!(items[1]["next_attempt_at"].is_string(), "{log:#}");
    assert!(items[1]["error"].as_str().unwrap().contains("500"));
    assert!(items[0]["duration_ms"].is_u64());

    // Paging: one per page, the cursor leads to the older attempt.
    let p1 = s.get_json(&format!(
        "/api/v1/webhook-subscriptions/{id}/deliveries?limit=1"
    ));
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = s.get_json(&format!(
        "/api/v1/webhook-subscriptions/{id}/deliveries?limit=1&cursor={cursor}"
    ));
    assert_eq!(p2["items"][0]["attempt"], 1);

    let view = s.get_json(&format!("/api/v1/webhook-subscriptions/{id}"));
    assert_eq!(view["consecutive_failures"], 0);
    assert!(view["last_success_at"].is_string());

    // An update is not subscribed to: nothing more arrives; a ping does.
    assert_eq!(
        s.patch(
            &format!("/api/v1/contacts/{contact_id}"),
            &json!({"company": "Acme"})
        )
        .status(),
        200
    );
    assert_eq!(
        s.post(
            &format!("/api/v1/webhook-subscriptions/{id}/test"),
            &json!({})
        )
        .status(),
        202
    );
    let got = rx.wait_for("the ping", 20, |g| g.len() >= 3);
    std::thread::sleep(Duration::from_millis(600));
    let got_after = rx.got();
    assert_eq!(got_after.len(), 3, "only the ping came: {got_after:#?}");
    assert_eq!(got[2].headers["x-mailstead-event"], "ping");
    assert!(verify(&secret, &got[2]));

    // Rotating the secret: the new one signs from now on.
    let r = s.post(
        &format!("/api/v1/webhook-subscriptions/{id}/rotate-secret"),
        &json!({}),
    );
    assert_eq!(r.status(), 200);
    let new_secret = r.json::<Value>().unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_secret, secret);
    s.post(
        &format!("/api/v1/webhook-subscriptions/{id}/test"),
        &json!({}),
    );
    let got = rx.wait_for("the second ping", 20, |g| g.len() >= 4);
    assert!(verify(&new_secret, &got[3]) && !verify(&secret, &got[3]));

    assert!(!s.log().contains(&secret) && !s.log().contains(&new_secret));

    // Deleting stops everything.
    assert_eq!(
        s.delete(&format!("/api/v1/webhook-subscriptions/{id}"))
            .status(),
        204
    );
    let (st, _) = error_of(s.get(&format!("/api/v1/webhook-subscriptions/{id}")));
    assert_eq!(st, 404);
}

#[test]
fn a_failing_subscription_is_disabled_and_can_be_enabled_again() {
    let rx = Receiver::start(&[], 500);
    let s = lab_server(&[("MAILSTEAD_WEBHOOK_DISABLE_AFTER", "3")]);
    let sub = subscribe(&s, &rx.url(), &["contact.created", "contact.updated"]);
    let id = sub["id"].as_u64().unwrap();
    s.post("/api/v1/contacts", &json!({"email": "fail@example.com"}));

    let view = poll_json(
        &s,
        &format!("/api/v1/webhook-subscriptions/{id}"),
        "auto-disable",
        |v| v["status"] == "disabled",
    );
    assert_eq!(view["auto_disabled"], true);
    assert_eq!(view["consecutive_failures"], 3);
    assert!(
        view["last_error"].as_str().unwrap().contains("500"),
        "{view}"
    );
    // No more attempts once disabled, also not for new events.
    s.post("/api/v1/contacts", &json!({"email": "fail2@example.com"}));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.got().len(), 3, "{:#?}", rx.got());
    let log = s.get_json(&format!("/api/v1/webhook-subscriptions/{id}/deliveries"));
    assert_eq!(log["items"].as_array().unwrap().len(), 3);
    assert!(s.log().contains("disabled after repeated failures"));

    // Re-enabling resets the count; the next event is delivered.
    rx.answer(200);
    let r = s.post(
        &format!("/api/v1/webhook-subscriptions/{id}/enable"),
        &json!({}),
    );
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(
        (
            v["status"].clone(),
            v["auto_disabled"].clone(),
            v["consecutive_failures"].clone()
        ),
        (json!("active"), json!(false), json!(0))
    );
    s.post("/api/v1/contacts", &json!({"email": "ok@example.com"}));
    let got = rx.wait_for("a delivery after re-enabling", 20, |g| {
        g.iter().any(|x| x.answered == 200)
    });
    assert!(got.last().unwrap().body.contains("ok@example.com"));

    // A person disabling it is not an auto-disable.
    let r = s.patch(
        &format!("/api/v1/webhook-subscriptions/{id}"),
        &json!({"enabled": false}),
    );
    let v: Value = r.json().unwrap();
    assert_eq!(
        (v["status"].as_str(), v["auto_disabled"].as_bool()),
        (Some("disabled"), Some(false))
    );
}

#[test]
fn private_targets_and_bad_input_are_refused_with_clear_errors() {
    let s = Server::start();
    let post = |body: Value| error_of(s.post("/api/v1/webhook-subscriptions", &body));
    for url in [
        "https://127.0.0.1:9/hook",
        "https://localhost/hook",
        "https://[::1]/hook",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://2130706433/hook",
    ] {
        let (st, e) = post(json!({"url": url, "events": ["contact.created"]}));
        assert_eq!(
            (
                st,
                e["code"].as_str().unwrap(),
                e["field"].as_str().unwrap()
            ),
            (422, "private_target", "url"),
            "{url}: {e}"
        );
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("MAILSTEAD_ALLOW_PRIVATE_TARGETS=true"), "{m}");
    }
    let (_, e) = post(json!({"url": "https://localhost/x", "events": ["contact.created"]}));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("resolves to a private address"),
        "{e}"
    );
    let (st, e) = post(json!({"url": "http://93.184.216.34/hook", "events": ["contact.created"]}));
    assert_eq!((st, e["field"].as_str().unwrap()), (422, "url"));
    assert!(e["message"].as_str().unwrap().contains("https://"), "{e}");
    for url in [
        "not a url",
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
    ] {
        let (st, e) = post(json!({"url": url, "events": ["contact.created"]}));
        assert_eq!(
            (st, e["field"].as_str().unwrap()),
            (422, "url"),
            "{url}: {e}"
        );
    }
    let (st, e) = post(json!({"url": "https://93.184.216.34/h", "events": ["contact.exploded"]}));
    assert_eq!((st, e["field"].as_str().unwrap()), (422, "events"));
    assert!(
        e["message"].as_str().unwrap().contains("contact.created"),
        "lists the valid ones: {e}"
    );
    let (st, _) = post(json!({"url": "https://93.184.216.34/h", "events": []}));
    assert_eq!(st, 422);
    assert!(
        s.get_json("/api/v1/webhook-subscriptions")["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A public literal address is accepted (nothing is sent until an event happens).
    let r = s.post(
        "/api/v1/webhook-subscriptions",
        &json!({"url": "https://93.184.216.34/hook", "events": ["message.bounced"]}),
    );
    assert_eq!(r.status(), 201);

    let doc = s.get("/api/v1/openapi.json").text().unwrap();
    assert!(doc.contains("/api/v1/webhook-subscriptions/{id}/deliveries"));

    // Admins only.
    let (_, token) = s.user_with_token("mk@example.test", "marketing");
    let r = s
        .client
        .get(s.url("/api/v1/webhook-subscriptions"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(error_of(r).0, 403);
}

#[test]
fn events_committed_before_a_kill_9_are_delivered_after_restart() {
    let rx = Receiver::start(&[], 500);
    let mut s = lab_server(&[]);
    let sub = subscribe(&s, &rx.url(), &["contact.created"]);
    let secret = sub["secret"].as_str().unwrap().to_string();
    s.post("/api/v1/contacts", &json!({"email": "before@example.com"}));
    let got = rx.wait_for("a failed first attempt", 20, |g| !g.is_empty());
    let first_delivery = got[0].headers["x-mailstead-delivery"].clone();
    // This one is committed but most likely not yet handed to the outbox when we kill.
    s.post("/api/v1/contacts", &json!({"email": "racing@example.com"}));
    s.kill9();

    rx.answer(200);
    s.spawn();
    let got = rx.wait_for("both events after the restart", 60, |g| {
        ["before@", "racing@"]
            .iter()
            .all(|who| g.iter().any(|x| x.answered == 200 && x.body.contains(who)))
    });
    for g in &got {
        assert!(verify(&secret, g));
    }
    // The event from before the crash kept its delivery id (no second fan-out), and each
    // event was delivered exactly once.
    let ok_before: Vec<&Got> = got
        .iter()
        .filter(|g| g.answered == 200 && g.body.contains("before@"))
        .collect();
    assert_eq!(ok_before.len(), 1);
    assert_eq!(ok_before[0].headers["x-mailstead-delivery"], first_delivery);
    let ids: std::collections::BTreeSet<&String> = got
        .iter()
        .map(|g| &g.headers["x-mailstead-delivery"])
        .collect();
    assert_eq!(ids.len(), 2, "{got:#?}");
}

#[test]
fn an_import_flood_is_delivered_in_bounded_batches() {
    let rx = Receiver::start(&[], 200);
    let s = lab_server(&[("MAILSTEAD_WEBHOOK_CONCURRENCY", "4")]);
    subscribe(&s, &rx.url(), &["contact.created"]);
    let n = 1500;
    let mut csv = String::from("email,first_name\n");
    for i in 0..n {
        csv.push_str(&format!("flood{i}@example.com,F{i}\n"));
    }
    let job = s.import_csv(csv, "");
    assert_eq!(job["created"], n);
    let got = rx.wait_for("every imported contact", 120, |g| g.len() >= n);
    assert_eq!(got.len(), n, "each event exactly once");
    let ids: std::collections::BTreeSet<&String> = got
        .iter()
        .map(|g| &g.headers["x-mailstead-delivery"])
        .collect();
    assert_eq!(ids.len(), n);
    // The outbox lives on disk: the server's peak memory stays small.
    let pid = s.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(peak_kb < 400 * 1024, "peak RSS {peak_kb} kB");
    assert_eq!(s.get("/healthz").status(), 200);
}

#[test]
fn queue_events_reach_subscribers() {
    let rx = Receiver::start(&[], 200);
    // The relay is a closed loopback port: the message is queued, then deferred.
    let closed = free_port();
    let relay = format!("smtp://127.0.0.1:{closed}?tls=none");
    let s = lab_server(&[("MAILSTEAD_RELAY", relay.as_str())]);
    subscribe(&s, &rx.url(), &["message.sent", "message.deferred"]);
    let r = s.post(
        "/api/v1/tx",
        &json!({"from": "shop@example.com", "to": "ann@example.org", "subject": "Hi", "html": "<p>Hi</p>"}),
    );
    assert_eq!(r.status(), 202, "{}", r.text().unwrap_or_default());
    let message_id = r.json::<Value>().unwrap()["message_id"].as_u64().unwrap();
    let got = rx.wait_for("message.sent and message.deferred", 30, |g| {
        ["message.sent", "message.deferred"]
            .iter()
            .all(|t| g.iter().any(|x| x.headers["x-mailstead-event"] == *t))
    });
    for g in got
        .iter()
        .filter(|g| g.headers["x-mailstead-event"] != "ping")
    {
        let body: Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(body["data"]["message_id"], message_id, "{body}");
        assert_eq!(body["data"]["email"], "ann@example.org", "{body}");
    }
}

#[test]
fn redirects_are_not_followed_and_responses_are_capped() {
    let rx = Receiver::start(&[], 200);
    let s = lab_server(&[]);
    let base = format!("http://127.0.0.1:{}", rx.port);
    let redirect = subscribe(&s, &format!("{base}/redirect"), &["contact.created"])["id"]
        .as_u64()
        .unwrap();
    let big = subscribe(&s, &format!("{base}/big"), &["contact.created"])["id"]
        .as_u64()
        .unwrap();
    for id in [redirect, big] {
        let r = s.post(
            &format!("/api/v1/webhook-subscriptions/{id}/test"),
            &json!({}),
        );
        assert_eq!(r.status(), 202);
    }
    let log = |id: u64| {
        poll_json(
            &s,
            &format!("/api/v1/webhook-subscriptions/{id}/deliveries"),
            "an attempt",
            |v| v["items"].as_array().is_some_and(|a| !a.is_empty()),
        )["items"][0]
            .clone()
    };
    let a = log(redirect);
    assert_eq!(
        (a["status"].as_u64(), a["ok"].as_bool()),
        (Some(302), Some(false)),
        "{a}"
    );
    assert!(
        rx.got().is_empty(),
        "the redirect was followed: {:#?}",
        rx.got()
    );
    let a = log(big);
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(
        a["response"].as_str().unwrap().len(),
        1024,
        "only the start is kept"
    );
}

//! Whole requests: the answer PUT to a `ResponseURL` on 127.0.0.1, refused URLs, panics and
//! deadlines.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::super::webhook::{EVENTS, NOT_REGISTERED};
use super::super::*;
use super::{SECRET, Secret, calls, create};
use crate::adapters::http::HttpSettings;
use crate::testing::FakeWebhooks;

/// One request as the `ResponseURL` server saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    target: String,
    content_type: Option<String>,
    body: Value,
}

/// A `ResponseURL` server on 127.0.0.1 that records each request and answers 200.
fn response_server() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut words = line.split_whitespace().map(str::to_owned);
            let (method, target) = (words.next().unwrap(), words.next().unwrap());
            let (mut content_type, mut length) = (None, 0);
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let Some((name, value)) = header.trim_end().split_once(':') else {
                    break;
                };
                match name.to_ascii_lowercase().as_str() {
                    "content-type" => content_type = Some(value.trim().to_owned()),
                    "content-length" => length = value.trim().parse().unwrap(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            record.lock().unwrap().push(Seen {
                method,
                target,
                content_type,
                body,
            });
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (base, seen)
}

fn app(fake: Arc<FakeWebhooks>) -> WebhookApp {
    WebhookApp {
        webhooks: fake,
        secret: Arc::new(Secret(Some(SECRET))),
        http: HttpClient::new(HttpSettings {
            request_timeout: Duration::from_secs(2),
            ..HttpSettings::default()
        }),
    }
}

fn answered_to(base: &str) -> CustomResourceRequest {
    let mut request = create();
    request.response_url = format!("{base}/answer?X-Amz-Signature=abc");
    request
}

#[tokio::test]
async fn the_answer_is_put_with_an_empty_content_type() {
    let (base, seen) = response_server();
    let request = answered_to(&base);
    let returned = handle(
        &app(Arc::default()),
        request.clone(),
        Deadline::after(Duration::from_secs(10)),
    )
    .await;
    assert_eq!(
        returned,
        json!({"Status": "SUCCESS", "PhysicalResourceId": "wh-1", "Answered": true})
    );
    let seen = seen.lock().unwrap();
    let [put] = seen.as_slice() else {
        panic!("{seen:?}")
    };
    assert_eq!(
        (put.method.as_str(), put.target.as_str()),
        ("PUT", "/answer?X-Amz-Signature=abc")
    );
    assert_eq!(put.content_type.as_deref(), Some(""));
    assert_eq!(
        put.body,
        json!({
            "Status": "SUCCESS",
            "Reason": format!("Leaf webhook wh-1 registered for {}", EVENTS.join(", ")),
            "PhysicalResourceId": "wh-1",
            "StackId": request.stack_id,
            "RequestId": request.request_id,
            "LogicalResourceId": "LeafWebhook",
            "Data": {"WebhookId": "wh-1"},
        })
    );
}

#[tokio::test]
async fn a_response_url_elsewhere_is_refused_and_nothing_is_done() {
    for ok in [
        "https://bucket.s3.amazonaws.com/x?y=1",
        "http://127.0.0.1:9/x",
        "http://[::1]:9/",
        "http://localhost/",
    ] {
        assert_eq!(answer::check_response_url(ok), Ok(()), "{ok}");
    }
    for url in [
        "http://bucket.s3.amazonaws.com/x",
        "http://10.0.0.1/x",
        "ftp://127.0.0.1/x",
        "not a url",
        "",
    ] {
        let fake = Arc::new(FakeWebhooks::default());
        let mut request = create();
        request.response_url = url.into();
        let returned = handle(
            &app(fake.clone()),
            request,
            Deadline::after(Duration::from_secs(5)),
        )
        .await;
        assert_eq!(returned, json!({"Status": "FAILED", "Answered": false}), "{url}");
        assert!(calls(&fake).is_empty(), "{url}");
    }
}

#[tokio::test]
async fn a_panic_is_answered_failed_once() {
    let (base, seen) = response_server();
    let fake = Arc::new(FakeWebhooks::default());
    fake.panic.store(true, Ordering::SeqCst);
    let returned = handle(
        &app(fake),
        answered_to(&base),
        Deadline::after(Duration::from_secs(10)),
    )
    .await;
    assert_eq!(
        returned,
        json!({"Status": "FAILED", "PhysicalResourceId": NOT_REGISTERED, "Answered": true})
    );
    let seen = seen.lock().unwrap();
    let [put] = seen.as_slice() else {
        panic!("{seen:?}")
    };
    assert_eq!(
        (put.body["Status"].as_str(), put.content_type.as_deref()),
        (Some("FAILED"), Some(""))
    );
    assert_eq!(put.body["PhysicalResourceId"], NOT_REGISTERED);
    assert!(
        put.body["Reason"]
            .as_str()
            .unwrap()
            .contains("failed unexpectedly"),
        "{put:?}"
    );
}

#[tokio::test]
async fn work_that_outlives_the_deadline_is_answered_failed_in_time() {
    let (base, seen) = response_server();
    let fake = Arc::new(FakeWebhooks::default());
    fake.hang.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let deadline = Deadline::after(ANSWER_RESERVE + Duration::from_millis(300));
    let returned = handle(&app(fake), answered_to(&base), deadline).await;
    assert!(
        !deadline.is_past(),
        "answered after the deadline: {:?}",
        started.elapsed()
    );
    assert_eq!(returned["Status"], "FAILED");
    let seen = seen.lock().unwrap();
    let [put] = seen.as_slice() else {
        panic!("{seen:?}")
    };
    assert!(
        put.body["Reason"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{put:?}"
    );
}

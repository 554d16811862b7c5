//! The proxy's stand-ins for moto, read and written by the real SDKs: `ListSecrets` pages,
//! and the in-memory queues.

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

use super::*;

/// The stand-in's pages, read by the real SDK: names, tags, versions and tokens as it parses them.
#[tokio::test]
async fn list_secrets_is_answered_in_the_wire_format_page_by_page() {
    // Nothing listens on port 1: a call that reached "moto" would fail.
    let proxy = AwsProxy::start("http://127.0.0.1:1").await;
    let mut secrets: Vec<ListedSecret> = (0..250)
        .map(|i| ListedSecret::current(format!("growers/{i:03}"), format!("v{i}")))
        .collect();
    secrets.insert(7, ListedSecret::current("leaf-owner", "v-owner"));
    secrets[3].tags = vec![("stara-connect:disconnected".into(), "true".into())];
    proxy.list_secrets_from(secrets);
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "t", "t", None, None, "t",
        ))
        .endpoint_url(proxy.endpoint())
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values("growers/")
        .build();
    let (mut token, mut pages, mut names) = (None, Vec::new(), Vec::new());
    loop {
        let page = client
            .list_secrets()
            .filters(filter.clone())
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .expect("a page");
        pages.push(page.secret_list().len());
        for secret in page.secret_list() {
            names.push(secret.name().unwrap_or_default().to_owned());
            let versions = secret.secret_versions_to_stages().expect("versions");
            let n = secret.name().unwrap_or_default().trim_start_matches("growers/");
            let n: usize = n.parse().expect("a number");
            assert_eq!(
                versions.get(&format!("v{n}")),
                Some(&vec!["AWSCURRENT".to_owned()])
            );
            let tags: Vec<_> = secret.tags().iter().map(|t| (t.key(), t.value())).collect();
            let expected = if n == 3 {
                vec![(Some("stara-connect:disconnected"), Some("true"))]
            } else {
                vec![]
            };
            assert_eq!(tags, expected, "{n}");
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, [100, 100, 50]);
    let expected: Vec<String> = (0..250).map(|i| format!("growers/{i:03}")).collect();
    assert_eq!(
        names, expected,
        "every grower once, in order, and not the owner's secret"
    );
    assert_eq!(proxy.calls(LIST_SECRETS), 3);

    let bad = client.list_secrets().next_token("elsewhere").send().await;
    assert!(bad.is_err(), "an unknown token is refused");
    proxy.list_secrets_from_moto();
    assert!(
        client.list_secrets().send().await.is_err(),
        "moto (not running) answers again"
    );
}

fn client(proxy: &AwsProxy) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("t", "t", None, None, "t"))
        .endpoint_url(proxy.endpoint())
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

async fn count(client: &aws_sdk_sqs::Client, url: &str) -> (String, String) {
    let got = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let attributes = got.attributes().cloned().unwrap_or_default();
    let get = |name| attributes.get(&name).cloned().unwrap_or_default();
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// The SDK's own calls against a served queue: send, receive (hidden while in flight,
/// counted again when it comes back), delete; a FIFO duplicate dropped.
#[tokio::test]
async fn a_served_queue_keeps_sqs_semantics_for_the_sdk() {
    // Nothing listens on port 1: a call that reached "moto" would fail.
    let proxy = AwsProxy::start("http://127.0.0.1:1").await;
    let sqs = client(&proxy);
    let url = proxy.serve_queue("work");
    let entries = (0..3).map(|i| {
        SendMessageBatchRequestEntry::builder()
            .id(format!("e{i}"))
            .message_body(format!("body {i}"))
            .build()
            .expect("an entry")
    });
    let sent = sqs
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(entries.collect()))
        .send()
        .await
        .expect("sent");
    assert_eq!((sent.successful().len(), sent.failed().len()), (3, 0));

    let receive = |max: i32, hidden: i32| {
        sqs.receive_message()
            .queue_url(&url)
            .max_number_of_messages(max)
            .visibility_timeout(hidden)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
    };
    let first = receive(2, 60).await.expect("received");
    let bodies: Vec<_> = first.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, ["body 0", "body 1"]);
    assert_eq!(count(&sqs, &url).await, ("1".into(), "2".into()));
    // The first comes back at once; the second is deleted.
    let [one, two] = first.messages() else {
        panic!("two messages")
    };
    sqs.change_message_visibility()
        .queue_url(&url)
        .receipt_handle(one.receipt_handle().unwrap_or_default())
        .visibility_timeout(0)
        .send()
        .await
        .expect("made visible");
    let delete = DeleteMessageBatchRequestEntry::builder()
        .id("d")
        .receipt_handle(two.receipt_handle().unwrap_or_default())
        .build()
        .expect("an entry");
    let deleted = sqs
        .delete_message_batch()
        .queue_url(&url)
        .entries(delete)
        .send()
        .await
        .expect("deleted");
    assert_eq!(deleted.successful().len(), 1);
    let again = receive(10, 60).await.expect("received");
    let seen: Vec<(Option<&str>, Option<&String>)> = again
        .messages()
        .iter()
        .map(|m| {
            let count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount));
            (m.body(), count)
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some("body 0"), Some(&"2".to_owned())),
            (Some("body 2"), Some(&"1".to_owned()))
        ]
    );
    assert!(
        receive(10, 60).await.expect("received").messages().is_empty(),
        "all in flight"
    );
    assert_eq!(
        proxy.queue_contents(&url),
        (vec!["body 0".into(), "body 2".into()], 3)
    );

    let fifo = proxy.serve_queue("repairs.fifo");
    for _ in 0..2 {
        sqs.send_message()
            .queue_url(&fifo)
            .message_body("repair")
            .message_group_id("g")
            .message_deduplication_id("same")
            .send()
            .await
            .expect("sent");
    }
    assert_eq!(
        proxy.queue_contents(&fifo),
        (vec!["repair".into()], 1),
        "a duplicate dropped"
    );
    assert_eq!(proxy.calls("AmazonSQS.SendMessage"), 2);
}

/// moto closes every connection (`Connection: close`); AWS keeps them open. The proxy passes on
/// the answer, not moto's connection handling, so a client keeps its connection, as with AWS.
#[tokio::test]
async fn moto_closing_its_connections_does_not_close_the_clients() {
    let upstream = server::serve(|_request, _connection| async {
        let mut response = server::json_response(200, &serde_json::json!({"SecretList": []}));
        response
            .headers_mut()
            .insert("connection", "close".parse().expect("a valid header value"));
        response
    })
    .await
    .expect("an upstream");
    let proxy = AwsProxy::start(&format!("http://{}", upstream.addr())).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let answer = client
            .post(proxy.endpoint())
            .header("x-amz-target", "secretsmanager.DescribeSecret")
            .header("connection", "keep-alive")
            .body("{}")
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.headers().get("connection"),
            None,
            "moto's `Connection: close`"
        );
        assert_eq!(answer.text().await.expect("a body"), r#"{"SecretList":[]}"#);
    }
    assert_eq!(proxy.calls("secretsmanager.DescribeSecret"), 2);
}

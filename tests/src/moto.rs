//! moto server: Secrets Manager and SQS over the real AWS wire protocol.
//!
//! One moto per test process, shared by every test: use unique resource names (e.g. a UUID
//! in each secret name). Set `MOTO_ENDPOINT` to use an already running moto instead.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::Credentials;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use serde_json::Value;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const REGION: &str = "us-east-1";

static STARTED_MOTO: OnceLock<String> = OnceLock::new();

/// The moto endpoint (`http://127.0.0.1:PORT`): `$MOTO_ENDPOINT`, or a moto server started
/// from `<workspace>/.venv` on first use. Blocks until moto answers; panics if there is none.
pub fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint.trim_end_matches('/').to_owned(),
        _ => STARTED_MOTO.get_or_init(start_moto).clone(),
    }
}

/// SDK config pointing at moto: region us-east-1, static credentials test/test.
pub async fn sdk_config() -> SdkConfig {
    // Starting moto blocks for a while; keep that off the async worker.
    let endpoint = tokio::task::spawn_blocking(moto_endpoint)
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "testbed"))
        .endpoint_url(endpoint)
        // moto answers 500 now and then when secrets are created while others are listed
        // ("dictionary changed size during iteration"): more attempts than the SDK's three.
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
        .load()
        .await
}

/// For a function that lists secrets while other tests create theirs: its SDK then rides out
/// moto's occasional 500 (see `sdk_config`). Tests that count SDK attempts leave it out.
pub const PATIENT_SDK: (&str, &str) = ("AWS_MAX_ATTEMPTS", "10");

/// Environment for a function process so its AWS SDK talks to moto.
pub fn function_env() -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

pub async fn secrets_client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config().await)
}

pub async fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config().await)
}

/// Create the secret, or give it a new value if it exists. The value is stored as a JSON string.
pub async fn put_secret(name: &str, value: &Value) {
    let client = secrets_client().await;
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value.to_string())
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_exists_exception()) =>
        {
            client
                .put_secret_value()
                .secret_id(name)
                .secret_string(value.to_string())
                .send()
                .await
                .unwrap_or_else(|error| {
                    panic!("moto: put_secret_value({name}): {}", DisplayErrorContext(&error))
                });
        }
        Err(error) => panic!("moto: create_secret({name}): {}", DisplayErrorContext(&error)),
    }
}

/// The secret's current value (parsed as JSON, or a JSON string if it is not JSON); None if absent.
pub async fn get_secret(name: &str) -> Option<Value> {
    let fetched = secrets_client()
        .await
        .get_secret_value()
        .secret_id(name)
        .send()
        .await;
    match fetched {
        Ok(output) => {
            let text = output.secret_string().unwrap_or_default();
            Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())))
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(error) => panic!("moto: get_secret_value({name}): {}", DisplayErrorContext(&error)),
    }
}

/// Delete the secret at once (no recovery window); absent secrets are fine.
pub async fn delete_secret(name: &str) {
    let deleted = secrets_client()
        .await
        .delete_secret()
        .secret_id(name)
        .force_delete_without_recovery(true)
        .send()
        .await;
    match deleted {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) => {}
        Err(error) => panic!("moto: delete_secret({name}): {}", DisplayErrorContext(&error)),
    }
}

/// Create an SQS queue and return its URL.
pub async fn create_queue(name: &str) -> String {
    let created = sqs_client()
        .await
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|error| panic!("moto: create_queue({name}): {}", DisplayErrorContext(&error)));
    created
        .queue_url()
        .unwrap_or_else(|| panic!("moto: create_queue({name}) returned no URL"))
        .to_owned()
}

// --- FIFO queues (added for the verify tests) -------------------------------------------

/// Create a FIFO queue (`name` must end in `.fifo`) without content-based deduplication, so
/// every message needs its own deduplication id; returns its URL.
pub async fn create_fifo_queue(name: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    assert!(name.ends_with(".fifo"), "a FIFO queue name ends in .fifo: {name}");
    let created = sqs_client()
        .await
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "moto: create_queue({name}, fifo): {}",
                DisplayErrorContext(&error)
            )
        });
    created
        .queue_url()
        .unwrap_or_else(|| panic!("moto: create_queue({name}) returned no URL"))
        .to_owned()
}

/// Receive (and delete) every message that becomes visible within `wait`, with all system
/// attributes (MessageGroupId, MessageDeduplicationId, ...). Stops early once `expected`
/// messages arrived and a further short poll finds nothing more.
pub async fn drain_queue(url: &str, expected: usize, wait: Duration) -> Vec<aws_sdk_sqs::types::Message> {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let client = sqs_client().await;
    let deadline = Instant::now() + wait;
    let mut messages = Vec::new();
    loop {
        let received = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(if messages.len() >= expected { 0 } else { 1 })
            .send()
            .await
            .unwrap_or_else(|error| panic!("moto: receive_message({url}): {}", DisplayErrorContext(&error)));
        let batch = received.messages().to_vec();
        for message in &batch {
            if let Some(handle) = message.receipt_handle() {
                client
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap_or_else(|error| {
                        panic!("moto: delete_message({url}): {}", DisplayErrorContext(&error))
                    });
            }
        }
        let got_none = batch.is_empty();
        messages.extend(batch);
        if (got_none && messages.len() >= expected) || Instant::now() >= deadline {
            return messages;
        }
    }
}

fn start_moto() -> String {
    let binary = crate::workspace_root().join(".venv/bin/moto_server");
    if !binary.exists() {
        panic!(
            "moto not found: run `make test` (it installs the pinned venv). \
             Looked for {} and MOTO_ENDPOINT is not set.",
            binary.display()
        );
    }
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("testbed-moto-{port}.log"));
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread_log_path = log_path.clone();
    std::thread::Builder::new()
        .name("moto-server".to_owned())
        .spawn(move || {
            // PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so moto is
            // forked here and this thread then lives (parked) as long as the test process.
            let _moto = match spawn_and_wait(&binary, port, &thread_log_path) {
                Ok(child) => {
                    let _ = ready_tx.send(Ok(()));
                    child
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            loop {
                std::thread::park();
            }
        })
        .expect("cannot start the moto supervisor thread");
    match ready_rx.recv() {
        Ok(Ok(())) => format!("http://127.0.0.1:{port}"),
        Ok(Err(error)) => panic!(
            "moto did not start: {error}; its log: {}\n{}",
            log_path.display(),
            log_tail(&log_path)
        ),
        Err(_) => panic!("the moto supervisor thread died"),
    }
}

fn spawn_and_wait(binary: &Path, port: u16, log_path: &PathBuf) -> io::Result<Child> {
    let log = std::fs::File::create(log_path)?;
    let mut command = Command::new(binary);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: only async-signal-safe calls (prctl, errno) run between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // Die with the test process, even when it is killed.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    // A separate process gives no readiness signal, so poll until it answers HTTP.
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!("moto_server exited with {status}")));
        }
        if answers_http(address) {
            return Ok(child);
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "moto_server did not answer on {address} within {STARTUP_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn answers_http(address: SocketAddr) -> bool {
    let probe = || -> io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut head = [0u8; 5];
        stream.read_exact(&mut head)?;
        Ok(&head == b"HTTP/")
    };
    probe().unwrap_or(false)
}

/// A port that was free a moment ago (moto needs a number up front).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot find a free port on 127.0.0.1")
        .port()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Needs moto: fails (never skips) when it is missing, like the e2e tests.
    #[tokio::test]
    async fn put_get_and_delete_a_secret() {
        let name = format!("testbed/{}", uuid::Uuid::new_v4());
        assert_eq!(get_secret(&name).await, None);
        put_secret(&name, &json!({ "login": "grower", "password": "pw1" })).await;
        assert_eq!(
            get_secret(&name).await,
            Some(json!({ "login": "grower", "password": "pw1" }))
        );
        put_secret(&name, &json!({ "login": "grower", "password": "pw2" })).await;
        assert_eq!(get_secret(&name).await.expect("secret")["password"], "pw2");
        delete_secret(&name).await;
        assert_eq!(get_secret(&name).await, None);
        delete_secret(&name).await;
    }

    #[tokio::test]
    async fn creates_queues() {
        let name = format!("testbed-{}", uuid::Uuid::new_v4());
        let url = create_queue(&name).await;
        assert!(url.ends_with(&name), "{url}");
        let sent = sqs_client()
            .await
            .send_message()
            .queue_url(&url)
            .message_body("{}")
            .send()
            .await;
        assert!(
            sent.is_ok(),
            "{:?}",
            sent.err().map(|error| DisplayErrorContext(error).to_string())
        );
    }

    #[test]
    fn function_env_points_at_moto() {
        let env = function_env();
        assert!(
            env.iter()
                .any(|(name, value)| name == "AWS_ENDPOINT_URL" && value.starts_with("http://"))
        );
    }
}

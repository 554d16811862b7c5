//! What every scenario shares: moto behind a counting proxy, the upstream latency, the
//! production HTTP settings, and seeding growers quickly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use testbed::aws_proxy::AwsProxy;
use testbed::bed::{Bed, Running};
use testbed::moto;

use crate::upstream::Upstream;

/// The functions' own defaults (shared/src/config.rs), written out so that the test bed's fast
/// settings (`testbed::bed::FAST_HTTP`) do not apply: the bench measures what production runs.
pub const PRODUCTION_HTTP: &[(&str, &str)] = &[
    ("HTTP_TIMEOUT_MS", "10000"),
    ("UPSTREAM_BUDGET_MS", "25000"),
    ("RETRY_MAX_ATTEMPTS", "4"),
    ("RETRY_BASE_DELAY_MS", "200"),
    ("RETRY_MAX_DELAY_MS", "5000"),
    ("RETRY_AFTER_CAP_MS", "10000"),
];

pub const GET_SECRET_VALUE: &str = "secretsmanager.GetSecretValue";
pub const LIST_SECRETS: &str = "secretsmanager.ListSecrets";

pub struct World {
    /// The upstream latency: what one Stara or Leaf call takes on average, as a client sees it.
    pub latency: Duration,
    /// How the stand-ins' delay is set to give it.
    pub upstream: Upstream,
    pub proxy: AwsProxy,
}

/// Secrets Manager calls the functions made (through the proxy), by operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecretCalls {
    pub get_secret_value: usize,
    pub list_secrets: usize,
}

impl std::ops::Sub for SecretCalls {
    type Output = SecretCalls;
    fn sub(self, earlier: SecretCalls) -> SecretCalls {
        SecretCalls {
            get_secret_value: self.get_secret_value - earlier.get_secret_value,
            list_secrets: self.list_secrets - earlier.list_secrets,
        }
    }
}

impl World {
    pub async fn start(latency: Duration) -> World {
        // Starting moto blocks for a while; keep that off the async workers.
        let endpoint = tokio::task::spawn_blocking(moto::moto_endpoint)
            .await
            .expect("moto starts");
        let proxy = AwsProxy::start(&endpoint).await;
        let upstream = Upstream::calibrate(latency).await;
        World {
            latency,
            upstream,
            proxy,
        }
    }

    /// A fresh bed (stand-in, Leaf owner secret, its own grower prefix) whose calls take the
    /// upstream latency.
    pub async fn bed(&self) -> Bed {
        let bed = Bed::start().await;
        self.upstream.attach(&bed.standin);
        bed
    }

    /// Starts `bin` (a release binary when `TESTBED_BIN_DIR` points at target/release) with the
    /// production HTTP settings, its AWS calls going through the counting proxy, then `extra`.
    pub async fn run(&self, bed: &Bed, bin: &str, extra: &[(&str, &str)]) -> Running {
        let endpoint = self.proxy.endpoint();
        let mut env: Vec<(&str, &str)> = PRODUCTION_HTTP.to_vec();
        env.push(("AWS_ENDPOINT_URL", endpoint.as_str()));
        env.extend_from_slice(extra);
        let running = bed.run(bin, &env).await;
        running.runtime.wait_first_poll(Duration::from_secs(30)).await;
        running
    }

    pub fn secret_calls(&self) -> SecretCalls {
        SecretCalls {
            get_secret_value: self.proxy.calls(GET_SECRET_VALUE),
            list_secrets: self.proxy.calls(LIST_SECRETS),
        }
    }
}

/// What a seeded grower has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// A Stara account, a Leaf user and the login secret: connect can connect it.
    Connectable,
    /// A Leaf user with `OK` credentials and a login secret: verify finds it healthy.
    Healthy,
}

/// Creates `n` growers under the bed's prefix, 16 secrets at a time with one Secrets Manager
/// client (straight to moto: seeding is not counted). Prints progress for large fleets.
pub async fn seed_growers(bed: &Bed, n: usize, seed: Seed) -> Vec<String> {
    let client = moto::secrets_client().await;
    let started = Instant::now();
    let done = AtomicUsize::new(0);
    let step = if n >= 2_000 { 1_000 } else { usize::MAX };
    let ids: Vec<String> = futures_util::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            let done = &done;
            async move {
                let grower = bed.add_grower_without_secret().await;
                if seed == Seed::Healthy {
                    bed.standin.set_credential(&grower.leaf_user_id, "OK");
                }
                let value = json!({"login": grower.login, "password": grower.password}).to_string();
                client
                    .create_secret()
                    .name(format!("{}{}", bed.grower_prefix, grower.leaf_user_id))
                    .secret_string(value)
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "moto create_secret: {}",
                            aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                        )
                    });
                let so_far = done.fetch_add(1, Ordering::Relaxed) + 1;
                if so_far % step == 0 {
                    eprintln!(
                        "bench:     seeded {so_far} / {n} growers in moto ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
                grower.leaf_user_id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    ids
}

/// Waits until `running` has logged at least `count` lines that satisfy `matches`; returns them.
pub async fn wait_lines(
    running: &Running,
    count: usize,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<serde_json::Value> =
            running.function.log_json().into_iter().filter(&matches).collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

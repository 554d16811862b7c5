//! Building the clients once per process, from the configuration.

use std::sync::Arc;
use std::time::Duration;

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use super::after_response::DeferredMarks;
use super::config::{Config, ConfigError};
use super::connect_handler::ConnectApp;
use super::verify_config::VerifyConfig;
use super::verify_handler::VerifyApp;
use crate::adapters::directory::SecretsManagerDirectory;
use crate::adapters::grower_state::SecretsManagerStates;
use crate::adapters::http::HttpClient;
use crate::adapters::leaf::LeafClient;
use crate::adapters::rate_limit::RateLimiter;
use crate::adapters::repair_queue::SqsRepairQueue;
use crate::adapters::secret_cache::SecretsManagerSource;
use crate::adapters::secrets::Secrets;
use crate::adapters::stara::StaraClient;
use crate::adapters::tls_roots;
use crate::adapters::verify_queue::SqsVerifyQueue;
use crate::domain::connect::Connector;
use crate::domain::error::Service;
use crate::domain::ports::{RepairQueue, VerifyQueue};
use crate::domain::verify::Verifier;

/// Everything a function talks to, built once in `main` and shared by every invocation.
pub struct Clients {
    pub(crate) config: Config,
    pub(crate) aws: SdkConfig,
    pub(crate) secrets: Arc<Secrets>,
    pub(crate) stara: Arc<StaraClient>,
    pub(crate) leaf: Arc<LeafClient>,
    /// The one HTTP client (one TLS configuration, one connection pool) every upstream call uses.
    pub(crate) http: HttpClient,
}

impl Clients {
    /// Reads the configuration from the environment and builds every client.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::new(Config::from_env()?).await)
    }

    pub(crate) async fn new(config: Config) -> Self {
        // AWS_REGION, credentials and AWS_ENDPOINT_URL (a local emulator) come from the environment.
        let mut aws = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(3))
                    .operation_timeout(Duration::from_secs(8))
                    .build(),
            )
            // The attempt timeout above already ends a stalled answer (they are a few KiB); the
            // throughput check would only add its timer to every read (2 % of a connect's
            // instructions, docs/BENCHMARKS.md).
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        // Amazon Trust Services' roots compiled in, unless TLS_ROOTS=system (the SDK's default).
        if let Some(client) = tls_roots::aws_http_client(config.http.roots) {
            aws = aws.http_client(client);
        }
        let aws = aws.load().await;
        let source = Arc::new(SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(
            &aws,
        )));
        let secrets = Arc::new(
            Secrets::new(
                source,
                config.secret_cache_ttl,
                &config.leaf_secret_id,
                &config.stara_secret_prefix,
            )
            .with_webhook_secret(config.leaf_webhook_secret_id.clone()),
        );
        let http = HttpClient::new(config.http.clone());
        let stara = Arc::new(StaraClient::new(http.clone(), config.stara_base_url.clone()));
        // Only Leaf's calls are paced (LEAF_MAX_RPS) and paused by Leaf's 429s; one limiter per process.
        let limiter = RateLimiter::new(Service::Leaf, config.leaf_max_rps, &config.http);
        let leaf = Arc::new(LeafClient::new(
            http.clone().with_limiter(Arc::new(limiter)),
            config.leaf_base_url.clone(),
            secrets.clone(),
        ));
        Self {
            config,
            aws,
            secrets,
            stara,
            leaf,
            http,
        }
    }

    /// The growers' states, next to their logins in Secrets Manager.
    fn states(&self) -> Arc<SecretsManagerStates> {
        let client = aws_sdk_secretsmanager::Client::new(&self.aws);
        Arc::new(SecretsManagerStates::new(
            client,
            self.config.stara_secret_prefix.clone(),
        ))
    }

    /// What the connect function needs.
    pub fn connect_app(&self) -> ConnectApp {
        // The credentials-id record waits until the answer has gone: nothing but a later Leaf
        // alert reads it (lambda/after_response.rs).
        let deferred = Arc::new(DeferredMarks::new(self.states()));
        ConnectApp {
            connector: Connector::new(
                self.secrets.clone(),
                deferred.clone(),
                self.stara.clone(),
                self.leaf.clone(),
                self.config.http.request_timeout,
            ),
            budget: self.config.http.budget,
            batch_concurrency: self.config.batch_concurrency,
            deferred,
        }
    }

    /// What the verify function needs, with its own configuration.
    pub fn verify_app(&self, verify: &VerifyConfig) -> VerifyApp {
        let directory = SecretsManagerDirectory::new(
            aws_sdk_secretsmanager::Client::new(&self.aws),
            self.config.stara_secret_prefix.clone(),
        );
        let repairs = verify.repair_queue_url().map(|url| {
            Arc::new(SqsRepairQueue::new(aws_sdk_sqs::Client::new(&self.aws), url)) as Arc<dyn RepairQueue>
        });
        match (&verify.connect_queue_url, verify.auto_repair) {
            (None, _) => tracing::warn!(
                "CONNECT_QUEUE_URL is not set: verify reports broken connections but does not repair them"
            ),
            (Some(_), false) => tracing::info!(
                "AUTO_REPAIR is off: verify reports broken connections but does not repair them"
            ),
            (Some(_), true) => {}
        }
        let directory = Arc::new(directory);
        let verify_queue = verify.verify_queue_url.as_ref().map(|url| {
            let client = aws_sdk_sqs::Client::new(&self.aws);
            Arc::new(SqsVerifyQueue::new(client, url)) as Arc<dyn VerifyQueue>
        });
        VerifyApp {
            verifier: Verifier::new(self.leaf.clone(), self.states()),
            directory: directory.clone(),
            growers: directory,
            webhook_secret: self.secrets.clone(),
            webhooks: self.leaf.clone(),
            answers: self.http.clone(),
            grower_prefix: self.config.stara_secret_prefix.clone(),
            repairs,
            verify_queue,
            budget: self.config.http.budget,
            concurrency: verify.concurrency,
        }
    }
}

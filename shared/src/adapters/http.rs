//! The one HTTP client both upstream clients use: rustls, no redirects, a timeout per attempt,
//! an overall deadline, and retries of what is safe to retry.
//!
//! Bodies of upstream answers are never put into errors or logs: Leaf echoes the grower's
//! tokens back, and error pages could do the same.

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};

use super::error_chain;
use super::rate_limit::{Pacer, RateLimiter};
use super::retry;
use crate::domain::error::{Service, UpstreamError, UpstreamKind};
use crate::domain::time::{Deadline, record_upstream};

/// Largest upstream body we read; the documented answers are a few hundred bytes.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the HTTP clients behave towards Stara and Leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HttpSettings {
    /// Timeout of one attempt, connection to last body byte.
    pub(crate) request_timeout: Duration,
    /// Everything one connect may spend upstream, retries included. Fits API Gateway's 30 s.
    pub(crate) budget: Duration,
    /// Attempts per call, the first included.
    pub(crate) max_attempts: u32,
    /// First backoff step; each retry doubles it, with full jitter.
    pub(crate) base_delay: Duration,
    /// Largest backoff step.
    pub(crate) max_delay: Duration,
    /// Largest wait a `Retry-After` header can ask for; beyond it we give up instead.
    pub(crate) retry_after_cap: Duration,
    /// Which certificate authorities are trusted (`TLS_ROOTS`).
    pub(crate) roots: super::tls_roots::TlsRoots,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            budget: Duration::from_secs(25),
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            retry_after_cap: Duration::from_secs(10),
            roots: Default::default(),
        }
    }
}

/// One request to send. The body is JSON already serialised by the caller.
pub(crate) struct Call<'a> {
    pub(crate) service: Service,
    /// A short, log-safe name such as `POST /token`.
    pub(crate) operation: &'static str,
    pub(crate) method: reqwest::Method,
    /// Built from a [`BaseUrl`](super::base_url::BaseUrl), not parsed from text.
    pub(crate) url: reqwest::Url,
    pub(crate) bearer: Option<&'a SecretString>,
    pub(crate) json_body: Option<&'a [u8]>,
}

/// An upstream answer, whatever its status.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<String>,
    /// The `Location` header (where a POST put what it created).
    pub(crate) location: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// The body's length, never its bytes: Leaf echoes the grower's tokens in its answers.
impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .field("location", &self.location)
            .field("body", &format_args!("[{} bytes redacted]", self.body.len()))
            .finish()
    }
}

/// Why a single attempt got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AttemptError {
    /// No answer within the attempt's timeout.
    Timeout,
    /// The request was certainly not processed: no connection, or no slot from the rate limiter.
    Connect(String),
    /// The connection broke after the request may have been sent (reset, truncated body).
    Transport(String),
}

impl AttemptError {
    /// Whether the server may have acted on the request even though we got no answer.
    pub(crate) fn is_ambiguous(&self) -> bool {
        !matches!(self, AttemptError::Connect(_))
    }
}

/// The last thing that went wrong in a series of attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    NoAnswer(AttemptError),
    Status(u16),
    /// A success status with a body that is not what the API documents.
    UnreadableAnswer(u16),
}

impl Failure {
    /// Turns the last failure of a call into the error its caller reports.
    pub(crate) fn into_error(
        self,
        service: Service,
        operation: &'static str,
        attempts: u32,
    ) -> UpstreamError {
        let (kind, detail) = match self {
            Failure::NoAnswer(AttemptError::Timeout) => {
                (UpstreamKind::Timeout, "no answer in time".to_owned())
            }
            Failure::NoAnswer(AttemptError::Connect(e)) => {
                (UpstreamKind::Unavailable, format!("could not connect: {e}"))
            }
            Failure::NoAnswer(AttemptError::Transport(e)) => {
                (UpstreamKind::Unavailable, format!("connection broke: {e}"))
            }
            Failure::UnreadableAnswer(s) => (
                UpstreamKind::BadGateway,
                format!("HTTP {s} with an unreadable body"),
            ),
            Failure::Status(504) => (UpstreamKind::Timeout, "HTTP 504".to_owned()),
            Failure::Status(s @ (429 | 503)) => (UpstreamKind::Unavailable, format!("HTTP {s}")),
            Failure::Status(s) if s >= 500 => (UpstreamKind::BadGateway, format!("HTTP {s}")),
            Failure::Status(s) => (UpstreamKind::Rejected, format!("HTTP {s}")),
        };
        let detail = format!("{detail} after {attempts} attempt(s)");
        UpstreamError::new(service, operation, kind, detail)
    }
}

#[derive(Clone)]
pub(crate) struct HttpClient {
    inner: reqwest::Client,
    settings: HttpSettings,
    /// Paces every attempt of this client (Leaf's only): see `rate_limit`.
    limiter: Pacer,
}

impl HttpClient {
    pub(crate) fn new(settings: HttpSettings) -> Self {
        // No redirects, the trusted roots, timeouts: see `reqwest_client`.
        let inner = super::tls_roots::reqwest_client(&settings);
        Self {
            inner,
            settings,
            limiter: Pacer::default(),
        }
    }

    /// This client (same connection pool) with every attempt, retries included, paced by `limiter`.
    pub(crate) fn with_limiter(self, limiter: std::sync::Arc<RateLimiter>) -> Self {
        let limiter = Pacer(Some(limiter));
        Self { limiter, ..self }
    }

    /// One attempt, no retry, bounded by the per-request timeout and the deadline.
    pub(crate) async fn attempt(&self, call: &Call<'_>, deadline: &Deadline) -> Result<Reply, AttemptError> {
        let request = self.build(call)?;
        self.execute(call.service, call.operation, request, false, deadline)
            .await
    }

    fn build(&self, call: &Call<'_>) -> Result<reqwest::RequestBuilder, AttemptError> {
        let mut request = self.inner.request(call.method.clone(), call.url.clone());
        if let Some(token) = call.bearer {
            let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
                .map_err(|_| AttemptError::Connect("the bearer token is not a valid header value".into()))?;
            // Keeps the header out of any debug output of reqwest or hyper.
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = call.json_body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        Ok(request)
    }

    /// Sends one request, bounded by the per-request timeout and the deadline. With
    /// `redact_url`, errors do not name the URL (a pre-signed URL is a credential).
    async fn execute(
        &self,
        service: Service,
        operation: &'static str,
        request: reqwest::RequestBuilder,
        redact_url: bool,
        deadline: &Deadline,
    ) -> Result<Reply, AttemptError> {
        let ticket = self.limiter.acquire(deadline.remaining()).await?;
        let timeout = self.settings.request_timeout.min(deadline.remaining());
        if timeout.is_zero() {
            return Err(AttemptError::Timeout);
        }
        let request = request.timeout(timeout);
        let classify = |e: reqwest::Error| classify(if redact_url { e.without_url() } else { e });
        let started = Instant::now();
        let result = async {
            let mut response = request.send().await.map_err(classify)?;
            let status = response.status().as_u16();
            let header = |name: reqwest::header::HeaderName| {
                let value = response.headers().get(name)?;
                value.to_str().ok().map(str::to_owned)
            };
            let retry_after = header(RETRY_AFTER);
            let location = header(LOCATION);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(classify)? {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(AttemptError::Transport("answer larger than 1 MiB".into()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Reply {
                status,
                retry_after,
                location,
                body,
            })
        }
        .await;
        let elapsed = started.elapsed();
        record_upstream(elapsed);
        match &result {
            Ok(reply) => {
                self.limiter.observe(ticket, reply);
                tracing::debug!(service = %service, operation, status = reply.status,
                    elapsedMs = elapsed.as_millis() as u64, "upstream answered")
            }
            Err(e) => {
                tracing::debug!(service = %service, operation, error = ?e,
                    elapsedMs = elapsed.as_millis() as u64, "upstream did not answer")
            }
        }
        result
    }

    /// Sends a call that is safe to repeat, retrying connection failures, timeouts and
    /// 429/502/503/504 with backoff. Any other answer, success or not, is returned as is.
    pub(crate) async fn send(&self, call: &Call<'_>, deadline: &Deadline) -> Result<Reply, UpstreamError> {
        self.send_with(call.service, call.operation, false, deadline, || self.build(call))
            .await
    }

    /// PUTs `body` to a pre-signed URL (a CloudFormation custom resource's `ResponseURL`) with an
    /// empty `Content-Type`, as the signature requires; retried like [`send`](Self::send) (a PUT
    /// is idempotent). Errors never name the URL: its query string is the signature.
    pub(crate) async fn put_presigned(
        &self,
        operation: &'static str,
        url: &str,
        body: &[u8],
        deadline: &Deadline,
    ) -> Result<Reply, UpstreamError> {
        let build = || {
            Ok(self
                .inner
                .put(url)
                .header(CONTENT_TYPE, HeaderValue::from_static(""))
                .body(body.to_vec()))
        };
        self.send_with(Service::CloudFormation, operation, true, deadline, build)
            .await
    }

    async fn send_with(
        &self,
        service: Service,
        operation: &'static str,
        redact_url: bool,
        deadline: &Deadline,
        build: impl Fn() -> Result<reqwest::RequestBuilder, AttemptError>,
    ) -> Result<Reply, UpstreamError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = match build() {
                Ok(request) => {
                    self.execute(service, operation, request, redact_url, deadline)
                        .await
                }
                Err(e) => Err(e),
            };
            let (failure, retry_after) = match sent {
                Ok(reply) if !retry::is_retryable_status(reply.status) => return Ok(reply),
                Ok(reply) => (Failure::Status(reply.status), reply.retry_after),
                Err(e) => (Failure::NoAnswer(e), None),
            };
            match self.pause_before_retry(attempts, retry_after.as_deref(), deadline) {
                Some(delay) => {
                    tracing::warn!(service = %service, operation, attempt = attempts,
                        failure = ?failure, delayMs = delay.as_millis() as u64, "retrying upstream call");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(failure.into_error(service, operation, attempts)),
            }
        }
    }

    /// How long to wait before attempt `attempts + 1`, or `None` when no further attempt
    /// should be made: out of attempts, `Retry-After` beyond the cap, or past the deadline.
    pub(crate) fn pause_before_retry(
        &self,
        attempts: u32,
        retry_after: Option<&str>,
        deadline: &Deadline,
    ) -> Option<Duration> {
        if attempts >= self.settings.max_attempts {
            return None;
        }
        let delay = retry::next_delay(&self.settings, attempts, retry_after)?;
        // Waiting past the deadline leaves no time for the attempt itself.
        (delay < deadline.remaining()).then_some(delay)
    }
}

fn classify(e: reqwest::Error) -> AttemptError {
    // The error's text names the URL (host and leafUserId), never headers or bodies.
    let text = error_chain(&e);
    if e.is_timeout() {
        AttemptError::Timeout
    } else if e.is_connect() {
        AttemptError::Connect(text)
    } else {
        AttemptError::Transport(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_the_right_kind() {
        use UpstreamKind::{BadGateway, Rejected, Timeout, Unavailable};
        let kind = |f: Failure| f.into_error(Service::Leaf, "GET /x", 3).kind;
        let no_answer = |e| kind(Failure::NoAnswer(e));
        assert_eq!(no_answer(AttemptError::Timeout), Timeout);
        assert_eq!(no_answer(AttemptError::Connect("x".into())), Unavailable);
        assert_eq!(no_answer(AttemptError::Transport("x".into())), Unavailable);
        assert_eq!(kind(Failure::Status(429)), Unavailable);
        assert_eq!(kind(Failure::Status(503)), Unavailable);
        assert_eq!(kind(Failure::Status(502)), BadGateway);
        assert_eq!(kind(Failure::Status(500)), BadGateway);
        assert_eq!(kind(Failure::Status(504)), Timeout);
        assert_eq!(kind(Failure::Status(403)), Rejected);
    }

    #[test]
    fn only_connect_errors_are_unambiguous() {
        assert!(!AttemptError::Connect("refused".into()).is_ambiguous());
        assert!(AttemptError::Timeout.is_ambiguous());
        assert!(AttemptError::Transport("reset".into()).is_ambiguous());
    }

    #[test]
    fn no_retry_past_attempts_or_deadline() {
        let client = HttpClient::new(HttpSettings {
            max_attempts: 3,
            ..HttpSettings::default()
        });
        let far = Deadline::after(Duration::from_secs(60));
        assert!(client.pause_before_retry(1, None, &far).is_some());
        assert!(client.pause_before_retry(3, None, &far).is_none());
        assert!(
            client.pause_before_retry(1, Some("3600"), &far).is_none(),
            "Retry-After beyond the cap"
        );
        let near = Deadline::after(Duration::from_millis(1));
        assert!(client.pause_before_retry(1, Some("1"), &near).is_none());
    }

    #[test]
    fn debug_output_never_shows_a_body() {
        let reply = Reply {
            status: 201,
            retry_after: None,
            location: None,
            body: br#"{"accessToken":"tok-123"}"#.to_vec(),
        };
        let text = format!("{reply:?}");
        assert!(!text.contains("tok-123"), "{text}");
        assert!(text.contains("25 bytes redacted"), "{text}");
    }
}

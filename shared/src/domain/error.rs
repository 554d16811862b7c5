//! Errors as types: each one says whose fault it is and whether trying again can help.
//!
//! Messages name secrets and routes, never their values: no password, apiKey or token is ever
//! formatted into an error.

use std::fmt;

/// Who has to act for the failure to go away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The request itself is wrong (bad input, unknown user, no stored login).
    Caller,
    /// The deployment is wrong (bad secret, Leaf rejects the API owner).
    Configuration,
    /// The grower's Stara login is wrong: only the grower can fix it.
    Grower,
    /// Stara, Leaf or AWS failed or could not be reached.
    Upstream,
}

/// The remote service a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    Stara,
    Leaf,
    SecretsManager,
    Sqs,
    /// A custom resource's answer, PUT to its pre-signed `ResponseURL`.
    CloudFormation,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Stara => "Stara",
            Service::Leaf => "Leaf",
            Service::SecretsManager => "Secrets Manager",
            Service::Sqs => "SQS",
            Service::CloudFormation => "CloudFormation",
        })
    }
}

/// How an upstream call ended when it did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpstreamKind {
    /// No answer within the per-request timeout or the overall budget.
    Timeout,
    /// The service said it cannot serve now (429, 503, connection refused or reset), after retries.
    Unavailable,
    /// The service answered with a server error or with a body we could not use.
    BadGateway,
    /// The service refused the request for good (a 4xx that retrying will not change).
    Rejected,
}

/// A failed call to Stara, Leaf or AWS.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{service} {operation}: {detail}")]
pub(crate) struct UpstreamError {
    pub(crate) service: Service,
    /// A short name of the call, such as `POST /token`.
    pub(crate) operation: &'static str,
    pub(crate) kind: UpstreamKind,
    /// What happened, without any body text: bodies can echo tokens.
    pub(crate) detail: String,
}

impl UpstreamError {
    pub(crate) fn new(
        service: Service,
        operation: &'static str,
        kind: UpstreamKind,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            service,
            operation,
            kind,
            detail: detail.into(),
        }
    }

    /// An answer whose status the API does not document for this call: a server error is the
    /// service's bad moment, anything else a refusal that repeating will not change.
    pub(crate) fn unexpected_status(service: Service, operation: &'static str, status: u16) -> Self {
        let kind = if status >= 500 {
            UpstreamKind::BadGateway
        } else {
            UpstreamKind::Rejected
        };
        Self::new(service, operation, kind, format!("unexpected HTTP {status}"))
    }
}

/// Everything the connect and verify workflows can fail with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnectorError {
    #[error("no Stara login is stored for this Leaf user (secret `{secret_id}`)")]
    GrowerLoginNotFound { secret_id: String },
    #[error("the Stara login in secret `{secret_id}` is malformed: {reason}")]
    GrowerLoginMalformed { secret_id: String, reason: String },
    #[error("Leaf has no user with this id")]
    LeafUserNotFound,
    #[error("Stara rejected the grower's login (HTTP {status})")]
    StaraLoginRejected { status: u16 },
    #[error("configuration: {0}")]
    Configuration(String),
    #[error("could not read secret `{secret_id}`: {detail}")]
    SecretsUnavailable { secret_id: String, detail: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Too little time was left to replace the credentials safely: nothing was changed.
    #[error("too little time left for a POST after the DELETE: the credentials were left as they were")]
    ReplacementDeferred,
    /// The old credentials were deleted and the new ones could not be attached.
    #[error("the old credentials were deleted, the new ones not attached: {0}")]
    ReplacementPending(Box<ConnectorError>),
}

impl ConnectorError {
    pub(crate) fn fault(&self) -> Fault {
        match self {
            Self::GrowerLoginNotFound { .. } | Self::LeafUserNotFound => Fault::Caller,
            Self::GrowerLoginMalformed { .. } | Self::Configuration(_) => Fault::Configuration,
            Self::StaraLoginRejected { .. } => Fault::Grower,
            Self::SecretsUnavailable { .. }
            | Self::Upstream(_)
            | Self::ReplacementDeferred
            | Self::ReplacementPending(_) => Fault::Upstream,
        }
    }

    /// Whether the same request, tried again later, can succeed without anyone changing anything.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            // A grower left without credentials must get them back, whatever stopped the POST.
            Self::SecretsUnavailable { .. } | Self::ReplacementDeferred | Self::ReplacementPending(_) => true,
            Self::Upstream(e) => e.kind != UpstreamKind::Rejected,
            _ => false,
        }
    }

    /// A stable, machine-readable reason code for responses, logs and metrics.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::GrowerLoginNotFound { .. } => "grower_login_not_found",
            Self::GrowerLoginMalformed { .. } => "grower_login_malformed",
            Self::LeafUserNotFound => "leaf_user_not_found",
            Self::StaraLoginRejected { .. } => "stara_login_rejected",
            Self::Configuration(_) => "configuration_error",
            Self::SecretsUnavailable { .. } => "secrets_unavailable",
            Self::ReplacementDeferred => "replacement_deferred",
            Self::ReplacementPending(_) => "replacement_pending",
            Self::Upstream(e) => match e.kind {
                UpstreamKind::Timeout => "upstream_timeout",
                UpstreamKind::Unavailable => "upstream_unavailable",
                UpstreamKind::BadGateway => "upstream_bad_gateway",
                UpstreamKind::Rejected => "upstream_rejected",
            },
        }
    }

    /// What an API caller is told: what went wrong and what to do, with nothing of the
    /// deployment in it (no ARN, account id or URL, no SDK or transport error chain). The full
    /// text goes to the log line under the same request id.
    pub(crate) fn public_message(&self) -> String {
        match self {
            Self::GrowerLoginNotFound { .. } => {
                "no Stara login is stored for this Leaf user: store the grower's login, then try again".into()
            }
            Self::GrowerLoginMalformed { reason, .. } => {
                format!("the stored Stara login for this Leaf user is malformed ({reason}): store it again")
            }
            Self::LeafUserNotFound | Self::StaraLoginRejected { .. } => self.to_string(),
            Self::Configuration(_) => {
                "the connector is misconfigured: an operator must fix it (see the log line of this request)"
                    .into()
            }
            Self::SecretsUnavailable { .. } => "Secrets Manager could not be read: try again later".into(),
            Self::ReplacementDeferred => {
                "too little time was left to replace the credentials safely; nothing was changed: try again"
                    .into()
            }
            Self::ReplacementPending(_) => "the old Stara credentials were removed and the new ones are not \
                 attached yet: the grower has no credentials at Leaf right now, try again"
                .into(),
            Self::Upstream(e) => {
                let what = match e.kind {
                    UpstreamKind::Timeout => "did not answer in time: try again later",
                    UpstreamKind::Unavailable => "is unavailable: try again later",
                    UpstreamKind::BadGateway => "answered with an error: try again later",
                    UpstreamKind::Rejected => "refused the request",
                };
                format!("{} ({}) {what}", e.service, e.operation)
            }
        }
    }

    /// The HTTP status an API caller gets for this failure.
    pub(crate) fn http_status(&self) -> u16 {
        match self {
            Self::GrowerLoginNotFound { .. } | Self::LeafUserNotFound => 404,
            Self::StaraLoginRejected { .. } | Self::GrowerLoginMalformed { .. } => 422,
            Self::Configuration(_) => 500,
            Self::SecretsUnavailable { .. } | Self::ReplacementDeferred | Self::ReplacementPending(_) => 503,
            Self::Upstream(e) => match e.kind {
                UpstreamKind::Timeout => 504,
                UpstreamKind::Unavailable => 503,
                UpstreamKind::BadGateway | UpstreamKind::Rejected => 502,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(kind: UpstreamKind) -> ConnectorError {
        UpstreamError::new(Service::Leaf, "GET /x", kind, "test").into()
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(upstream(UpstreamKind::Timeout).is_retryable());
        assert!(upstream(UpstreamKind::Unavailable).is_retryable());
        assert!(upstream(UpstreamKind::BadGateway).is_retryable());
        assert!(!upstream(UpstreamKind::Rejected).is_retryable());
        assert!(
            ConnectorError::SecretsUnavailable {
                secret_id: "s".into(),
                detail: "d".into()
            }
            .is_retryable()
        );
        assert!(!ConnectorError::StaraLoginRejected { status: 401 }.is_retryable());
        assert!(!ConnectorError::LeafUserNotFound.is_retryable());
        assert!(
            !ConnectorError::GrowerLoginNotFound {
                secret_id: "s".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn statuses_follow_the_api_contract() {
        assert_eq!(ConnectorError::LeafUserNotFound.http_status(), 404);
        assert_eq!(
            ConnectorError::GrowerLoginNotFound {
                secret_id: "s".into()
            }
            .http_status(),
            404
        );
        assert_eq!(
            ConnectorError::StaraLoginRejected { status: 401 }.http_status(),
            422
        );
        assert_eq!(upstream(UpstreamKind::BadGateway).http_status(), 502);
        assert_eq!(upstream(UpstreamKind::Unavailable).http_status(), 503);
        assert_eq!(upstream(UpstreamKind::Timeout).http_status(), 504);
    }

    #[test]
    fn faults_say_who_must_act() {
        assert_eq!(
            ConnectorError::StaraLoginRejected { status: 401 }.fault(),
            Fault::Grower
        );
        assert_eq!(
            ConnectorError::Configuration("x".into()).fault(),
            Fault::Configuration
        );
        assert_eq!(upstream(UpstreamKind::Timeout).fault(), Fault::Upstream);
        assert_eq!(ConnectorError::LeafUserNotFound.fault(), Fault::Caller);
    }

    #[test]
    fn public_messages_keep_the_deployment_to_themselves() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:leaf-owner-AbCdEf";
        let url = "https://api.withleaf.io/services/usermanagement/api/users/x";
        let errors = [
            ConnectorError::Configuration(format!("secret `{arn}`: access denied")),
            ConnectorError::SecretsUnavailable {
                secret_id: arn.into(),
                detail: format!("dispatch failure: {url}"),
            },
            UpstreamError::new(
                Service::Leaf,
                "GET /x",
                UpstreamKind::Unavailable,
                format!("could not connect: {url}"),
            )
            .into(),
            ConnectorError::GrowerLoginNotFound {
                secret_id: arn.into(),
            },
            ConnectorError::GrowerLoginMalformed {
                secret_id: arn.into(),
                reason: "not valid JSON".into(),
            },
        ];
        for e in errors {
            let message = e.public_message();
            assert!(
                !message.contains("arn:") && !message.contains("123456789012"),
                "{message}"
            );
            assert!(!message.contains("http"), "{message}");
            assert!(
                e.to_string().contains("arn:") || e.to_string().contains("http"),
                "the log keeps the detail"
            );
        }
    }
}

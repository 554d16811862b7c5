//! `POST /leaf/alerts`: Leaf's webhook. The only route without API Gateway authorization (Leaf
//! can neither sign SigV4 nor send a JWT), so the signature guards it: `X-Leaf-Signature` is
//! base64(HMAC-SHA256(secret, raw body)), checked over the raw bytes in constant time before
//! anything else is read. A bad signature is answered 401 and logged at DEBUG only, so that no
//! one can flood the logs; it is counted in a metric (and an alarm) instead.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::api::{self, BodyError, Response};
use super::failure::log_failure;
use crate::adapters::metrics::MetricSet;
use crate::adapters::secrets::WebhookSecret;
use crate::domain::alerts::{self, Alert, AlertOutcome};
use crate::domain::ports::{GrowerLookup, RepairQueue};

/// The largest alert accepted; Leaf's payloads are a few hundred bytes.
pub(crate) const MAX_ALERT_BYTES: usize = 64 * 1024;
const SIGNATURE_HEADER: &str = "x-leaf-signature";

/// What the alerts route needs.
pub(crate) struct AlertsApp<'a> {
    pub(crate) secret: &'a dyn WebhookSecret,
    pub(crate) growers: &'a dyn GrowerLookup,
    pub(crate) repairs: Option<&'a dyn RepairQueue>,
}

/// Whether `signature` (base64, as Leaf sends it) is the HMAC-SHA256 of `body` under `secret`.
pub(crate) fn signature_is_valid(secret: &SecretString, body: &[u8], signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
}

/// The alert's own identity: the same alert delivered again has the same id.
fn alert_id(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("alert-{}", hex::encode(&digest[..16]))
}

/// Handles one delivery from Leaf.
pub(crate) async fn handle(
    app: &AlertsApp<'_>,
    request: &ApiGatewayV2httpRequest,
    request_id: &str,
) -> Response {
    let too_large = || {
        MetricSet::new("verify").count("AlertsRefused", 1).emit();
        let message = format!("an alert is at most {} KiB", MAX_ALERT_BYTES / 1024);
        api::json_response(
            413,
            &api::error_body(request_id, None, "payload_too_large", &message),
        )
    };
    let body = match api::body_bytes_within(request, MAX_ALERT_BYTES) {
        Ok(body) => body,
        Err(BodyError::TooLarge(_)) => return too_large(),
        Err(e) => return api::invalid_request(request_id, &e.into()),
    };
    let secret = match app.secret.webhook_secret().await {
        Ok(secret) => secret,
        Err(e) => {
            log_failure("alert not checked", "alert", &e, 0);
            return api::error_response(request_id, None, &e);
        }
    };
    let signature = request
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if !signature.is_some_and(|s| signature_is_valid(&secret, &body, s)) {
        // DEBUG: anyone can send these; the metric and its alarm tell the operator.
        tracing::debug!(
            code = "alert_signature_invalid",
            signed = signature.is_some(),
            "alert refused"
        );
        MetricSet::new("verify").count("AlertsRefused", 1).emit();
        let message = "the X-Leaf-Signature header is missing or wrong";
        return api::json_response(
            401,
            &api::error_body(request_id, None, "invalid_signature", message),
        );
    }
    let Ok(alert) = serde_json::from_slice::<Alert>(&body) else {
        MetricSet::new("verify").count("AlertsIgnored", 1).emit();
        tracing::warn!(
            code = "alert_unreadable",
            "a signed alert is not a JSON object: ignored"
        );
        return api::json_response(200, &json!({"outcome": "ignored"}));
    };
    let Some(repairs) = app.repairs else {
        // Repairs are off (AUTO_REPAIR=false) or have nowhere to go: report, do not make Leaf retry.
        tracing::warn!(
            alert = alert.kind.as_deref(),
            outcome = "not_queued",
            "alert received, but repairs are off or CONNECT_QUEUE_URL is not set: nothing queued"
        );
        return api::json_response(200, &json!({"outcome": "not_queued"}));
    };
    match alerts::act_on(&alert, &alert_id(&body), app.growers, repairs).await {
        Ok(outcome) => respond(&alert, outcome),
        Err(e) => {
            // 5xx: Leaf delivers again (1, 30, 60 and 240 minutes later).
            log_failure("alert not handled", "alert", &e, 0);
            api::error_response(request_id, None, &e)
        }
    }
}

fn respond(alert: &Alert, outcome: AlertOutcome) -> Response {
    let kind = alert.kind.as_deref().unwrap_or_default();
    let (status, body) = match outcome {
        AlertOutcome::Confirmation => {
            tracing::info!(outcome = "confirmed", "Leaf confirmed the webhook");
            (200, json!({"outcome": "confirmed"}))
        }
        AlertOutcome::Queued(user) => {
            tracing::info!(leafUserId = %user, alert = kind, outcome = "repair_queued",
                "alert: repair queued");
            MetricSet::new("verify").count("AlertsRepairQueued", 1).emit();
            (202, json!({"outcome": "repair_queued", "leafUserId": user}))
        }
        AlertOutcome::LeftAlone(user, why) => {
            tracing::info!(leafUserId = %user, alert = kind, outcome = format!("skipped_{why}"),
                "alert: grower left alone");
            (
                200,
                json!({"outcome": format!("skipped_{why}"), "leafUserId": user}),
            )
        }
        AlertOutcome::UnknownCredentials(id) => {
            tracing::info!(
                credentialId = id,
                alert = kind,
                outcome = "unknown_credentials",
                "alert about credentials no grower holds"
            );
            MetricSet::new("verify")
                .count("AlertsUnknownCredentials", 1)
                .emit();
            (200, json!({"outcome": "unknown_credentials"}))
        }
        AlertOutcome::LimitedPermission(id) => {
            tracing::warn!(
                credentialId = id,
                alert = kind,
                outcome = "limited_permission",
                "Stara credentials lack a permission: the grower must grant it at Stara"
            );
            MetricSet::new("verify")
                .count("AlertsLimitedPermission", 1)
                .emit();
            (200, json!({"outcome": "limited_permission"}))
        }
        AlertOutcome::Ignored(kind) => {
            tracing::debug!(
                alert = kind,
                outcome = "ignored",
                "alert of a type this product does not act on"
            );
            (200, json!({"outcome": "ignored"}))
        }
    };
    api::json_response(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn the_signature_is_over_the_raw_bytes() {
        let secret = SecretString::from("whsec-1");
        let body = br#"{"type": "credentialsUnauthenticated", "credentialId": "c1"}"#;
        assert!(signature_is_valid(&secret, body, &sign("whsec-1", body)));
        assert!(
            !signature_is_valid(&secret, body, &sign("other", body)),
            "another secret"
        );
        let reformatted = br#"{"type":"credentialsUnauthenticated","credentialId":"c1"}"#;
        assert!(
            !signature_is_valid(&secret, reformatted, &sign("whsec-1", body)),
            "the same JSON, other bytes"
        );
        assert!(!signature_is_valid(&secret, body, "not base64!"));
        assert!(!signature_is_valid(&secret, body, ""));
    }

    #[test]
    fn the_same_alert_has_the_same_id() {
        assert_eq!(alert_id(b"{}"), alert_id(b"{}"));
        assert_ne!(alert_id(b"{}"), alert_id(b"{ }"));
        assert_eq!(alert_id(b"{}").len(), "alert-".len() + 32);
    }
}

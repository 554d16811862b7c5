//! What verify hears besides API calls and schedules: Leaf's alerts webhook (`POST /leaf/alerts`,
//! signed as Leaf signs it) and the Secrets Manager calls CloudTrail reports through EventBridge.
//! Every event is built from its sample in `events/`.

use std::time::SystemTime;

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::bed::Bed;
use crate::{load_event, moto};

/// The body of Leaf's registration check, as Leaf sends it.
pub const CONFIRMATION_BODY: &str = r#"{"message": "confirmation of webhook upon registration"}"#;

/// base64(HMAC-SHA256(secret, body)): what Leaf sends as `X-Leaf-Signature`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `events/verify-leaf-alert.json` with `body` as its raw body and `signature` as its
/// `x-leaf-signature` header (no header at all for `None`).
pub fn alert_event(body: &str, signature: Option<&str>) -> Value {
    let mut event = load_event("verify-leaf-alert.json");
    event["body"] = json!(body);
    let headers = event["headers"].as_object_mut().expect("the sample has headers");
    match signature {
        Some(signature) => headers.insert("x-leaf-signature".into(), json!(signature)),
        None => headers.remove("x-leaf-signature"),
    };
    event
}

/// The same request as API Gateway hands over a body it holds as binary: the base64 of the
/// bytes, with `isBase64Encoded: true`.
pub fn base64_alert_event(body: &[u8], signature: Option<&str>) -> Value {
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    let mut event = alert_event(&encoded, signature);
    event["isBase64Encoded"] = json!(true);
    event
}

/// A Leaf alert about Stara credentials, in Leaf's compact JSON (a space after `:` and `,`, as
/// in the sample), with a timestamp of now to the nanosecond: two alerts built one after the
/// other are two alerts; the same body sent twice is one alert delivered twice.
pub fn alert_body(kind: &str, credential_id: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    let fields = [
        ("credential", "Stara"),
        ("provider", "Stara"),
        ("credentialId", credential_id),
        ("message", "credentials are no longer valid"),
        ("status", "INVALID"),
        ("type", kind),
        ("timestamp", &format!("2026-11-29T12:00:00.{nanos}Z")),
    ];
    let fields: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}: {}", json!(name), json!(value)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// Stores a fresh webhook signing secret `{"secret": "..."}` in moto, under a name outside the
/// grower prefix, and adds its value to the bed's secrets (the leak checks look for it).
/// Returns the secret's name (for `LEAF_WEBHOOK_SECRET_ID`) and its value.
pub async fn store_webhook_secret(bed: &Bed) -> (String, String) {
    let run = uuid::Uuid::new_v4().simple();
    let name = format!("stara-connect-test/{run}/leaf-webhook");
    let value = format!("whsec-{}", uuid::Uuid::new_v4().simple());
    bed.remember_secret(&value);
    moto::put_secret(&name, &json!({ "secret": value })).await;
    (name, value)
}

/// A Secrets Manager call as CloudTrail reports it through EventBridge, from
/// `events/verify-secret-created.json` (`CreateSecret`, the secret by `name`) or
/// `events/verify-secret-changed.json` (any other call, the secret by `secretId`), with a fresh
/// event id: each call is its own event.
pub fn secret_event(event_name: &str, secret: &str) -> Value {
    let (sample, field) = match event_name {
        "CreateSecret" => ("verify-secret-created.json", "name"),
        _ => ("verify-secret-changed.json", "secretId"),
    };
    let mut event = load_event(sample);
    event["id"] = json!(uuid::Uuid::new_v4().to_string());
    event["detail"]["eventName"] = json!(event_name);
    event["detail"]["requestParameters"][field] = json!(secret);
    event
}

/// The ARN Secrets Manager (moto) gave the secret `name`: `...:secret:<name>-XXXXXX`.
pub async fn secret_arn(name: &str) -> String {
    let described = moto::secrets_client()
        .await
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .unwrap_or_else(|error| panic!("moto: describe_secret({name}): {}", DisplayErrorContext(&error)));
    described
        .arn()
        .unwrap_or_else(|| panic!("moto: secret {name} has no ARN"))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_alerts_are_signed_with_the_sample_secret() {
        for sample in ["verify-leaf-alert.json", "verify-leaf-alert-confirmation.json"] {
            let event = load_event(sample);
            let body = event["body"].as_str().expect("a body");
            assert_eq!(
                event["headers"]["x-leaf-signature"],
                sign("sample-webhook-secret", body.as_bytes()),
                "{sample}"
            );
        }
    }

    #[test]
    fn alerts_look_like_leafs_and_differ_by_their_timestamp() {
        let body = alert_body("credentialsUnauthenticated", "c-1");
        let parsed: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(
            (parsed["type"].as_str(), parsed["credentialId"].as_str()),
            (Some("credentialsUnauthenticated"), Some("c-1"))
        );
        assert!(
            body.starts_with(r#"{"credential": "Stara", "provider": "Stara""#),
            "{body}"
        );
        assert_ne!(body, alert_body("credentialsUnauthenticated", "c-1"));
    }
}

//! What a `Custom::LeafWebhook` request asks of Leaf, and the Reason CloudFormation shows.
//!
//! Create registers the alerts webhook; Update registers the new one and removes the old one
//! (Leaf lets one webhook listen to an event, so when the old one is what stands in the way it
//! goes first); Delete removes it, a 404 counting as done. No text here holds the webhook's
//! secret or the owner's token: Reasons are built from ids, names, URLs and error messages,
//! which never carry a value.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::super::trigger::CustomResourceRequest;
use crate::adapters::leaf_webhooks::{LeafWebhooks, NewWebhook, Registration, Webhook};
use crate::adapters::secrets::WebhookSecret;
use crate::domain::error::ConnectorError;
use crate::domain::time::{Deadline, within_deadline};

/// The Leaf events the connector listens to.
pub(crate) const EVENTS: [&str; 2] = ["credentialsUnauthenticated", "credentialsLimitedPermission"];
/// The PhysicalResourceId answered when no webhook was registered; a Delete of it calls no one.
pub(crate) const NOT_REGISTERED: &str = "stara-connect-webhook-not-registered";
/// Appended to the stack's name to name the webhook.
const NAME_SUFFIX: &str = "-stara-connect";
/// CloudFormation takes at most 4 KiB of answer: the Reason stays well below.
const MAX_REASON: usize = 2000;
/// The most characters of another webhook's name or URL quoted in a Reason.
const MAX_FIELD: usize = 200;

/// `SUCCESS` or `FAILED`, as CloudFormation spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Success,
    Failed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::Failed => "FAILED",
        }
    }
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) status: Status,
    pub(crate) physical_id: String,
    pub(crate) reason: String,
    /// `{"WebhookId"}` after a registration, for `!GetAtt`.
    pub(crate) data: Option<Value>,
}

impl Outcome {
    pub(crate) fn failed(physical_id: String, reason: impl Into<String>) -> Self {
        Self {
            status: Status::Failed,
            physical_id,
            reason: bounded(reason.into(), MAX_REASON),
            data: None,
        }
    }

    fn success(physical_id: String, reason: String, data: Option<Value>) -> Self {
        Self {
            status: Status::Success,
            physical_id,
            reason: bounded(reason, MAX_REASON),
            data,
        }
    }
}

/// Why a request could not be done.
#[derive(Debug)]
enum Problem {
    /// The request itself is wrong; the text says how.
    Request(String),
    /// A secret or Leaf call failed.
    Failed(ConnectorError),
    /// Other webhooks already listen to the events: these ones, as Leaf lists them.
    Taken(Vec<Webhook>),
}

impl From<ConnectorError> for Problem {
    fn from(e: ConnectorError) -> Self {
        Problem::Failed(e)
    }
}

/// The stack's name, from its id `arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<uuid>`.
pub(crate) fn stack_name(stack_id: &str) -> Option<&str> {
    let mut parts = stack_id.splitn(6, ':');
    let (arn, _partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let resource = parts.nth(2)?;
    let (name, _uuid) = resource.strip_prefix("stack/")?.split_once('/')?;
    (arn == "arn" && service == "cloudformation" && !name.is_empty()).then_some(name)
}

/// The PhysicalResourceId of a failed answer: the request's own, else [`NOT_REGISTERED`].
pub(crate) fn failure_physical_id(request: &CustomResourceRequest) -> String {
    match request.physical_resource_id.as_deref() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => NOT_REGISTERED.to_owned(),
    }
}

/// A PhysicalResourceId that can name a webhook (not empty, not [`NOT_REGISTERED`]).
fn webhook_id(request: &CustomResourceRequest) -> Option<&str> {
    let id = request.physical_resource_id.as_deref()?;
    (!id.is_empty() && id != NOT_REGISTERED).then_some(id)
}

/// Does what `request` asks of Leaf, within `deadline`.
pub(crate) async fn run(
    request: &CustomResourceRequest,
    webhooks: &dyn LeafWebhooks,
    secret: &dyn WebhookSecret,
    deadline: &Deadline,
) -> Outcome {
    match request.request_type.as_str() {
        "Create" | "Update" => match register(request, webhooks, secret, deadline).await {
            Ok((id, replaced)) => {
                let replaced = replaced
                    .map(|old| format!(" (replacing {old})"))
                    .unwrap_or_default();
                let reason = format!("Leaf webhook {id} registered for {}{replaced}", EVENTS.join(", "));
                let data = json!({"WebhookId": id});
                Outcome::success(id, reason, Some(data))
            }
            Err(problem) => Outcome::failed(failure_physical_id(request), reason(&problem, "registered")),
        },
        "Delete" => {
            let Some(id) = webhook_id(request) else {
                let reason = "no Leaf webhook was registered: nothing to remove";
                return Outcome::success(failure_physical_id(request), reason.into(), None);
            };
            match webhooks.remove(id, deadline).await {
                Ok(true) => Outcome::success(id.to_owned(), format!("Leaf webhook {id} removed"), None),
                Ok(false) => {
                    Outcome::success(id.to_owned(), format!("Leaf webhook {id} was already gone"), None)
                }
                Err(e) => Outcome::failed(id.to_owned(), reason(&e.into(), "removed")),
            }
        }
        _ => Outcome::failed(
            failure_physical_id(request),
            "RequestType must be Create, Update or Delete",
        ),
    }
}

/// Registers the webhook; with the old one removed on an Update. Returns the new id, and the
/// old one's when it was replaced.
async fn register(
    request: &CustomResourceRequest,
    webhooks: &dyn LeafWebhooks,
    secret: &dyn WebhookSecret,
    deadline: &Deadline,
) -> Result<(String, Option<String>), Problem> {
    let url = target_url(request)?;
    let stack = stack_name(&request.stack_id)
        .ok_or_else(|| Problem::Request("StackId is not a CloudFormation stack ARN".into()))?;
    let secret: SecretString = within_deadline(deadline, secret.webhook_secret()).await?;
    let webhook = NewWebhook {
        name: format!("{stack}{NAME_SUFFIX}"),
        url,
        events: EVENTS.map(str::to_owned).to_vec(),
        secret,
    };
    let old = match request.request_type.as_str() {
        "Update" => webhook_id(request),
        _ => None,
    };
    let mut in_the_way = old;
    let id = loop {
        if let Registration::Created(id) = webhooks.register(&webhook, deadline).await? {
            break id;
        }
        let holders: Vec<Webhook> = webhooks
            .list(deadline)
            .await?
            .into_iter()
            .filter(|w| w.events.iter().any(|e| EVENTS.contains(&e.as_str())))
            .collect();
        if let Some(ours) = already_ours(&holders, &webhook, old) {
            // A POST whose answer was lost, or an earlier try of this same request.
            tracing::info!(webhookId = %ours, "this webhook is already registered at Leaf: kept");
            break ours;
        }
        match in_the_way.take() {
            // Only the old webhook stands in the way: it goes first, then the new one comes.
            Some(old) if !holders.is_empty() && holders.iter().all(|w| w.id == old) => {
                webhooks.remove(old, deadline).await?;
            }
            _ => return Err(Problem::Taken(holders)),
        }
    };
    if let Some(old) = in_the_way.filter(|old| *old != id) {
        if let Err(e) = webhooks.remove(old, deadline).await {
            // The new one is registered; CloudFormation's cleanup sends a Delete of the old id.
            tracing::warn!(error = %e, oldWebhookId = old, "the old webhook was not removed yet");
        }
    }
    Ok((id.clone(), old.filter(|old| *old != id).map(str::to_owned)))
}

/// The one listed webhook that is this very registration: same name, URL and events, and not
/// the old webhook of an Update.
fn already_ours(holders: &[Webhook], webhook: &NewWebhook, old: Option<&str>) -> Option<String> {
    match holders {
        [only]
            if only.name.as_deref() == Some(webhook.name.as_str())
                && only.url.as_deref() == Some(webhook.url.as_str())
                && EVENTS.iter().all(|e| only.events.iter().any(|held| held == e))
                && Some(only.id.as_str()) != old =>
        {
            Some(only.id.clone())
        }
        _ => None,
    }
}

/// `ResourceProperties.Url`: where Leaf delivers, an absolute http(s) URL.
fn target_url(request: &CustomResourceRequest) -> Result<String, Problem> {
    let url = request.resource_properties.get("Url").and_then(Value::as_str);
    let parsed = url.and_then(|u| reqwest::Url::parse(u).ok());
    match (url, parsed) {
        (Some(url), Some(parsed)) if matches!(parsed.scheme(), "https" | "http") && parsed.has_host() => {
            Ok(url.to_owned())
        }
        _ => Err(Problem::Request(
            "ResourceProperties.Url must be the alerts route's https URL".into(),
        )),
    }
}

/// The Reason of a failed answer; `done` is what did not happen ("registered", "removed").
fn reason(problem: &Problem, done: &str) -> String {
    match problem {
        Problem::Request(what) => format!("Leaf webhook not {done}: {what}"),
        Problem::Failed(e) => {
            format!("Leaf webhook not {done}: {e} (the verify function's log has the details)")
        }
        Problem::Taken(holders) => taken_reason(holders),
    }
}

/// Says that another webhook listens to our events, names it, and gives both ways out.
pub(crate) fn taken_reason(holders: &[Webhook]) -> String {
    let held: Vec<&str> = EVENTS
        .into_iter()
        .filter(|e| holders.iter().any(|w| w.events.iter().any(|h| h == e)))
        .collect();
    let events = if held.is_empty() {
        EVENTS.join(", ")
    } else {
        held.join(", ")
    };
    let named: Vec<String> = holders
        .iter()
        .map(|w| {
            let name = w
                .name
                .as_deref()
                .map_or("(no name)".into(), |n| bounded(n.to_owned(), MAX_FIELD));
            let url = w.url.as_deref().map_or("(no url)".into(), without_query);
            format!("'{name}' (id {}, url {url})", bounded(w.id.clone(), MAX_FIELD))
        })
        .collect();
    let which = match named.as_slice() {
        [] => ", though Leaf lists none now (if it was just removed, deploy again)".into(),
        _ => format!(": {}", named.join("; ")),
    };
    let delete = match holders {
        [one] => format!(
            "DELETE /services/alerts/api/alerts/webhooks/{}",
            bounded(one.id.clone(), MAX_FIELD)
        ),
        _ => "DELETE /services/alerts/api/alerts/webhooks/{id}".into(),
    };
    format!(
        "Leaf webhook not registered: another webhook already listens to {events}{which}. Leaf \
         lets only one webhook listen to an event. Either deploy with the stack parameter \
         LeafAlerts=Disabled (no alerts webhook, no repairs on Leaf's alerts), or delete the other \
         webhook at Leaf ({delete} with the API owner's token) and deploy again."
    )
}

/// A URL without its query and fragment, which may hold a credential of someone else's.
fn without_query(url: &str) -> String {
    let bare = url.split(['?', '#']).next().unwrap_or_default();
    let shown = bounded(bare.to_owned(), MAX_FIELD);
    if bare.len() < url.len() {
        format!("{shown}?…")
    } else {
        shown
    }
}

/// `text` cut to at most `max` bytes, on a character boundary, with `…` when cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_name_is_read_from_the_stack_id() {
        let id = "arn:aws:cloudformation:us-east-1:123456789012:stack/my-stack/1c2fa620-982a-11e3-aff7";
        assert_eq!(stack_name(id), Some("my-stack"));
        let cn = "arn:aws-cn:cloudformation:cn-north-1:123456789012:stack/Prod-1/uuid";
        assert_eq!(stack_name(cn), Some("Prod-1"));
        for bad in [
            "",
            "my-stack",
            "arn:aws:cloudformation:us-east-1:123456789012:stack/my-stack",
            "arn:aws:cloudformation:us-east-1:123456789012:stack//uuid",
            "arn:aws:s3:us-east-1:123456789012:stack/my-stack/uuid",
            "arn:aws:cloudformation:us-east-1:123456789012:stackset/my-stack/uuid",
        ] {
            assert_eq!(stack_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_taken_reason_names_the_other_webhook_and_both_ways_out() {
        let other = Webhook {
            id: "wh-9".into(),
            name: Some("someone-elses".into()),
            url: Some("https://hooks.example/leaf?token=abc".into()),
            events: vec!["credentialsUnauthenticated".into()],
        };
        let reason = taken_reason(&[other]);
        for part in [
            "another webhook already listens to credentialsUnauthenticated: 'someone-elses' \
             (id wh-9, url https://hooks.example/leaf?…). Leaf",
            "only one webhook",
            "LeafAlerts=Disabled",
            "DELETE /services/alerts/api/alerts/webhooks/wh-9",
        ] {
            assert!(reason.contains(part), "{part}: {reason}");
        }
        assert!(!reason.contains("token=abc"), "{reason}");
        let unknown = taken_reason(&[]);
        assert!(
            unknown.contains("listens to credentialsUnauthenticated, credentialsLimitedPermission, though")
                && unknown.contains("LeafAlerts=Disabled")
                && unknown.contains("{id}"),
            "{unknown}"
        );
    }

    #[test]
    fn reasons_stay_short() {
        let long = Webhook {
            id: "x".repeat(5000),
            name: Some("é".repeat(5000)),
            url: Some(format!("https://{}", "u".repeat(5000))),
            events: vec![],
        };
        let reason = Outcome::failed("p".into(), taken_reason(&vec![long; 10])).reason;
        assert!(
            reason.len() <= MAX_REASON && reason.ends_with('…'),
            "{}",
            reason.len()
        );
        assert_eq!(bounded("é".repeat(3), 4), "…");
        assert_eq!(bounded("abc".into(), 3), "abc");
    }
}

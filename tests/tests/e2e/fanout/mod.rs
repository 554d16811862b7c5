//! Verify's fan-out mode end to end (issue 12): a scheduled invocation lists the growers into a
//! standard SQS queue in moto (`VERIFY_QUEUE_URL`), and several real `verify` processes consume
//! it through an emulated event source mapping (`testbed::event_source`), repairing through the
//! connect FIFO queue. Also: single-invocation mode under a short deadline, and the Leaf request
//! rate (`LEAF_MAX_RPS`, 429 storms) as the stand-in measures it.
//!
//! `spread`: 300 growers over three processes. `continuation`: a listing cut short by its
//! deadline goes on from a `list` message. `single`: the sweep in one invocation ends by its
//! deadline with a summary. `rate`: the per-process cap, and a 429 storm.

mod continuation;
mod rate;
mod single;
mod spread;

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::types::Tag;
use futures_util::StreamExt;
use testbed::bed::Bed;
use testbed::event_source::Mapping;
use testbed::secret_state::{DISCONNECTED_TAG, LOGIN_REJECTED_TAG};
use testbed::{Route, moto};

/// How a seeded grower stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    /// Leaf holds `OK` credentials.
    Healthy,
    /// Leaf holds `INVALID` credentials: repaired.
    Unhealthy,
    /// A Leaf user without credentials: repaired.
    Missing,
    /// Tagged disconnected (no credentials): left alone, never checked.
    Disconnected,
    /// Its current login version is tagged rejected (no credentials): left alone, never checked.
    LoginRejected,
}

impl Kind {
    fn broken(self) -> bool {
        matches!(self, Kind::Unhealthy | Kind::Missing)
    }

    fn checked(self) -> bool {
        !matches!(self, Kind::Disconnected | Kind::LoginRejected)
    }
}

/// The growers of a bed, by kind.
#[derive(Default)]
struct Growers(BTreeMap<Kind, Vec<String>>);

impl Growers {
    fn of(&self, keep: impl Fn(Kind) -> bool) -> Vec<String> {
        let mut ids: Vec<String> = self
            .0
            .iter()
            .filter(|(kind, _)| keep(**kind))
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect();
        ids.sort();
        ids
    }

    fn total(&self) -> u64 {
        self.0.values().map(Vec::len).sum::<usize>() as u64
    }
}

/// Stores the login secrets of `mix` under the bed's prefix (8 at a time) and tells the Leaf
/// stand-in about each grower, as its kind needs.
async fn seed(bed: &Bed, mix: &[(Kind, usize)]) -> Growers {
    let client = moto::secrets_client().await;
    let password = format!("fanout-pw-{}", uuid::Uuid::new_v4().simple());
    bed.remember_secret(&password);
    let value = serde_json::json!({"login": "fanout-grower", "password": password}).to_string();
    let mut growers = Growers::default();
    let mut jobs = Vec::new();
    for &(kind, n) in mix {
        for _ in 0..n {
            let id = uuid::Uuid::new_v4().to_string();
            match kind {
                Kind::Healthy => bed.standin.set_credential(&id, "OK"),
                Kind::Unhealthy => bed.standin.set_credential(&id, "INVALID"),
                _ => bed.standin.add_leaf_user(&id),
            }
            growers.0.entry(kind).or_default().push(id.clone());
            jobs.push((kind, id));
        }
    }
    futures_util::stream::iter(jobs)
        .map(|(kind, id)| create_login(&client, bed.secret_id(&id), &value, kind))
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    growers
}

/// Creates a grower's login secret, tagged as its kind needs. Its first version's id is ours
/// to choose, so a rejected login is tagged at once.
async fn create_login(client: &aws_sdk_secretsmanager::Client, name: String, value: &str, kind: Kind) {
    let version = uuid::Uuid::new_v4().to_string();
    for attempt in 1.. {
        let mut create = client
            .create_secret()
            .name(&name)
            .secret_string(value)
            .client_request_token(&version);
        create = match kind {
            Kind::Disconnected => create.tags(tag(DISCONNECTED_TAG, "true")),
            Kind::LoginRejected => create.tags(tag(LOGIN_REJECTED_TAG, &version)),
            _ => create,
        };
        match create.send().await {
            Ok(created) => {
                assert_eq!(created.version_id(), Some(version.as_str()));
                return;
            }
            // moto's secret store is not thread-safe: a write beside another request can fail
            // (500, "dictionary changed size during iteration") before it stores anything.
            Err(e) if attempt < 5 && e.raw_response().is_some_and(|r| r.status().as_u16() == 500) => {}
            Err(e) => panic!("moto: create_secret({name}): {}", DisplayErrorContext(&e)),
        }
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// A new standard queue in moto for the verify fan-out; its URL.
async fn verify_queue() -> String {
    moto::create_queue(&format!("stara-connect-verify-{}", uuid::Uuid::new_v4().simple())).await
}

/// The environment of a fanned-out verify: its queue, the connect queue, repairs on.
fn fanout_env<'a>(verify_queue: &'a str, connect_queue: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("VERIFY_QUEUE_URL", verify_queue),
        ("CONNECT_QUEUE_URL", connect_queue),
        ("AUTO_REPAIR", "on"),
        testbed::moto::PATIENT_SDK,
    ]
}

/// The event source mapping of these tests: `pollers` batches of `batch_size` at a time, a
/// failed message back after 1 s.
fn mapping(pollers: usize, batch_size: i32) -> Mapping {
    Mapping {
        pollers,
        batch_size,
        ..Mapping::default()
    }
}

/// Asserts that each of `ids` got exactly one credentials GET, and nobody else got any.
fn assert_each_checked_once(bed: &Bed, ids: &[String]) {
    let gets = bed.standin.requests_per_user(Route::LeafGetCredentials);
    let twice: Vec<_> = gets.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "checked more than once: {twice:?}");
    let unchecked: Vec<_> = ids.iter().filter(|id| !gets.contains_key(*id)).collect();
    assert!(unchecked.is_empty(), "never checked: {unchecked:?}");
    assert_eq!(gets.len(), ids.len(), "someone else was checked");
}

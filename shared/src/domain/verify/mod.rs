//! The verify workflow: how one grower's connection stands (`Verifier::check`), and a run over
//! every grower that asks connect to repair what broke: in one invocation (`run`), or spread
//! over the verify queue (`fanout`).

use std::sync::Arc;

use uuid::Uuid;

use super::error::ConnectorError;
use super::health::{self, Assessment};
use super::model::{CredentialEvent, LeafCredentials};
use super::ports::{GrowerStates, LeafApi};
use super::time::{Deadline, within_deadline};

mod checks;
mod fanout;
mod messages;
mod run;
mod stages;

pub(crate) use checks::Limits;
pub(crate) use fanout::{CheckWork, ListingReport, list_into_queue};
pub(crate) use messages::{BadMessage, VerifyMessage, parse_verify_message};
pub(crate) use run::{RunSettings, RunSummary};
pub(crate) use stages::rotation_start;

/// What verify found for one grower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnectionCheck {
    pub(crate) assessment: Assessment,
    /// What Leaf holds, without tokens; `None` when the connection is missing.
    pub(crate) credentials: Option<LeafCredentials>,
    /// The newest provider event, when it was looked at and there is one.
    pub(crate) last_event: Option<CredentialEvent>,
}

pub(crate) struct Verifier {
    leaf: Arc<dyn LeafApi>,
    states: Arc<dyn GrowerStates>,
}

impl Verifier {
    pub(crate) fn new(leaf: Arc<dyn LeafApi>, states: Arc<dyn GrowerStates>) -> Self {
        Self { leaf, states }
    }

    /// How one grower stands, as the API reports it: what people did first (a disconnect, a
    /// rejected login), else what Leaf holds.
    pub(crate) async fn status(
        &self,
        user: &Uuid,
        deadline: &Deadline,
    ) -> Result<ConnectionCheck, ConnectorError> {
        let (state, check) = tokio::join!(
            within_deadline(deadline, self.states.state(user)),
            self.check(user, deadline)
        );
        let (state, mut check) = (state?.unwrap_or_default(), check?);
        if let Some(health) = checks::left_alone(&state) {
            check.assessment = Assessment {
                health,
                reason: None,
                force: false,
            };
        }
        Ok(check)
    }

    /// How one grower's connection stands: the credentials and their events, asked for at the
    /// same time, so a check costs one upstream round trip rather than two.
    pub(crate) async fn check(
        &self,
        user: &Uuid,
        deadline: &Deadline,
    ) -> Result<ConnectionCheck, ConnectorError> {
        let (held, events) = tokio::join!(
            self.leaf.get_credentials(user, deadline),
            self.leaf.events(user, deadline)
        );
        let Some(held) = held? else {
            // Leaf answers 404 both for "no credentials" and "no such user": ask which.
            if !self.leaf.user_exists(user, deadline).await? {
                return Err(ConnectorError::LeafUserNotFound);
            }
            return Ok(ConnectionCheck {
                assessment: health::assess(None, None),
                credentials: None,
                last_event: None,
            });
        };
        // The events only refine an `OK`; any other status decides alone, even if they failed.
        let last_event = match events {
            Ok(events) => {
                health::newest_event(&events.unwrap_or_default(), held.created_time.as_deref()).cloned()
            }
            Err(_) if health::status_is_decisive(&held.status) => None,
            Err(e) => return Err(e),
        };
        Ok(ConnectionCheck {
            assessment: health::assess(Some(&held), last_event.as_ref()),
            credentials: Some(held),
            last_event,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::health::Health;
    use crate::testing::{FakeStates, event, slow_leaf};

    #[tokio::test(start_paused = true)]
    async fn one_grower_is_judged_by_status_and_newest_event() {
        let leaf = slow_leaf();
        let verifier = Verifier::new(leaf.clone(), Arc::new(FakeStates::default()));
        let d = Deadline::after(Duration::from_secs(5));
        let ok = leaf.grower(Some("OK"));
        leaf.events
            .lock()
            .unwrap()
            .insert(ok, vec![event(401), event(200)]);
        let check = verifier.check(&ok, &d).await.unwrap();
        assert_eq!(check.assessment.health, Health::Healthy);
        assert_eq!(check.last_event, Some(event(200)));
        assert_eq!(check.credentials.unwrap().id, format!("cred-{ok}"));

        let broken = leaf.grower(Some("OK"));
        leaf.events.lock().unwrap().insert(broken, vec![event(403)]);
        assert_eq!(
            verifier
                .check(&broken, &d)
                .await
                .unwrap()
                .assessment
                .reason
                .as_deref(),
            Some("event_403")
        );

        let missing = leaf.grower(None);
        let check = verifier.check(&missing, &d).await.unwrap();
        assert_eq!(
            (check.assessment.health, check.credentials, check.last_event),
            (Health::Missing, None, None)
        );

        assert_eq!(
            verifier.check(&Uuid::new_v4(), &d).await.unwrap_err(),
            ConnectorError::LeafUserNotFound
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_is_one_round_trip() {
        let leaf = slow_leaf();
        let verifier = Verifier::new(leaf.clone(), Arc::new(FakeStates::default()));
        let d = Deadline::after(Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        verifier.check(&leaf.grower(Some("OK")), &d).await.unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(20),
            "credentials and events asked for at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_events_matter_only_for_an_ok_status() {
        let leaf = slow_leaf();
        let verifier = Verifier::new(leaf.clone(), Arc::new(FakeStates::default()));
        let d = Deadline::after(Duration::from_secs(5));
        let invalid = leaf.grower(Some("INVALID"));
        let ok = leaf.grower(Some("OK"));
        leaf.fail_events.lock().unwrap().extend([invalid, ok]);
        assert_eq!(
            verifier.check(&invalid, &d).await.unwrap().assessment.health,
            Health::Unhealthy
        );
        assert!(verifier.check(&ok, &d).await.unwrap_err().is_retryable());
    }
}

//! The fan-out's listing and check batches, against the in-memory fakes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::domain::model::GrowerState;
use crate::domain::time::Deadline;
use crate::testing::{FakeDirectory, FakeRepairQueue, FakeStates, FakeVerifyQueue, limits, slow_leaf};

fn growers_of(messages: &[VerifyMessage]) -> Vec<Uuid> {
    messages
        .iter()
        .flat_map(|m| match m {
            VerifyMessage::Check { growers, .. } => growers.iter().map(|g| g.leaf_user_id).collect(),
            VerifyMessage::List { .. } => Vec::new(),
        })
        .collect()
}

#[tokio::test]
async fn a_listing_puts_every_grower_in_one_check_message_with_its_state() {
    let growers: Vec<Uuid> = (0..70).map(|_| Uuid::new_v4()).collect();
    let disconnected = GrowerState {
        disconnected: true,
        current_version: Some("v1".into()),
        ..GrowerState::default()
    };
    let directory = FakeDirectory {
        growers: growers.clone(),
        states: [(growers[4], disconnected)].into(),
        misnamed: vec!["stara-connect/growers/NOT-AN-ID".into()],
        ..FakeDirectory::default()
    };
    let queue = FakeVerifyQueue::default();
    let report = list_into_queue(&directory, &queue, "run-1", None, &limits(4))
        .await
        .unwrap();
    // The fake's pages hold three growers: 24 pages, 24 messages, sent ten at a time.
    assert_eq!(
        (
            report.listed,
            report.messages,
            report.pages,
            report.continued,
            report.misnamed
        ),
        (70, 24, 24, false, 1)
    );
    let sent = queue.sent.lock().unwrap();
    assert_eq!(growers_of(&sent), growers);
    assert_eq!(queue.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    let VerifyMessage::Check {
        run_id,
        growers: page,
    } = &sent[1]
    else {
        panic!("a check message")
    };
    assert_eq!(run_id, "run-1");
    assert!(page[1].disconnected, "the state travels with the grower");
}

#[tokio::test]
async fn a_listing_out_of_time_hands_on_and_the_run_covers_everyone_once() {
    let growers: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    let directory = FakeDirectory::of(growers.clone());
    let queue = FakeVerifyQueue::default();
    // Out of time from the start: each invocation lists its one page and hands on.
    let late = Limits {
        deadline: Deadline::after(Duration::ZERO),
        ..limits(4)
    };
    let mut token = None;
    let mut invocations = 0;
    loop {
        invocations += 1;
        let report = list_into_queue(&directory, &queue, "run-7", token, &late)
            .await
            .unwrap();
        let last = queue.sent.lock().unwrap().last().cloned();
        match last {
            Some(VerifyMessage::List { run_id, next_token }) if report.continued => {
                assert_eq!(run_id, "run-7");
                token = Some(next_token);
            }
            _ => break,
        }
    }
    assert_eq!(invocations, 7, "20 growers in pages of three");
    assert_eq!(growers_of(&queue.sent.lock().unwrap()), growers);
}

#[tokio::test]
async fn a_failed_send_fails_the_listing() {
    let directory = FakeDirectory::of((0..40).map(|_| Uuid::new_v4()).collect());
    let queue = FakeVerifyQueue {
        fail_call: Some(0),
        ..FakeVerifyQueue::default()
    };
    let err = list_into_queue(&directory, &queue, "run-1", None, &limits(4))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "AccessDenied is the deployment's to fix");
}

fn work(id: &str, run: &str, growers: &[Uuid]) -> CheckWork {
    CheckWork {
        message_id: id.into(),
        run_id: run.into(),
        growers: growers
            .iter()
            .map(|g| CheckedGrower {
                leaf_user_id: *g,
                disconnected: false,
                rejected_version: None,
                current_version: Some("v1".into()),
            })
            .collect(),
    }
}

#[tokio::test(start_paused = true)]
async fn only_messages_with_a_transient_failure_come_back() {
    let leaf = slow_leaf();
    let healthy = leaf.grower(Some("OK"));
    let invalid = leaf.grower(Some("INVALID"));
    let missing = leaf.grower(None);
    let unknown = Uuid::new_v4();
    let flaky = leaf.grower(Some("OK"));
    leaf.fail.lock().unwrap().insert(flaky);
    let mut rejected = work("m3", "run-b", &[leaf.grower(None)]);
    rejected.growers[0].rejected_version = Some("v1".into());
    let batch = vec![
        work("m1", "run-a", &[healthy, invalid, unknown]),
        work("m2", "run-a", &[missing, flaky]),
        rejected,
    ];
    let queue = FakeRepairQueue::default();
    let report = Verifier::new(leaf.clone(), Arc::new(FakeStates::default()))
        .check_messages(batch, Some(&queue), &limits(8), &mut Vec::new())
        .await;
    assert_eq!(
        report.failed,
        vec!["m2".to_owned()],
        "an unknown user is no reason to retry"
    );
    let (messages, a) = &report.runs["run-a"];
    assert_eq!(
        (
            *messages,
            a.checked,
            a.healthy,
            a.unhealthy,
            a.missing,
            a.errors,
            a.repairs_queued
        ),
        (2, 5, 1, 1, 1, 2, 2)
    );
    let (messages, b) = &report.runs["run-b"];
    assert_eq!((*messages, b.checked, b.login_rejected), (1, 0, 1));
    let sent: HashMap<Uuid, String> = queue
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(run, r)| (r.leaf_user_id, run.clone()))
        .collect();
    assert_eq!(
        sent,
        [(invalid, "run-a".to_owned()), (missing, "run-a".to_owned())].into()
    );
}

#[tokio::test(start_paused = true)]
async fn growers_not_reached_in_time_send_their_message_back() {
    let leaf = slow_leaf();
    let batch = vec![work(
        "m1",
        "run-a",
        &[leaf.grower(Some("OK")), leaf.grower(Some("OK"))],
    )];
    let late = Limits {
        deadline: Deadline::after(Duration::ZERO),
        ..limits(2)
    };
    let report = Verifier::new(leaf, Arc::new(FakeStates::default()))
        .check_messages(batch, None, &late, &mut Vec::new())
        .await;
    assert_eq!(report.failed, vec!["m1".to_owned()]);
    assert_eq!(report.runs["run-a"].1.unchecked, 2);
}

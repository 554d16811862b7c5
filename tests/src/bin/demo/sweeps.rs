//! Steps 3 and 4: scheduled sweeps (verify with a schedule event) over the fleet, the repairs
//! they queue on the connect FIFO queue, and connect carrying them out as the queue's trigger.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use testbed::bed::Grower;

use crate::deployment::{Deployment, repair_of};
use crate::fleet::{self, Member, Role};
use crate::table;

/// The fields of a sweep's summary, in the order the table shows them.
const SUMMARY_FIELDS: [&str; 10] = [
    "checked",
    "healthy",
    "unhealthy",
    "missing",
    "pending",
    "errors",
    "repairsQueued",
    "repairsFailed",
    "disconnected",
    "loginRejected",
];

/// Step 3: a sweep over a dozen growers queues a repair for each broken one and no other;
/// connect carries them out; the next sweep finds nothing to repair.
pub async fn step_three(d: &Deployment, first: Grower) -> Vec<Member> {
    println!("3. A scheduled sweep over a fleet of a dozen growers repairs exactly the broken ones.");
    let fleet = fleet::build(d, first).await;
    assert_eq!(fleet.len(), 12);
    let mut before = Vec::new();
    for member in &fleet {
        let health = d.health_of(member.id()).await;
        assert_eq!(
            health,
            member.role.expected().before,
            "{} before the sweep",
            member.id()
        );
        before.push(health);
    }

    let first_sweep = d.sweep().await;
    expect_summary(
        &first_sweep,
        &[
            ("checked", 10),
            ("healthy", 5),
            ("unhealthy", 3),
            ("missing", 2),
            ("repairsQueued", 5),
            ("disconnected", 1),
            ("loginRejected", 1),
        ],
    );
    let wanted: BTreeMap<String, String> = fleet
        .iter()
        .filter_map(|m| Some((m.id().to_owned(), m.role.expected().repair?.0.to_owned())))
        .collect();
    let messages = d.queued(wanted.len()).await;
    let queued: BTreeMap<String, String> = messages.iter().map(repair_of).collect();
    assert_eq!(
        (messages.len(), &queued),
        (wanted.len(), &wanted),
        "the repairs queued"
    );
    println!(
        "   The sweep (verify, invoked with events/verify-schedule-rule.json) queued {} repairs on the \
         connect queue:",
        messages.len()
    );
    println!("   one for each broken grower, none for the others.");

    let (batches, failures) = d.deliver(&messages).await;
    assert!(failures.is_empty(), "batch item failures: {failures:?}");
    println!(
        "   Connect took them as the queue's trigger hands them over ({batches} SQS batch): no batch item \
         failures."
    );
    let mut rows = Vec::new();
    for (index, (member, before)) in fleet.iter().zip(before).enumerate() {
        let expected = member.role.expected();
        let after = d.health_of(member.id()).await;
        assert_eq!(after, expected.after, "{} after the repairs", member.id());
        let repair = match (queued.get(member.id()), d.repair_outcome(member.id())) {
            (Some(reason), Some(outcome)) => {
                assert_eq!(Some((reason.as_str(), outcome.as_str())), expected.repair);
                format!("{reason} → {outcome}")
            }
            // Step 1's grower was repaired by step 2's alert, not by this sweep.
            (None, None) | (None, Some(_)) if index == 0 => "—".to_owned(),
            (None, None) => "—".to_owned(),
            other => panic!(
                "{}: repair {other:?}, expected {:?}",
                member.id(),
                expected.repair
            ),
        };
        rows.push(vec![
            member.short_id(),
            member.role.label().into(),
            before,
            repair,
            after,
        ]);
    }

    let next_sweep = d.sweep().await;
    expect_summary(
        &next_sweep,
        &[
            ("checked", 10),
            ("healthy", 10),
            ("disconnected", 1),
            ("loginRejected", 1),
        ],
    );
    assert!(d.queued(0).await.is_empty(), "the next sweep queued repairs");
    println!("   The next sweep finds every grower it checks healthy, and queues nothing.");
    let wrong = fleet
        .iter()
        .find(|m| m.role == Role::WrongPassword)
        .expect("in the fleet");
    let logins = d.stara_logins(&wrong.grower.login);
    assert_eq!(logins, 1, "Stara logins with the wrong password");
    println!(
        "   Stara saw the wrong password once (the 422 before the sweeps); no sweep or repair sent it again."
    );
    println!();
    let summary_rows: Vec<Vec<String>> = SUMMARY_FIELDS
        .iter()
        .map(|field| {
            vec![
                field.to_string(),
                count_of(&first_sweep, field),
                count_of(&next_sweep, field),
            ]
        })
        .collect();
    table::print(&["sweep summary", "first sweep", "next sweep"], &summary_rows);
    println!();
    table::print(
        &[
            "grower",
            "set up as",
            "health before",
            "repair: reason → connect",
            "health after",
        ],
        &rows,
    );
    println!();
    fleet
}

/// Step 4: the grower of step 1 is disconnected; the next sweep leaves them so.
pub async fn step_four(d: &Deployment, first: &Member) {
    assert_eq!(first.role, Role::StepOne);
    let id = first.id();
    println!("4. The grower of step 1 asks to be disconnected, and the next sweep leaves them disconnected.");
    let (status, body) = d.disconnect(id).await;
    assert_eq!(status, 204, "{body}");
    assert!(
        d.bed.standin.credential(id).is_none(),
        "Leaf still holds credentials"
    );
    println!("   DELETE /connections/{id} → {status}: Leaf no longer holds their credentials");
    let sweep = d.sweep().await;
    expect_summary(
        &sweep,
        &[
            ("checked", 9),
            ("healthy", 9),
            ("disconnected", 2),
            ("loginRejected", 1),
        ],
    );
    assert!(d.queued(0).await.is_empty(), "the sweep queued repairs");
    assert!(d.bed.standin.credential(id).is_none(), "credentials came back");
    println!(
        "   The next sweep: {} checked, {} disconnected, {} repairs queued: nothing reconnects them behind \
         their back.",
        count_of(&sweep, "checked"),
        count_of(&sweep, "disconnected"),
        count_of(&sweep, "repairsQueued")
    );
    let health = d.health_of(id).await;
    assert_eq!(health, "disconnected");
    println!("   GET /connections/{id} → 200 {health}");
    println!();
}

/// Asserts that a sweep's summary has these counts, and 0 for every other field.
fn expect_summary(got: &Value, counts: &[(&str, u64)]) {
    let mut want = json!({});
    for field in SUMMARY_FIELDS {
        want[field] = json!(0);
    }
    for (field, count) in counts {
        want[*field] = json!(count);
    }
    for field in SUMMARY_FIELDS {
        assert_eq!(got[field], want[field], "sweep summary field {field}: {got}");
    }
}

fn count_of(summary: &Value, field: &str) -> String {
    summary[field]
        .as_u64()
        .map_or_else(|| "?".into(), |n| n.to_string())
}

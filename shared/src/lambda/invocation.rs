//! Facts about the current invocation that every handler needs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::Context;

use crate::domain::time::Deadline;

/// Time kept back from Lambda's deadline to write the response and the last log lines.
const RESPONSE_MARGIN: Duration = Duration::from_millis(300);

/// The longest Lambda lets an invocation run, plus a minute for clock skew: a deadline further
/// away than this is not an epoch time.
const LONGEST_INVOCATION: Duration = Duration::from_secs(16 * 60);

static UNUSABLE_DEADLINE_SEEN: AtomicBool = AtomicBool::new(false);

/// The earlier of "now + budget" and Lambda's own deadline for this invocation, less a margin.
///
/// A deadline that is already past when the invocation starts, or absurdly far away, is not one
/// real Lambda sends: emulators do (cargo-lambda's sends the constant `600000`). It is treated
/// as unknown, so the budget alone applies, and a warning is logged once per process.
pub(crate) fn invocation_deadline(context: &Context, budget: Duration) -> Deadline {
    let own = Deadline::after(budget);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    match lambda_time_left(context.deadline, now_ms) {
        Some(left) => own.min(Deadline::after(left.saturating_sub(RESPONSE_MARGIN))),
        None => {
            if context.deadline != 0 && !UNUSABLE_DEADLINE_SEEN.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    deadlineMs = context.deadline,
                    budgetMs = budget.as_millis() as u64,
                    "the runtime's deadline is no plausible epoch time (an emulator?): budget alone"
                );
            }
            own
        }
    }
}

/// The time left until Lambda's deadline (epoch milliseconds), or `None` when the deadline is
/// unknown (0) or implausible.
fn lambda_time_left(deadline_ms: u64, now_ms: u64) -> Option<Duration> {
    let left = Duration::from_millis(deadline_ms.checked_sub(now_ms)?);
    (!left.is_zero() && left <= LONGEST_INVOCATION).then_some(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_deadline_wins_when_it_is_sooner() {
        let mut context = Context::default();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        context.deadline = now_ms + 1_000;
        let d = invocation_deadline(&context, Duration::from_secs(25));
        assert!(d.remaining() <= Duration::from_millis(700));
        context.deadline = now_ms + 60_000;
        let d = invocation_deadline(&context, Duration::from_secs(2));
        assert!(d.remaining() <= Duration::from_secs(2));
        context.deadline = 0;
        assert!(invocation_deadline(&context, Duration::from_secs(2)).remaining() > Duration::from_secs(1));
    }

    #[test]
    fn an_emulators_constant_or_a_past_deadline_is_unknown() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let mut context = Context::default();
        for deadline in [600_000, now_ms - 1, now_ms + 3_600_000] {
            context.deadline = deadline;
            let d = invocation_deadline(&context, Duration::from_secs(25));
            assert!(
                d.remaining() > Duration::from_secs(24),
                "{deadline}: {:?}",
                d.remaining()
            );
        }
        assert_eq!(lambda_time_left(600_000, now_ms), None);
        assert_eq!(lambda_time_left(0, now_ms), None);
        assert_eq!(
            lambda_time_left(now_ms + 900_000, now_ms),
            Some(Duration::from_secs(900))
        );
    }
}

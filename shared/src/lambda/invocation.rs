//! Facts about the current invocation that every handler needs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::Context;

use crate::domain::time::Deadline;

/// Time kept back from Lambda's deadline to write the response and the last log lines.
const RESPONSE_MARGIN: Duration = Duration::from_millis(300);

/// The earlier of "now + budget" and Lambda's own deadline for this invocation, less a margin.
pub(crate) fn invocation_deadline(context: &Context, budget: Duration) -> Deadline {
    let own = Deadline::after(budget);
    if context.deadline == 0 {
        return own;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = Duration::from_millis(context.deadline.saturating_sub(now_ms)).saturating_sub(RESPONSE_MARGIN);
    own.min(Deadline::after(left))
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
}

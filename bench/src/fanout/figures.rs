//! What the fan-out bench reads off a run: the processes' figures and log lines, the SQS calls
//! the proxy counted, the Leaf requests per second.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;
use testbed::bed::Running;
use testbed::run_lines;

use crate::machine::cpu_time;
use crate::world::World;

/// One verify process over the run.
pub struct ProcessFigures {
    pub batches: usize,
    pub peak_rss_kb: u64,
    pub cpu_s: f64,
    pub busy_s: f64,
}

/// SQS calls through the proxy (the functions' and the mapping's), by operation.
#[derive(Clone, Copy, Debug, Default)]
pub struct SqsCalls {
    pub send_batch: usize,
    pub send: usize,
    pub receive: usize,
    pub delete_batch: usize,
    pub visibility_batch: usize,
    pub attributes: usize,
}

impl std::ops::Sub for SqsCalls {
    type Output = SqsCalls;
    fn sub(self, before: SqsCalls) -> SqsCalls {
        SqsCalls {
            send_batch: self.send_batch - before.send_batch,
            send: self.send - before.send,
            receive: self.receive - before.receive,
            delete_batch: self.delete_batch - before.delete_batch,
            visibility_batch: self.visibility_batch - before.visibility_batch,
            attributes: self.attributes - before.attributes,
        }
    }
}

pub fn sqs_calls(world: &World) -> SqsCalls {
    let calls = |operation: &str| world.proxy.calls(&format!("AmazonSQS.{operation}"));
    SqsCalls {
        send_batch: calls("SendMessageBatch"),
        send: calls("SendMessage"),
        receive: calls("ReceiveMessage"),
        delete_batch: calls("DeleteMessageBatch"),
        visibility_batch: calls("ChangeMessageVisibilityBatch"),
        attributes: calls("GetQueueAttributes"),
    }
}

pub fn process_figures(running: &Running) -> ProcessFigures {
    let batches = lines(running, "verify batch finished");
    ProcessFigures {
        batches: batches.len(),
        peak_rss_kb: running.function.peak_rss_kb().unwrap_or(0),
        cpu_s: cpu_time(running.function.pid()).map_or(0.0, |d| d.as_secs_f64()),
        busy_s: batches
            .iter()
            .filter_map(|l| l["elapsedMs"].as_u64())
            .sum::<u64>() as f64
            / 1000.0,
    }
}

/// The lines with this message that one process logged.
pub fn lines(running: &Running, message: &str) -> Vec<Value> {
    run_lines::lines(&[running], message)
}

/// The fleet's "verify batch finished" lines, summed field by field.
pub fn batch_totals(fleet: &[Running]) -> Value {
    let processes: Vec<&Running> = fleet.iter().collect();
    run_lines::sums(
        &run_lines::lines(&processes, "verify batch finished"),
        &run_lines::BATCH_FIELDS,
    )
}

/// Requests in each whole second from the first request on (the last, partial second left out).
pub fn per_second(times: &[Instant]) -> Vec<usize> {
    let Some(&first) = times.iter().min() else {
        return Vec::new();
    };
    let last = times.iter().max().copied().unwrap_or(first);
    let seconds = (last - first).as_secs() as usize;
    let mut counts = vec![0; seconds];
    for at in times {
        if let Some(count) = counts.get_mut((*at - first).as_secs() as usize) {
            *count += 1;
        }
    }
    counts
}

/// Growers that could not be checked for a transient reason, by error code, over the fleet.
pub fn failures(fleet: &[Running]) -> BTreeMap<String, usize> {
    let mut codes = BTreeMap::new();
    for line in fleet
        .iter()
        .flat_map(|p| lines(p, "verify failed for this grower"))
    {
        let code = line["code"].as_str().unwrap_or("?").to_owned();
        *codes.entry(code).or_default() += 1;
    }
    codes
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn requests_are_counted_by_whole_second() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(per_second(&[at(0), at(10), at(1_500), at(2_100)]), vec![2, 1]);
        assert_eq!(per_second(&[]), Vec::<usize>::new());
    }
}

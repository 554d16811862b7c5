//! The upstream latency: one Stara or Leaf call takes `BENCH_LATENCY_MS` on average, as a client
//! sees it. The stand-in waits with a tokio timer, which turns the delay it is told into a whole
//! number of milliseconds from the request; with its own work on top, a call told to wait 20 ms
//! takes about 21.4 ms, and no delay gives exactly 20. So the bench finds two delays whose calls
//! take just under and just over the latency, and the current bed's stand-in switches between
//! them at random, in the proportion that makes the average call take the latency.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use testbed::StandIn;

use crate::stats::{Summary, ms};

/// Calls to the stand-in per measurement.
const CALLS: usize = 40;
/// Steps of the search for the two delays, in ms.
const STEP_MS: f64 = 0.5;

/// Calls to the stand-in from the bench's own client.
#[derive(Clone, Copy, Debug)]
pub struct Calls {
    pub summary: Summary,
    /// The mean of the middle 80 % (a call that meets a busy machine says nothing about the stand-in).
    pub mean: f64,
}

/// How the stand-ins' delay is set, and what a call took.
pub struct Upstream {
    pub latency: Duration,
    /// Calls with the stand-in told to wait `latency`.
    pub uncorrected: Calls,
    /// The delay (ms) whose calls take just under the latency, and their median.
    pub low: (f64, f64),
    /// The delay (ms) whose calls take just over it, and their median.
    pub high: (f64, f64),
    /// The share of the time the stand-in waits `high`.
    pub share_high: f64,
    /// Calls with the delay switching, as every bed's stand-in has it.
    pub calibrated: Calls,
    current: Arc<Mutex<Option<StandIn>>>,
}

impl Upstream {
    /// Measures the stand-in and starts switching the delay of the stand-in [`attach`]ed last.
    pub async fn calibrate(latency: Duration) -> Upstream {
        let standin = StandIn::start().await;
        let target = ms(latency);
        standin.set_latency(latency);
        let uncorrected = calls(&standin, CALLS).await;
        let (mut low, mut high) = (None, None);
        let mut delay = (2.0 * target - uncorrected.summary.median).max(0.0);
        for _ in 0..12 {
            if latency.is_zero() {
                break;
            }
            standin.set_latency(Duration::from_secs_f64(delay / 1000.0));
            let took = calls(&standin, CALLS).await.summary.median;
            eprintln!("bench:   upstream: told {delay:.2} ms, a call took {took:.2} ms (median)");
            if took >= target {
                high = Some((delay, took));
            } else {
                low = Some((delay, took));
            }
            match (low, high) {
                (Some(_), Some(_)) => break,
                (None, _) if delay > 0.0 => delay = (delay - STEP_MS).max(0.0),
                _ => delay += STEP_MS,
            }
        }
        let low = low.unwrap_or((0.0, 0.0));
        let high = high.unwrap_or((target, target));
        let spread = high.1 - low.1;
        let share_high = if spread > 0.01 {
            ((target - low.1) / spread).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let current = Arc::new(Mutex::new(Some(standin.clone())));
        if !latency.is_zero() {
            tokio::spawn(switch(current.clone(), low.0, high.0, share_high));
        }
        let calibrated = calls(&standin, 2 * CALLS).await;
        eprintln!(
            "bench: upstream latency {target:.0} ms: told {target:.0} ms, a call took {:.2} ms (median); \
             switching between {:.2} and {:.2} ms ({:.0} % of the time), a call takes {:.2} ms (mean)",
            uncorrected.summary.median,
            low.0,
            high.0,
            100.0 * share_high,
            calibrated.mean
        );
        Upstream {
            latency,
            uncorrected,
            low,
            high,
            share_high,
            calibrated,
            current,
        }
    }

    /// Gives `standin` the calibrated delay; the stand-in attached before keeps the low one.
    pub fn attach(&self, standin: &StandIn) {
        standin.set_latency(Duration::from_secs_f64(self.low.0 / 1000.0));
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = current.replace(standin.clone()) {
            previous.set_latency(Duration::from_secs_f64(self.low.0 / 1000.0));
        }
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        format!(
            "{} ms a call on average, as a client sees it. The stand-in's delay is a tokio timer, which \
             turns it into whole milliseconds from the request: told {} ms, a call from the bench's own \
             HTTP client took {:.2} ms (median of {}). So it is told {:.2} ms ({:.2} ms a call) or {:.2} ms \
             ({:.2} ms a call), switching at random every few milliseconds, {:.0} % of the time the latter: \
             a call then takes {:.2} ms on average (middle 80 % of {}; median {:.2}, p95 {:.2})",
            self.latency.as_millis(),
            self.latency.as_millis(),
            self.uncorrected.summary.median,
            self.uncorrected.summary.n,
            self.low.0,
            self.low.1,
            self.high.0,
            self.high.1,
            100.0 * self.share_high,
            self.calibrated.mean,
            self.calibrated.summary.n,
            self.calibrated.summary.median,
            self.calibrated.summary.p95,
        )
    }
}

/// Switches the current stand-in between the two delays, `share_high` of the time the high one.
async fn switch(current: Arc<Mutex<Option<StandIn>>>, low: f64, high: f64, share_high: f64) {
    loop {
        let delay = if unit() < share_high { high } else { low };
        if let Some(standin) = current.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            standin.set_latency(Duration::from_secs_f64(delay / 1000.0));
        }
        tokio::time::sleep(Duration::from_micros(1000 + (unit() * 4000.0) as u64)).await;
    }
}

/// A random number in [0, 1).
fn unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0
}

/// `n` calls to the Stara stand-in from the bench's own client (a refused login, so the stand-in
/// does its usual work: parse, look up, answer), after 5 unmeasured ones.
pub async fn calls(standin: &StandIn, n: usize) -> Calls {
    let client = reqwest::Client::new();
    let url = format!("{}/autenticacao", standin.stara_url());
    let mut samples = Vec::new();
    for i in 0..n + 5 {
        let started = Instant::now();
        let response = client
            .post(&url)
            .json(&json!({"login": "nobody", "password": "not-a-password"}))
            .send()
            .await
            .expect("the stand-in answers");
        assert_eq!(response.status().as_u16(), 401);
        let _ = response.bytes().await;
        if i >= 5 {
            samples.push(ms(started.elapsed()));
        }
    }
    let summary = Summary::of(&samples).expect("n > 0");
    samples.sort_by(f64::total_cmp);
    let cut = samples.len() / 10;
    let middle = &samples[cut..samples.len() - cut];
    Calls {
        summary,
        mean: middle.iter().sum::<f64>() / middle.len() as f64,
    }
}

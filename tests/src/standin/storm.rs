//! Load on the stand-in's Leaf side: when each Leaf request arrived (to measure request rates),
//! and a 429 storm (Leaf refusing every request on some routes for a while, as it does when a
//! client goes over its rate).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::faults::{Fault, RetryAfter};
use super::routes::USERS_PREFIX;
use super::{Route, StandIn, State};

/// A 429 storm: once `after` requests reached `routes`, every further request on them gets
/// 429 with `Retry-After` for `lasting`.
#[derive(Debug, Clone)]
pub(super) struct Storm {
    routes: Vec<Route>,
    after: usize,
    lasting: Duration,
    retry_after: RetryAfter,
    /// Requests on `routes` so far.
    seen: usize,
    began: Option<Instant>,
    /// 429s served.
    served: usize,
}

/// When a storm raged and how many requests it refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormView {
    pub began: Instant,
    pub ended: Instant,
    pub refused: usize,
}

impl StandIn {
    /// Starts a 429 storm on `routes` when `after` requests have reached them (0: at the next
    /// one); it refuses every request on them, with `Retry-After: <retry_after_secs>`, for
    /// `lasting`. Replaces any earlier storm. Queued and random faults wait until it is over.
    pub fn storm_429(&self, routes: &[Route], after: usize, lasting: Duration, retry_after_secs: u64) {
        self.lock().storm = Some(Storm {
            routes: routes.to_vec(),
            after,
            lasting,
            retry_after: RetryAfter::Seconds(retry_after_secs),
            seen: 0,
            began: None,
            served: 0,
        });
    }

    /// The storm, once it has begun.
    pub fn storm(&self) -> Option<StormView> {
        let state = self.lock();
        let storm = state.storm.as_ref()?;
        let began = storm.began?;
        Some(StormView {
            began,
            ended: began + storm.lasting,
            refused: storm.served,
        })
    }

    /// Makes room in the request log for `additional` more requests. Growing a log of a hundred
    /// thousand requests copies it under the state's lock, and every request waits (11 ms at
    /// 131,072): their arrival times then bunch, which a measured request rate must not show.
    pub fn reserve_requests(&self, additional: usize) {
        self.lock().requests.reserve(additional);
    }

    /// When each request on the Leaf side arrived (every route of the Leaf listener, faulted
    /// requests included), oldest first.
    pub fn leaf_request_times(&self) -> Vec<Instant> {
        self.lock()
            .requests
            .iter()
            .filter(|request| request.route.is_leaf())
            .map(|request| request.at)
            .collect()
    }
}

impl StandIn {
    /// How many requests each Leaf user got on `route` (one of the routes under a user).
    pub fn requests_per_user(&self, route: Route) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for request in self.lock().requests.iter().filter(|r| r.route == route) {
            let user = request
                .path
                .strip_prefix(USERS_PREFIX)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default();
            *counts.entry(user.to_owned()).or_default() += 1;
        }
        counts
    }
}

impl State {
    /// The storm's answer to a request on `route`, if a storm is raging on it.
    pub(super) fn storm_fault(&mut self, route: Route) -> Option<Fault> {
        let storm = self
            .storm
            .as_mut()
            .filter(|storm| storm.routes.contains(&route))?;
        storm.seen += 1;
        let now = Instant::now();
        if storm.began.is_none() && storm.seen > storm.after {
            storm.began = Some(now);
        }
        let raging = storm.began.is_some_and(|began| now < began + storm.lasting);
        raging.then(|| {
            storm.served += 1;
            Fault::StatusWithRetryAfter(429, storm.retry_after)
        })
    }
}

/// The most of `times` that fall in any window `[t, t + window)`: the peak count per window
/// over sliding windows (each window starting at a request, where the peak always is).
pub fn peak_in_window(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut end = 0;
    let mut peak = 0;
    for (start, &at) in sorted.iter().enumerate() {
        while end < sorted.len() && sorted[end] < at + window {
            end += 1;
        }
        peak = peak.max(end - start);
    }
    peak
}

/// How many of `times` fall in `[from, to)`.
pub fn count_between(times: &[Instant], from: Instant, to: Instant) -> usize {
    times.iter().filter(|&&at| from <= at && at < to).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_found_over_sliding_windows() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Two in the first second, three between 900 ms and 1.9 s.
        let times = [at(0), at(500), at(900), at(1_200), at(1_800), at(3_000)];
        assert_eq!(peak_in_window(&times, Duration::from_secs(1)), 3);
        assert_eq!(peak_in_window(&times, Duration::from_millis(1)), 1);
        assert_eq!(peak_in_window(&[], Duration::from_secs(1)), 0);
        assert_eq!(count_between(&times, at(500), at(1_800)), 3);
    }

    #[test]
    fn a_storm_begins_after_its_count_and_ends_after_its_time() {
        let mut state = State::default();
        let routes = [Route::LeafGetCredentials];
        state.storm = Some(Storm {
            routes: routes.to_vec(),
            after: 2,
            lasting: Duration::from_secs(60),
            retry_after: RetryAfter::Seconds(1),
            seen: 0,
            began: None,
            served: 0,
        });
        assert_eq!(state.storm_fault(Route::LeafEvents), None, "another route");
        assert_eq!(state.storm_fault(Route::LeafGetCredentials), None);
        assert_eq!(state.storm_fault(Route::LeafGetCredentials), None);
        let refused = Some(Fault::StatusWithRetryAfter(429, RetryAfter::Seconds(1)));
        assert_eq!(state.storm_fault(Route::LeafGetCredentials), refused);
        assert_eq!(state.storm_fault(Route::LeafGetCredentials), refused);
        let storm = state.storm.as_mut().expect("a storm");
        assert_eq!(storm.served, 2);
        storm.began = Some(Instant::now() - Duration::from_secs(61));
        assert_eq!(state.storm_fault(Route::LeafGetCredentials), None, "over");
    }
}

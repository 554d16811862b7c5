//! Faults the tests inject: which one a request gets, and how the stand-in then answers.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use hyper::header::{HeaderValue, RETRY_AFTER};
use serde_json::json;

use super::{Route, StandIn, State};
use crate::server::{self, Connection, HttpResponse, json_response};

/// Value of an injected `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <n>` (delta seconds).
    Seconds(u64),
    /// `Retry-After: <IMF-fixdate>`.
    HttpDate(SystemTime),
}

/// A misbehaviour injected into the next requests of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Reply with this status and a small JSON body, without doing the work.
    Status(u16),
    /// Like `Status`, plus a `Retry-After` header.
    StatusWithRetryAfter(u16, RetryAfter),
    /// Wait this long, then behave normally.
    Latency(Duration),
    /// Close the TCP connection (RST) without any response.
    Reset,
    /// Never answer; the client must time out.
    Hang,
    /// 200 with the body `{not json`.
    MalformedJson,
    /// 200 with the body `{}`.
    MissingFields,
    /// Do the real work (e.g. store the credential), then reset the connection: a lost response.
    ProcessThenReset,
}

impl StandIn {
    /// Add artificial latency before every request (faults come on top).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The next `times` requests to `route` get `fault`; queued after any pending faults.
    pub fn inject(&self, route: Route, fault: Fault, times: usize) {
        self.lock()
            .faults
            .entry(route)
            .or_default()
            .extend(std::iter::repeat_n(fault, times));
    }

    /// Each request to `route` gets `fault` with this probability (after queued faults).
    pub fn inject_randomly(&self, route: Route, fault: Fault, probability: f64) {
        self.lock()
            .random_faults
            .entry(route)
            .or_default()
            .push((fault, probability));
    }

    /// How many faults `route` has served so far, queued and random ones.
    pub fn faults_served(&self, route: Route) -> usize {
        self.lock().faults_served.get(&route).copied().unwrap_or(0)
    }

    /// Faults still waiting for a request on `route`.
    pub fn pending_faults(&self, route: Route) -> usize {
        self.lock().faults.get(&route).map_or(0, VecDeque::len)
    }

    /// Drop every fault not yet served.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.random_faults.clear();
    }
}

impl State {
    /// The fault a request to `route` gets, if any: a raging storm's 429, else the next queued
    /// one, else maybe a random one.
    pub(super) fn next_fault(&mut self, route: Route) -> Option<Fault> {
        if let Some(refused) = self.storm_fault(route) {
            *self.faults_served.entry(route).or_default() += 1;
            return Some(refused);
        }
        let queued = self.faults.get_mut(&route).and_then(VecDeque::pop_front);
        let fault = queued.or_else(|| {
            self.random_faults.get(&route).and_then(|choices| {
                choices
                    .iter()
                    .find(|(_, probability)| fastrand::f64() < *probability)
                    .map(|(fault, _)| fault.clone())
            })
        });
        if fault.is_some() {
            *self.faults_served.entry(route).or_default() += 1;
        }
        fault
    }
}

/// The answer to a request that got `fault` (or none); `process` does the route's normal work.
pub(super) async fn respond(
    fault: Option<Fault>,
    process: impl FnOnce() -> HttpResponse,
    connection: &Connection,
) -> HttpResponse {
    match fault {
        None => process(),
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            process()
        }
        Some(Fault::Status(status)) => fault_response(status, None),
        Some(Fault::StatusWithRetryAfter(status, retry_after)) => fault_response(status, Some(retry_after)),
        Some(Fault::MalformedJson) => server::raw_response(200, "application/json", "{not json"),
        Some(Fault::MissingFields) => server::raw_response(200, "application/json", "{}"),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            fault_response(504, None)
        }
        Some(Fault::Reset) => {
            connection.reset();
            std::future::pending().await
        }
        Some(Fault::ProcessThenReset) => {
            drop(process());
            connection.reset();
            std::future::pending().await
        }
    }
}

fn fault_response(status: u16, retry_after: Option<RetryAfter>) -> HttpResponse {
    let body = json!({ "title": "Injected fault", "status": status, "message": "injected by the test bed" });
    let mut response = json_response(status, &body);
    if let Some(retry_after) = retry_after {
        let value = match retry_after {
            RetryAfter::Seconds(seconds) => seconds.to_string(),
            RetryAfter::HttpDate(time) => httpdate::fmt_http_date(time),
        };
        let value = HeaderValue::from_str(&value).expect("Retry-After values are ASCII");
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

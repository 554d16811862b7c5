//! A per-process limit on the requests sent to one upstream (Leaf), shared by all its callers.
//! Requests are spaced `1/rate` apart (GCRA without burst), so any 1 s window holds at most
//! `rate + 1`. A 429 pauses every caller until a shared instant (`Retry-After`, capped, else the
//! backoff step) and halves the rate, down to a floor; other answers give the full rate back in
//! about ten seconds of steady traffic (AIMD, as TCP). Without a configured rate, only the pauses
//! apply. Hand-written: `governor` has a fixed quota and no shared pause.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::http::{AttemptError, HttpSettings, Reply};
use super::retry::{self, RetryAfter};
use crate::domain::error::Service;

/// Seconds of steady answers that bring the rate from its floor back to the configured one.
const RECOVERY_SECS: f64 = 10.0;

/// The limiter of one upstream, built once per process and shared (in an `Arc`) by its clients.
pub(crate) struct RateLimiter {
    service: Service,
    /// The configured rate, requests per second; `None`: no spacing, only the pauses.
    max_rps: Option<f64>,
    /// Backoff steps and the `Retry-After` cap, as the retries use them.
    settings: HttpSettings,
    state: Mutex<State>,
    /// Wakes the callers waiting for a slot when a 429 voids their slots.
    voided: Notify,
}

struct State {
    /// Requests per second now: the configured rate unless the upstream throttled us.
    rate: f64,
    /// The next free slot (GCRA's theoretical arrival time); never before the pause's end.
    next_slot: Instant,
    /// The latest slot a request was sent in.
    last_sent: Option<Instant>,
    /// The end of the pause after the latest 429 (`next_slot` is never before it).
    not_before: Instant,
    /// Bumped by each 429 that moves the pause: slots reserved before it are void.
    epoch: u64,
    /// How many times a 429 cut the rate (or started a pause).
    cuts: u64,
    /// 429s since the last answer that was not one: the backoff step.
    throttled: u32,
}

/// A request let through: what its answer is reported with.
#[derive(Debug)]
pub(crate) struct Ticket {
    /// `State::cuts` when it was sent: a 429 to a request sent before the last cut is old news.
    cuts: u64,
}

impl RateLimiter {
    /// A limiter of `max_rps` requests per second (`None`: unlimited, pauses only).
    pub(crate) fn new(service: Service, max_rps: Option<u32>, settings: &HttpSettings) -> Self {
        let now = Instant::now();
        let max_rps = max_rps.map(|rps| f64::from(rps.max(1)));
        Self {
            service,
            max_rps,
            settings: settings.clone(),
            state: Mutex::new(State {
                rate: max_rps.unwrap_or(f64::INFINITY),
                next_slot: now,
                last_sent: None,
                not_before: now,
                epoch: 0,
                cuts: 0,
                throttled: 0,
            }),
            voided: Notify::new(),
        }
    }

    /// Waits for this caller's slot. Fails at once, reserving nothing, when the slot is more than
    /// `max_wait` away: the request is then certainly not sent.
    pub(crate) async fn acquire(&self, max_wait: Duration) -> Result<Ticket, AttemptError> {
        let limit = Instant::now().checked_add(max_wait);
        loop {
            // Created before the slot is reserved, so a 429 in between still wakes us.
            let voided = self.voided.notified();
            let (slot, epoch) = {
                let mut s = self.lock();
                let now = Instant::now();
                let slot = s.next_slot.max(now);
                if slot > now && limit.is_some_and(|limit| slot > limit) {
                    let detail = format!("not sent: no slot in time under {}'s rate limit", self.service);
                    return Err(AttemptError::Connect(detail));
                }
                s.next_slot = slot + self.interval(s.rate);
                if slot <= now {
                    return Ok(s.sent(slot));
                }
                (slot, s.epoch)
            };
            tokio::select! {
                () = tokio::time::sleep_until(slot) => {}
                () = voided => continue,
            }
            let mut s = self.lock();
            if s.epoch == epoch {
                return Ok(s.sent(slot));
            }
        }
    }

    /// Takes in the status (and `Retry-After`) of the answer to a request let through by `ticket`.
    pub(crate) fn observe(&self, ticket: &Ticket, status: u16, retry_after: Option<&str>) {
        let mut s = self.lock();
        if status != 429 {
            // A server error says nothing about our pace; any other answer is a success here.
            if status < 500 {
                s.throttled = 0;
                if let Some(max) = self.max_rps {
                    s.rate = (s.rate + max / (RECOVERY_SECS * s.rate)).min(max);
                }
            }
            return;
        }
        let now = Instant::now();
        s.throttled = s.throttled.saturating_add(1);
        let pause = match retry_after.map(|v| retry::parse_retry_after(v, SystemTime::now())) {
            Some(RetryAfter::Wait(wait)) => wait.min(self.settings.retry_after_cap),
            _ => retry::full_jitter(&self.settings, s.throttled),
        };
        // A request sent before the last cut met the old rate: one cut per round trip.
        let fresh = ticket.cuts == s.cuts;
        if !fresh && now + pause <= s.not_before {
            return;
        }
        s.not_before = s.not_before.max(now + pause);
        if fresh {
            s.cuts += 1;
            if let Some(max) = self.max_rps {
                s.rate = (s.rate / 2.0).max((max / 16.0).max(1.0));
            }
            tracing::warn!(service = %self.service, rateRps = self.max_rps.map(|_| s.rate),
                delayMs = (s.not_before - now).as_millis() as u64,
                "upstream answered 429: pausing its calls and lowering their rate");
        }
        // Slots handed out so far are void: their holders queue again, behind the pause, at the new pace.
        let after_last = s.last_sent.map(|sent| sent + self.interval(s.rate));
        s.next_slot = after_last.map_or(s.not_before, |after| after.max(s.not_before));
        s.epoch += 1;
        drop(s);
        self.voided.notify_waiters();
    }

    /// The rate now (`None` when unlimited).
    #[cfg(test)]
    pub(crate) fn rate(&self) -> Option<f64> {
        self.max_rps.map(|_| self.lock().rate)
    }

    fn interval(&self, rate: f64) -> Duration {
        match self.max_rps {
            Some(_) => Duration::from_secs_f64(1.0 / rate),
            None => Duration::ZERO,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn sent(&mut self, slot: Instant) -> Ticket {
        self.last_sent = Some(self.last_sent.map_or(slot, |last| last.max(slot)));
        Ticket { cuts: self.cuts }
    }
}

/// The limiter of an HTTP client, if it has one (only Leaf's client has).
#[derive(Clone, Default)]
pub(crate) struct Pacer(pub(crate) Option<Arc<RateLimiter>>);

impl Pacer {
    /// Waits for a slot: see [`RateLimiter::acquire`]. `None` without a limiter.
    pub(crate) async fn acquire(&self, max_wait: Duration) -> Result<Option<Ticket>, AttemptError> {
        match &self.0 {
            Some(limiter) => limiter.acquire(max_wait).await.map(Some),
            None => Ok(None),
        }
    }

    /// Tells the limiter how the request its ticket let through was answered.
    pub(crate) fn observe(&self, ticket: Option<Ticket>, reply: &Reply) {
        if let (Some(limiter), Some(ticket)) = (&self.0, ticket) {
            limiter.observe(&ticket, reply.status, reply.retry_after.as_deref());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use futures_util::future::join_all;

    use super::*;
    use crate::adapters::http::{Call, HttpClient};
    use crate::domain::time::Deadline;

    const FAR: Duration = Duration::from_secs(3600);
    const SECOND: Duration = Duration::from_secs(1);

    /// A limiter with the default backoff (200 ms base) and `Retry-After` cap (10 s).
    fn limiter(max_rps: Option<u32>) -> Arc<RateLimiter> {
        Arc::new(RateLimiter::new(Service::Leaf, max_rps, &HttpSettings::default()))
    }

    /// Sends through `limiter` and answers with `status` at once; when it was sent.
    async fn send(limiter: &RateLimiter, status: u16, retry_after: Option<&str>) -> Instant {
        let ticket = limiter.acquire(FAR).await.unwrap();
        limiter.observe(&ticket, status, retry_after);
        Instant::now()
    }

    #[tokio::test(start_paused = true)]
    async fn no_second_holds_more_than_the_rate_and_the_rate_gets_through() {
        let limiter = limiter(Some(10));
        let start = Instant::now();
        let callers = (0..8).map(|_| async {
            let mut sent = Vec::new();
            while start.elapsed() < 5 * SECOND {
                sent.push(send(&limiter, 200, None).await);
            }
            sent
        });
        let mut sent: Vec<Instant> = join_all(callers).await.into_iter().flatten().collect();
        sent.sort();
        for (i, first) in sent.iter().enumerate() {
            let window = sent[i..].iter().take_while(|t| **t - *first < SECOND);
            assert!(window.count() <= 10 + 1, "more than the rate within a second");
        }
        assert!(sent.len() >= 50, "only {} requests in 5 s at 10/s", sent.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_caller_and_halves_the_rate() {
        let limiter = limiter(Some(8));
        let start = Instant::now();
        let first = limiter.acquire(FAR).await.unwrap();
        // Three callers hold slots (125, 250 and 375 ms) when the 429 comes in, at 10 ms.
        let waiting = join_all((0..3).map(|_| send(&limiter, 200, None)));
        let (mut sent, ()) = tokio::join!(waiting, async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            limiter.observe(&first, 429, Some("2"));
        });
        sent.push(send(&limiter, 200, None).await);
        let paused = start + Duration::from_millis(2010);
        assert!(sent.iter().all(|t| *t >= paused), "sent during the pause");
        for pair in sent.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(250), "{pair:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_cut_per_round_trip_down_to_a_floor() {
        let limiter = limiter(Some(64));
        let a = limiter.acquire(FAR).await.unwrap();
        let b = limiter.acquire(FAR).await.unwrap();
        limiter.observe(&a, 429, Some("0"));
        limiter.observe(&b, 429, Some("0"));
        assert_eq!(limiter.rate(), Some(32.0), "b was sent before the first cut");
        for expected in [16.0, 8.0, 4.0, 4.0] {
            send(&limiter, 429, Some("0")).await;
            assert_eq!(limiter.rate(), Some(expected));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn steady_answers_give_the_rate_back_in_seconds() {
        let limiter = limiter(Some(32));
        send(&limiter, 429, Some("0")).await;
        send(&limiter, 503, None).await;
        assert_eq!(limiter.rate(), Some(16.0), "a server error is no success");
        send(&limiter, 404, None).await;
        assert_eq!(limiter.rate(), Some(16.2), "32 / (10 s x 16)");
        let start = Instant::now();
        while limiter.rate() < Some(32.0) {
            send(&limiter, 200, None).await;
        }
        // From half the rate, a tenth of the full rate each second: five seconds.
        let took = start.elapsed();
        assert!(took >= 4 * SECOND && took <= 6 * SECOND, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits_but_after_a_429() {
        let limiter = limiter(None);
        let start = Instant::now();
        for _ in 0..1000 {
            send(&limiter, 200, None).await;
        }
        assert_eq!((start.elapsed(), limiter.rate()), (Duration::ZERO, None));
        send(&limiter, 429, Some("1")).await;
        let sent = join_all((0..5).map(|_| send(&limiter, 200, None))).await;
        assert!(sent.iter().all(|t| *t >= start + SECOND && *t == sent[0]));
        // Retry-After beyond the cap (10 s): paused for the cap.
        let start = Instant::now();
        send(&limiter, 429, Some("3600")).await;
        let err = limiter.acquire(5 * SECOND).await.unwrap_err();
        assert!(!err.is_ambiguous(), "a request not sent: {err:?}");
        assert_eq!(start.elapsed(), Duration::ZERO, "gave up at once");
        let paused = send(&limiter, 429, None).await - start;
        assert!(paused >= 10 * SECOND && paused < 11 * SECOND, "{paused:?}");
        // No Retry-After: the backoff step of the second 429 in a row, at most 400 ms.
        let start = Instant::now();
        let paused = send(&limiter, 200, None).await - start;
        assert!(paused <= Duration::from_millis(401), "{paused:?}");
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_warning_per_cut_not_per_request() {
        let captured = Captured::default();
        let writer = captured.clone();
        let json = tracing_subscriber::fmt().json().flatten_event(true);
        let _guard = tracing::subscriber::set_default(json.with_writer(move || writer.clone()).finish());
        let limiter = limiter(Some(16));
        for ticket in join_all((0..8).map(|_| limiter.acquire(FAR))).await {
            limiter.observe(&ticket.unwrap(), 429, Some("1"));
        }
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines = text
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap());
        let warnings: Vec<_> = lines.filter(|line| line["level"] == "WARN").collect();
        assert_eq!(warnings.len(), 1, "{text}");
        assert_eq!(warnings[0]["service"], "Leaf");
        assert_eq!(warnings[0]["rateRps"], 8.0);
        assert_eq!(warnings[0]["delayMs"], 1000);
    }

    /// A server on 127.0.0.1 that answers its requests with `statuses`, one each, in order.
    fn server(statuses: &'static [&'static str]) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/x", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for (stream, status) in listener.incoming().zip(statuses) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // The request line and the headers, up to the empty line.
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        base
    }

    #[tokio::test]
    async fn an_http_client_with_a_limiter_waits_after_a_429() {
        let url = server(&["429 Too Many Requests", "200 OK"]);
        let call = Call {
            service: Service::Leaf,
            operation: "GET /x",
            method: reqwest::Method::GET,
            url: url.parse().expect("a URL"),
            bearer: None,
            json_body: None,
        };
        let limiter = limiter(Some(40));
        let client = HttpClient::new(HttpSettings::default()).with_limiter(limiter.clone());
        let started = Instant::now();
        let reply = client.send(&call, &Deadline::after(20 * SECOND)).await.unwrap();
        assert_eq!(reply.status, 200);
        // Halved to 20/s by the 429, then a step up by the 200: the limiter saw both answers.
        assert_eq!(limiter.rate(), Some(20.0 + 40.0 / (10.0 * 20.0)));
        // The retry waited for its slot at the halved rate: 1/20 s after the first attempt.
        assert!(started.elapsed() >= Duration::from_millis(50));
        // Paused beyond the deadline: not sent (the server is gone), and the error says why.
        send(&limiter, 429, Some("10")).await;
        let err = client.attempt(&call, &Deadline::after(SECOND)).await.unwrap_err();
        let not_sent = matches!(&err, AttemptError::Connect(e) if e.contains("no slot"));
        assert!(not_sent, "{err:?}");
    }
}

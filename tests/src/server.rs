//! A minimal HTTP/1.1 server shared by the stand-ins and the Runtime API emulator.
//!
//! Each accepted TCP connection is served by its own task so that a handler can drop
//! *its* connection without answering (see [`Connection::reset`]): the client then sees
//! a transport error, exactly like a provider whose load balancer resets the socket.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// Handle on the TCP connection a request arrived on.
#[derive(Clone)]
pub(crate) struct Connection {
    reset: Arc<Notify>,
}

impl Connection {
    /// Drop the connection without writing a response, as an RST (SO_LINGER 0).
    ///
    /// The handler should then wait forever: the connection task stops polling it.
    pub(crate) fn reset(&self) {
        // `notify_one` keeps a permit, so this works even before the connection task waits.
        self.reset.notify_one();
    }
}

/// A running server; stops accepting and drops every open connection when dropped.
pub(crate) struct Server {
    addr: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl Server {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The accept loop owns the JoinSet of connections, so this aborts them too.
        self.accept_loop.abort();
    }
}

/// Listen on an ephemeral port of 127.0.0.1 and serve every request with `handler`.
pub(crate) async fn serve<H, F>(handler: H) -> io::Result<Server>
where
    H: Fn(Request<Incoming>, Connection) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accept_loop = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    // An accept error (e.g. EMFILE) concerns one connection; keep serving.
                    if let Ok((stream, _)) = accepted {
                        connections.spawn(serve_connection(stream, handler.clone()));
                    }
                }
                // Reap finished connection tasks so the set does not grow without bound.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(Server { addr, accept_loop })
}

async fn serve_connection<H, F>(stream: TcpStream, handler: H)
where
    H: Fn(Request<Incoming>, Connection) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let reset = Arc::new(Notify::new());
    let connection = Connection { reset: reset.clone() };
    let service = service_fn(move |request| {
        let response = handler(request, connection.clone());
        async move { Ok::<_, Infallible>(response.await) }
    });
    let mut served = pin!(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        _ = served.as_mut() => {}
        _ = reset.notified() => {
            // `served` still owns the socket here, so `fd` is valid; it closes when
            // `served` is dropped at the end of this function, and linger 0 makes that an RST.
            set_zero_linger(fd);
        }
    }
}

fn set_zero_linger(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket owned by the caller for the duration of this call and
    // `linger` is a properly sized, initialised value for SO_LINGER.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    // Without linger 0 the close is a FIN, which clients still see as a transport error.
    debug_assert_eq!(rc, 0, "setsockopt(SO_LINGER) failed");
}

/// A response with a JSON body.
pub(crate) fn json_response(status: u16, body: &serde_json::Value) -> HttpResponse {
    raw_response(status, "application/json", body.to_string())
}

/// A response with an arbitrary body and content type.
pub(crate) fn raw_response(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A random string that is unique enough to be searched for in logs.
pub(crate) fn random_token(prefix: &str) -> String {
    let tail: String = std::iter::repeat_with(fastrand::alphanumeric).take(32).collect();
    format!("{prefix}-{tail}")
}

/// Format a time as `yyyy-MM-ddTHH:mm:ss.SSSSSSZ` (UTC, microseconds), like Leaf does.
pub(crate) fn iso_micros(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let second_of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        since_epoch.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_leaf_timestamps() {
        assert_eq!(iso_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let time = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(iso_micros(time), "2023-11-14T22:13:20.123456Z");
        // A leap day, to exercise the month arithmetic.
        assert_eq!(
            iso_micros(UNIX_EPOCH + Duration::from_secs(1_709_164_800)),
            "2024-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_token("x"), random_token("x"));
        assert!(random_token("apiKey").starts_with("apiKey-"));
    }
}

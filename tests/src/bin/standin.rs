//! The Stara/Leaf stand-in of the test bed (`testbed::standin`), on its own: what `make dev` and
//! the cargo-lambda check (`scripts/local-stack.sh`) run the functions against, so that the
//! developer's loop talks to the very stand-in the end-to-end suite does.
//!
//! `standin --leaf-owner USER:PASSWORD --grower LEAF_USER_ID:LOGIN:PASSWORD …` prints one line,
//! `{"stara":URL,"leaf":URL,"control":URL}`, once listening, and serves until it is stopped.
//! The control URL answers `GET /_standin/counts` (`{"counts":{route:n},"unrouted":[…]}`) and
//! `GET /_standin/issued` (every password it was given and token it issued, a JSON array).

use serde_json::json;
use testbed::standin::StandIn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn usage() -> ! {
    eprintln!("usage: standin --leaf-owner USER:PASSWORD --grower LEAF_USER_ID:LOGIN:PASSWORD ...");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let standin = StandIn::start().await;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--leaf-owner" => {
                let (user, password) = value.split_once(':').unwrap_or_else(|| usage());
                standin.set_leaf_owner(user, password);
            }
            "--grower" => {
                let mut parts = value.splitn(3, ':');
                let (Some(id), Some(login), Some(password)) = (parts.next(), parts.next(), parts.next())
                else {
                    usage()
                };
                standin.add_stara_account(login, password);
                standin.add_leaf_user(id);
            }
            _ => usage(),
        }
    }
    let control = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let control_url = format!("http://{}", control.local_addr().expect("a bound address"));
    let line = json!({"stara": standin.stara_url(), "leaf": standin.leaf_url(), "control": control_url});
    println!("{line}");
    // Until SIGINT or SIGTERM ends the process: nothing is left to clean up.
    loop {
        if let Ok((stream, _)) = control.accept().await {
            answer(stream, &standin).await;
        }
    }
}

/// One control request: its path picks the answer; the connection closes after it.
async fn answer(mut stream: tokio::net::TcpStream, standin: &StandIn) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let request = String::from_utf8_lossy(&head);
    let path = request.split_whitespace().nth(1).unwrap_or_default();
    let (status, body) = match path {
        "/_standin/counts" => {
            let counts: serde_json::Map<String, serde_json::Value> = standin
                .counts()
                .into_iter()
                .map(|(route, n)| (format!("{route:?}"), json!(n)))
                .collect();
            (
                "200 OK",
                json!({"counts": counts, "unrouted": standin.unrouted()}),
            )
        }
        "/_standin/issued" => ("200 OK", json!(standin.issued_secrets())),
        _ => (
            "404 Not Found",
            json!({"error": "GET /_standin/counts or /_standin/issued"}),
        ),
    };
    let body = body.to_string();
    let length = body.len();
    let head = "content-type: application/json\r\nconnection: close";
    let response = format!("HTTP/1.1 {status}\r\n{head}\r\ncontent-length: {length}\r\n\r\n{body}");
    let _ = stream.write_all(response.as_bytes()).await;
}

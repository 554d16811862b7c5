//! Structured logs: one JSON object per line, as Lambda's advanced logging controls expect.
//!
//! `AWS_LAMBDA_LOG_FORMAT=Text` switches to plain text for people reading a terminal;
//! anything else (or nothing) gives JSON. The level comes from `AWS_LAMBDA_LOG_LEVEL`, then
//! `RUST_LOG`, then INFO. Libraries below us are held at WARN so a DEBUG level shows our own
//! steps, not wire dumps.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

const QUIET_LIBRARIES: &[&str] = &[
    "hyper=warn",
    "hyper_util=warn",
    "h2=warn",
    "rustls=warn",
    "reqwest=warn",
    "aws_smithy_runtime=warn",
    "aws_smithy_runtime_api=warn",
    "aws_config=warn",
    "tower=warn",
];

/// Installs the process-wide subscriber; call once, first thing in `main`.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_default();
    let level = match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "WARN" => LevelFilter::WARN,
        "ERROR" | "FATAL" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    };
    let mut filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy("");
    for directive in QUIET_LIBRARIES {
        filter = filter.add_directive(directive.parse().expect("static directives are valid"));
    }
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stdout);
    if text {
        builder.with_ansi(false).init();
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init();
    }
}

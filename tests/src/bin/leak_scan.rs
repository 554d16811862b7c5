//! After the suite: searches every log line and response captured by every test bed for every
//! password and token issued anywhere in the suite, and every response for an ARN, an account
//! id or a URL. Any hit fails the run.
//!
//! Usage: `leak_scan [capture-dir]` (default `target/e2e-capture`).

use std::path::PathBuf;

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(testbed::bed::capture_root);
    let report = testbed::leaks::scan(&root).unwrap_or_else(|e| {
        eprintln!(
            "leak scan: no captures under {}: {e} (run the end-to-end tests first)",
            root.display()
        );
        std::process::exit(1);
    });
    if report.secrets == 0 {
        eprintln!("leak scan: the captures hold no secrets: the scan would prove nothing");
        std::process::exit(1);
    }
    for (path, length, line) in &report.hits {
        eprintln!(
            "LEAK in {}: a secret of {length} chars appears in: {line}",
            path.display()
        );
    }
    for (path, what, line) in &report.disclosures {
        eprintln!("DISCLOSURE in {}: {what} in the response: {line}", path.display());
    }
    println!(
        "leak scan: {} beds, {} secrets, {} files, {} lines, {} hits; {} responses, {} disclosures",
        report.beds,
        report.secrets,
        report.files,
        report.lines,
        report.hits.len(),
        report.responses,
        report.disclosures.len()
    );
    if report.responses == 0 {
        eprintln!("leak scan: no responses were captured: the disclosure check would prove nothing");
        std::process::exit(1);
    }
    if !report.hits.is_empty() || !report.disclosures.is_empty() {
        std::process::exit(1);
    }
}

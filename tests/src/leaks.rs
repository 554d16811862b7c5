//! The suite-wide leak scan: every captured log line and response of every bed, searched for
//! every secret of every bed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct ScanReport {
    pub beds: usize,
    pub secrets: usize,
    pub files: usize,
    pub lines: usize,
    /// (file, length of the secret found, the line cut to 200 characters): never the secret alone.
    pub hits: Vec<(PathBuf, usize, String)>,
    /// Responses that disclose the deployment: (file, what was found, the line cut to 200 characters).
    pub disclosures: Vec<(PathBuf, &'static str, String)>,
    /// How many responses were checked for disclosures.
    pub responses: usize,
}

/// What a response must never contain: an ARN, an AWS account id, or a URL (the base URLs are
/// configuration, never an answer). `None` when the text is clean.
pub fn disclosure(text: &str) -> Option<&'static str> {
    if text.contains("arn:") {
        return Some("an ARN");
    }
    if text.contains("http://") || text.contains("https://") {
        return Some("a URL");
    }
    // Twelve digits standing alone: an account id. Not a part of a UUID (after a hyphen) or of a
    // longer number or word.
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_digit() {
            start += 1;
            continue;
        }
        let end = (start..bytes.len())
            .find(|&i| !bytes[i].is_ascii_digit())
            .unwrap_or(bytes.len());
        let before = start.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(end).copied();
        let joined = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if end - start == 12 && !joined(before) && !joined(after) {
            return Some("an AWS account id");
        }
        start = end;
    }
    None
}

/// Scans the bed captures under `root` (one directory per bed: `secrets.txt`, logs, `responses.txt`).
pub fn scan(root: &Path) -> std::io::Result<ScanReport> {
    let mut report = ScanReport::default();
    let mut secrets = BTreeSet::new();
    let mut texts = Vec::new();
    for bed in std::fs::read_dir(root)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
    {
        report.beds += 1;
        for path in std::fs::read_dir(&bed)?.filter_map(Result::ok).map(|e| e.path()) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if path.file_name().is_some_and(|n| n == "secrets.txt") {
                // Six characters at least: shorter strings would match by chance.
                secrets.extend(text.lines().filter(|l| l.len() >= 6).map(str::to_owned));
            } else {
                texts.push((path, text));
            }
        }
    }
    report.secrets = secrets.len();
    report.files = texts.len();
    for (path, text) in &texts {
        let responses = path.file_name().is_some_and(|n| n == "responses.txt");
        for line in text.lines() {
            if responses {
                report.responses += 1;
                if let Some(what) = disclosure(line) {
                    report
                        .disclosures
                        .push((path.clone(), what, line.chars().take(200).collect()));
                }
            }
            report.lines += 1;
            for secret in secrets.iter().filter(|s| line.contains(s.as_str())) {
                report
                    .hits
                    .push((path.clone(), secret.len(), line.chars().take(200).collect()));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_of_one_bed_is_found_in_the_logs_of_another() {
        let root = std::env::temp_dir().join(format!("leak-scan-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::write(root.join("a/secrets.txt"), "token-abcdef\nxy").unwrap();
        std::fs::write(root.join("a/connect-1.log"), "{\"message\":\"clean\"}").unwrap();
        std::fs::write(root.join("b/secrets.txt"), "other-secret").unwrap();
        std::fs::write(
            root.join("b/connect-2.log"),
            "{\"message\":\"ok\"}\n{\"error\":\"token-abcdef\"}\nxy",
        )
        .unwrap();

        let report = scan(&root).unwrap();

        assert_eq!(
            (report.beds, report.secrets, report.files, report.lines),
            (2, 2, 2, 4)
        );
        assert_eq!(
            report.hits.len(),
            1,
            "the short string `xy` is not a secret: {:?}",
            report.hits
        );
        assert!(report.hits[0].0.ends_with("b/connect-2.log"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn responses_that_disclose_the_deployment_are_found() {
        for text in [
            r#"{"error":{"message":"secret arn:aws:secretsmanager:us-east-1:123456789012:secret:x"}}"#,
            r#"{"error":{"message":"could not connect to http://127.0.0.1:4566"}}"#,
            r#"{"error":{"message":"https://api.withleaf.io/services"}}"#,
            r#"{"error":{"message":"account 123456789012 denied"}}"#,
        ] {
            assert!(disclosure(text).is_some(), "{text}");
        }
        for text in [
            r#"{"leafUserId":"1b3c5d7e-0000-4000-8000-000000000000","outcome":"connected"}"#,
            r#"{"checked":12,"time":1795953600000,"id":"x123456789012"}"#,
        ] {
            assert_eq!(disclosure(text), None, "{text}");
        }
    }
}

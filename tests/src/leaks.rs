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
        for line in text.lines() {
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
}

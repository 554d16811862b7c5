//! Artifact size: the arm64 bootstraps `sam build` made (scripts/sam-build.sh), unzipped and
//! zipped as `sam deploy` uploads them.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::report::{Report, thousands};

pub const TARGET_ZIPPED_BYTES: u64 = 3 * 1024 * 1024;
/// The target as the report shows it (issue 14).
const TARGET: &str = "≤ 3 MiB";

/// Zips one file with deflate at level 9, as scripts/sam-build.sh does, and prints the size.
const ZIP: &str = r#"
import os, sys, tempfile, zipfile
with tempfile.TemporaryDirectory() as tmp:
    archive = os.path.join(tmp, "a.zip")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(sys.argv[1], "bootstrap")
    print(os.path.getsize(archive))
"#;

pub fn run(root: &Path, report: &mut Report) {
    let sources = newest_source(root);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "The bootstraps `make sam-build` (scripts/sam-build.sh: `sam build`, cargo-lambda, zig, \
         `aarch64-unknown-linux-gnu`, the release profile) leaves in `.aws-sam/build/`. Zipped with deflate at \
         level 9, as the deployment package.\n"
    );
    let _ = writeln!(
        body,
        "| function | bootstrap | zipped | built |\n|---|---|---|---|"
    );
    for (function, bin) in [("ConnectFunction", "connect"), ("VerifyFunction", "verify")] {
        let path = root.join(".aws-sam/build").join(function).join("bootstrap");
        let Ok(meta) = std::fs::metadata(&path) else {
            let _ = writeln!(body, "| {function} | not built | | |");
            report.warn(format!(
                "{} is missing: run `make sam-build` (or `BENCH_SAM_BUILD=1 make bench`) to measure the artifact sizes",
                path.display()
            ));
            report.row(
                format!("zipped arm64 bootstrap of `{bin}`"),
                "not measured",
                TARGET,
                None,
            );
            continue;
        };
        if !is_aarch64_elf(&path) {
            report.warn(format!("{} is not an aarch64 ELF executable", path.display()));
        }
        let built = meta.modified().ok();
        if let (Some(built), Some((newest, source))) = (built, &sources) {
            if built < *newest {
                report.warn(format!(
                    "{} is older than {} : its size may not be the current code's. Run `make sam-build` or `BENCH_SAM_BUILD=1 make bench`",
                    path.display(),
                    source.display()
                ));
            }
        }
        let unzipped = meta.len();
        let zipped = zipped_size(&path);
        let when = built.map_or_else(|| "?".to_owned(), age);
        let _ = writeln!(
            body,
            "| {function} | {} B ({:.2} MiB) | {} | {when} |",
            thousands(unzipped),
            unzipped as f64 / 1048576.0,
            zipped.map_or_else(
                || "? (python3 missing)".to_owned(),
                |z| format!("{} B ({:.2} MiB)", thousands(z), z as f64 / 1048576.0)
            )
        );
        report.row(
            format!("zipped arm64 bootstrap of `{bin}`"),
            zipped.map_or_else(
                || "?".to_owned(),
                |z| {
                    format!(
                        "{:.2} MiB ({} B; {:.2} MiB unzipped)",
                        z as f64 / 1048576.0,
                        thousands(z),
                        unzipped as f64 / 1048576.0
                    )
                },
            ),
            TARGET,
            zipped.map(|z| z <= TARGET_ZIPPED_BYTES),
        );
    }
    let _ = writeln!(
        body,
        "\nTarget (issue 14): each zip {TARGET} ({} B).",
        thousands(TARGET_ZIPPED_BYTES)
    );
    report.section("Artifact size", body);
}

fn zipped_size(path: &Path) -> Option<u64> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(ZIP)
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8(output.stdout).ok()?.trim().parse().ok()
}

/// ELF, 64-bit, e_machine 183 (AArch64).
fn is_aarch64_elf(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    data.len() > 20
        && data[..4] == *b"\x7fELF"
        && data[4] == 2
        && u16::from_le_bytes([data[18], data[19]]) == 183
}

/// The most recently modified file the bootstraps are built from.
fn newest_source(root: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut files = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    for dir in ["shared", "functions"] {
        collect(&root.join(dir), &mut files);
    }
    files
        .into_iter()
        .filter(|f| {
            f.extension()
                .is_some_and(|e| e == "rs" || e == "toml" || e == "lock")
        })
        // Test-only code (`#[cfg(test)] mod proptests`) is not in the bootstrap.
        .filter(|f| !f.ends_with("shared/src/proptests.rs"))
        .filter_map(|f| Some((std::fs::metadata(&f).ok()?.modified().ok()?, f)))
        .max_by_key(|(t, _)| *t)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn age(time: SystemTime) -> String {
    let secs = SystemTime::now().duration_since(time).map_or(0, |d| d.as_secs());
    match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7199 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_newest_source_of_this_workspace() {
        let root = testbed::workspace_root();
        let (_, newest) = newest_source(&root).expect("the workspace has sources");
        assert!(newest.starts_with(&root));
        assert!(!is_aarch64_elf(&root.join("Cargo.toml")));
    }
}

//! The layer rule, checked on every `cargo test`: `domain` imports from neither `adapters` nor
//! `lambda` (nor from AWS, HTTP or Lambda crates), and `adapters` never import from `lambda`.
//! Also the size rules that keep the code readable: lines of at most 110 characters (rustfmt
//! does not wrap inside macros) and files of at most 400 lines.

use std::path::{Path, PathBuf};

const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every line of a layer's files that names one of `forbidden`, as `file:line: text`.
fn imports(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(&Path::new(SOURCE).join(layer)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if forbidden.iter().any(|f| code.contains(f)) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_domain_depends_on_nothing_outside_it() {
    let outside = [
        "crate::adapters",
        "crate::lambda",
        "super::super",
        "aws_sdk",
        "aws_config",
        "aws_lambda_events",
        "lambda_runtime",
        "reqwest",
    ];
    let found = imports("domain", &outside);
    assert!(
        found.is_empty(),
        "the domain imports from outside it:\n{}",
        found.join("\n")
    );
}

#[test]
fn adapters_do_not_depend_on_the_lambda_layer() {
    let found = imports(
        "adapters",
        &["crate::lambda", "lambda_runtime", "aws_lambda_events"],
    );
    assert!(
        found.is_empty(),
        "an adapter imports from the Lambda layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_a_forbidden_import() {
    // The checker itself must be able to fail: this file names the forbidden paths.
    let here = imports("", &["crate::adapters"]);
    assert!(here.iter().any(|l| l.contains("layering.rs")), "{here:?}");
}

#[test]
fn lines_and_files_stay_short() {
    let mut long = Vec::new();
    for file in rust_files(Path::new(SOURCE)) {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        if lines > 400 {
            long.push(format!("{}: {lines} lines", file.display()));
        }
        for (n, line) in text.lines().enumerate() {
            if line.chars().count() > 110 {
                long.push(format!(
                    "{}:{}: {} characters",
                    file.display(),
                    n + 1,
                    line.chars().count()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "over 110 characters a line or 400 lines a file:\n{}",
        long.join("\n")
    );
}

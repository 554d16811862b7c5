//! The figures against their targets, the detail of each measure, and docs/BENCHMARKS.md.

use std::fmt::Write;

use crate::machine::Machine;

/// One line of the results table.
#[derive(Clone, Debug)]
pub struct Row {
    pub measure: String,
    pub figure: String,
    pub target: String,
    /// `None`: informational, or not measured in this run.
    pub pass: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// (title, markdown body), in the order measured.
    pub sections: Vec<(String, String)>,
    /// Problems worth reading before the figures (a stale artifact, a missing tool).
    pub warnings: Vec<String>,
}

impl Report {
    pub fn row(
        &mut self,
        measure: impl Into<String>,
        figure: impl Into<String>,
        target: impl Into<String>,
        pass: Option<bool>,
    ) {
        let row = Row {
            measure: measure.into(),
            figure: figure.into(),
            target: target.into(),
            pass,
        };
        println!(
            "  {:<44} {:<40} target {:<22} {}",
            row.measure,
            row.figure,
            row.target,
            pass_text(row.pass)
        );
        self.rows.push(row);
    }

    pub fn section(&mut self, title: impl Into<String>, body: impl Into<String>) {
        self.sections.push((title.into(), body.into()));
    }

    pub fn warn(&mut self, warning: impl Into<String>) {
        let warning = warning.into();
        eprintln!("bench: WARNING: {warning}");
        self.warnings.push(warning);
    }

    pub fn missed(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.pass == Some(false)).collect()
    }

    /// The whole document. `run` describes how and how long this run went.
    pub fn markdown(&self, machine: &Machine, run: &RunFacts, notes: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Written by `{}` on {}. Do not edit the figures by hand: run the command again. The text after \
             the figures comes from [`bench/NOTES.md`](../bench/NOTES.md).\n",
            run.command, machine.date
        );
        let _ = writeln!(
            md,
            "Every figure comes from the **release** binaries (`target/release/{{connect,verify}}`: opt-level s, fat LTO, \
             1 codegen unit, panic abort, strip) driven through the Lambda Runtime API emulator of the test bed, \
             against the Stara/Leaf stand-ins with **every upstream call taking {} ms** (the stand-in's \
             delay calibrated to it, see *Machine and run*), and moto (Secrets Manager, SQS) \
             behind a proxy that counts AWS calls. The functions run with the production HTTP settings (timeouts, \
             retries, `BATCH_CONCURRENCY` {}, `VERIFY_CONCURRENCY` {}).\n",
            run.latency_ms, run.batch_concurrency, run.verify_concurrency
        );
        for warning in &self.warnings {
            let _ = writeln!(md, "> **Warning:** {warning}\n");
        }
        let _ = writeln!(md, "## Results against the targets\n");
        let _ = writeln!(md, "| measure | figure | target | pass |");
        let _ = writeln!(md, "|---|---|---|---|");
        for row in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                row.measure,
                row.figure,
                row.target,
                pass_text(row.pass)
            );
        }
        let _ = writeln!(md, "\n![latency against batch size](benchmarks-batch.svg)\n");

        let _ = writeln!(md, "## Machine and run\n");
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| CPU | {} × {} |", machine.cpus, machine.cpu_model);
        let _ = writeln!(md, "| memory | {} |", machine.memory);
        let _ = writeln!(md, "| kernel | {} |", machine.kernel);
        let _ = writeln!(md, "| Rust | {} |", machine.rustc);
        let _ = writeln!(md, "| command | `{}` |", run.command);
        let _ = writeln!(md, "| run time | {} |", run.duration);
        let _ = writeln!(
            md,
            "| load average (1 min) | {:.2} at the start, {:.2} at the end (2.0 = both cores busy) |",
            run.load_before, run.load_after
        );
        let _ = writeln!(md, "| harness | {} |", run.harness);
        let _ = writeln!(md, "| upstream latency | {} |", run.upstream);
        let _ = writeln!(md);
        for (title, body) in &self.sections {
            let _ = writeln!(md, "## {title}\n\n{}\n", body.trim_end());
        }
        md.push_str(notes.trim_end());
        md.push('\n');
        md
    }
}

pub struct RunFacts {
    pub command: String,
    pub latency_ms: u64,
    pub batch_concurrency: usize,
    pub verify_concurrency: usize,
    pub duration: String,
    pub load_before: f64,
    pub load_after: f64,
    pub harness: String,
    /// How the stand-in's delay was set so that a call takes `latency_ms`.
    pub upstream: String,
}

pub fn pass_text(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "—",
    }
}

/// 12345678 → "12,345,678".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// kB (as /proc reports) as "12.3 MB" (MiB, as Lambda counts memory).
pub fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(5_778_192), "5,778,192");
        assert_eq!(mb(10_240), "10.0 MB");
    }

    #[test]
    fn renders_rows_and_sections() {
        let mut report = Report::default();
        report.row("init", "3 ms", "≤ 20 ms", Some(true));
        report.row("size", "4 MB", "≤ 3 MB", Some(false));
        report.section("Init", "detail");
        let machine = Machine {
            cpus: 2,
            cpu_model: "cpu".into(),
            memory: "1 GiB".into(),
            kernel: "Linux x".into(),
            rustc: "rustc".into(),
            date: "today".into(),
        };
        let run = RunFacts {
            command: "make bench".into(),
            latency_ms: 20,
            batch_concurrency: 10,
            verify_concurrency: 16,
            duration: "1 s".into(),
            load_before: 0.0,
            load_after: 0.0,
            harness: "dev".into(),
            upstream: "20 ms".into(),
        };
        let md = report.markdown(&machine, &run, "## Notes\n");
        assert!(md.contains("| init | 3 ms | ≤ 20 ms | yes |"));
        assert!(md.contains("| size | 4 MB | ≤ 3 MB | **no** |"));
        assert!(md.contains("## Init\n\ndetail"));
        assert!(md.ends_with("## Notes\n"));
        assert_eq!(report.missed().len(), 1);
    }
}

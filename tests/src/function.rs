//! Run a real compiled Lambda binary against the [`RuntimeApi`] emulator.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::runtime_api::RuntimeApi;

/// A running function process. It is killed when dropped.
pub struct Function {
    name: String,
    child: Child,
    pid: u32,
    logs: Arc<Logs>,
    readers: Vec<JoinHandle<()>>,
    spawned_at: Instant,
}

#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<String>>,
    appended: Notify,
}

impl Logs {
    fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Function {
    /// Where the binary `bin` is looked for: `$TESTBED_BIN_DIR/<bin>` if set (e.g. a release
    /// build for benchmarks), else `$CARGO_TARGET_DIR/debug/<bin>`, else `<workspace>/target/debug/<bin>`.
    pub fn binary_path(bin: &str) -> PathBuf {
        let dir = match (
            std::env::var_os("TESTBED_BIN_DIR"),
            std::env::var_os("CARGO_TARGET_DIR"),
        ) {
            (Some(dir), _) => PathBuf::from(dir),
            // A relative CARGO_TARGET_DIR is relative to where cargo ran: the workspace, for `make`.
            (None, Some(target)) => crate::workspace_root().join(target).join("debug"),
            (None, None) => crate::workspace_root().join("target").join("debug"),
        };
        dir.join(bin)
    }

    /// Start `bin` with a cleared environment: PATH, the Lambda variables (pointing at
    /// `runtime`), then `env` (which wins over the defaults). Must be called inside a tokio
    /// runtime, and not from `spawn_blocking` (the process dies with the spawning thread).
    pub fn spawn(bin: &str, runtime: &RuntimeApi, env: &[(String, String)]) -> Function {
        let path = Self::binary_path(bin);
        if !path.is_file() {
            panic!(
                "function binary {} is missing: run `cargo build --bins` first",
                path.display()
            );
        }
        Self::spawn_path(&path, runtime, env)
    }

    /// Like [`spawn`](Self::spawn), for a binary at an explicit path; the function name is its file name.
    pub fn spawn_path(path: &Path, runtime: &RuntimeApi, env: &[(String, String)]) -> Function {
        let bin = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bin = bin.as_str();

        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        if let Ok(search_path) = std::env::var("PATH") {
            vars.insert("PATH".to_owned(), search_path);
        }
        for (name, value) in [
            ("AWS_LAMBDA_RUNTIME_API", runtime.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", bin.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ] {
            vars.insert(name.to_owned(), value);
        }
        vars.extend(env.iter().cloned());

        let mut command = Command::new(path);
        command
            .env_clear()
            .envs(&vars)
            .current_dir(crate::workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe calls (prctl, errno) run between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // Die with the test process even when it is killed (drop cannot run then).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", path.display()));
        let pid = child.id().expect("a just-spawned child has a pid");

        let logs = Arc::new(Logs::default());
        let echo = std::env::var_os("TESTBED_ECHO_LOGS")
            .is_some()
            .then(|| bin.to_owned());
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            collect_lines(stdout, logs.clone(), echo.clone()),
            collect_lines(stderr, logs.clone(), echo),
        ];
        Function {
            name: bin.to_owned(),
            child,
            pid,
            logs,
            readers,
            spawned_at,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When the process was started (pair with [`RuntimeApi::wait_first_poll`] for init time).
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Every stdout and stderr line so far, in arrival order.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines().clone()
    }

    /// The log lines that are JSON (the structured logs of `AWS_LAMBDA_LOG_FORMAT=JSON`).
    pub fn log_json(&self) -> Vec<Value> {
        self.logs
            .lines()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Each secret that appears in some log line, with the first such line.
    pub fn find_leaks(&self, secrets: &[String]) -> Vec<(String, String)> {
        let lines = self.logs.lines();
        secrets
            .iter()
            .filter(|secret| !secret.is_empty())
            .filter_map(|secret| {
                let line = lines.iter().find(|line| line.contains(secret.as_str()))?;
                Some((secret.clone(), line.clone()))
            })
            .collect()
    }

    /// Wait until a log line satisfies `matches` (lines already there count); None after `timeout`.
    pub async fn wait_for_log(&self, timeout: Duration, matches: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register before looking so a line appended in between still wakes us.
            let mut appended = pin!(self.logs.appended.notified());
            appended.as_mut().enable();
            if let Some(line) = self.logs.lines().iter().find(|line| matches(line)) {
                return Some(line.clone());
            }
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return None;
            }
        }
    }

    /// Peak resident set size (VmHWM) in kB; None once the process has exited.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        self.proc_status_kb("VmHWM:")
    }

    /// Current resident set size (VmRSS) in kB; None once the process has exited.
    pub fn rss_kb(&self) -> Option<u64> {
        self.proc_status_kb("VmRSS:")
    }

    fn proc_status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|line| line.starts_with(field))?;
        line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait for the process to exit (and its output to be read); None after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?
            .ok()?;
        self.drain_output().await;
        Some(status)
    }

    /// Send a signal (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.pid).expect("pids fit in pid_t");
        // SAFETY: kill(2) with a pid we spawned and have not reaped (the Child still owns it).
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Kill the process (SIGKILL) and wait for it, and for its output to be read.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
        self.drain_output().await;
    }

    async fn drain_output(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
    }
}

fn collect_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    logs: Arc<Logs>,
    echo: Option<String>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    if let Some(name) = &echo {
                        eprintln!("[{name}] {text}");
                    }
                    logs.lines().push(text);
                    logs.appended.notify_waiters();
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "cargo build --bins")]
    fn a_missing_binary_says_how_to_build_it() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let api = RuntimeApi::start().await;
            Function::spawn("no-such-function-binary", &api, &[]);
        });
    }

    /// Stand in for a function binary with a shell script (the real ones are built by cargo).
    fn script(dir: &std::path::Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[tokio::test]
    async fn runs_a_binary_with_a_clean_environment_and_captures_logs() {
        let dir = std::env::temp_dir().join(format!("testbed-function-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        script(
            &dir,
            "fake-fn",
            concat!(
                r#"echo "{\"api\":\"$AWS_LAMBDA_RUNTIME_API\",\"name\":\"$AWS_LAMBDA_FUNCTION_NAME\","#,
                r#"\"level\":\"$AWS_LAMBDA_LOG_LEVEL\",\"home\":\"$HOME\"}""#,
                "\n",
                r#"echo "plain line on stderr" >&2"#,
                "\n",
                "exec sleep 30",
            ),
        );
        let runtime = RuntimeApi::start().await;
        let env = [("AWS_LAMBDA_LOG_LEVEL".to_owned(), "DEBUG".to_owned())];
        let mut function = Function::spawn_path(&dir.join("fake-fn"), &runtime, &env);

        let stderr = function
            .wait_for_log(Duration::from_secs(10), |line| line.contains("stderr"))
            .await;
        assert_eq!(stderr.as_deref(), Some("plain line on stderr"));
        function
            .wait_for_log(Duration::from_secs(10), |line| line.starts_with('{'))
            .await
            .expect("json line");
        let json = function.log_json();
        assert_eq!(json.len(), 1, "{:?}", function.logs());
        assert_eq!(json[0]["api"], runtime.address());
        assert_eq!(json[0]["name"], "fake-fn");
        assert_eq!(json[0]["level"], "DEBUG", "the given env wins");
        assert_eq!(json[0]["home"], "", "the environment is cleared");
        assert!(function.peak_rss_kb().is_some_and(|kb| kb > 0));
        assert_eq!(
            function
                .find_leaks(&["fake-fn".to_owned(), "absent".to_owned()])
                .len(),
            1
        );

        function.kill().await;
        assert!(function.try_exit_status().is_some());
        assert_eq!(function.peak_rss_kb(), None);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}

//! The seam between scheduling and processes: the dispatcher and the per-item runner talk
//! to an [`Executor`], so they can be tested with a scripted mock and no processes.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::engine::process::shell::{ShellCommand, ShellResult, run_shell};

pub trait Executor: Send + Sync + 'static {
    fn run(
        &self,
        cmd: ShellCommand,
        cancel: CancellationToken,
    ) -> impl Future<Output = ShellResult> + Send;
}

impl<E: Executor> Executor for std::sync::Arc<E> {
    fn run(
        &self,
        cmd: ShellCommand,
        cancel: CancellationToken,
    ) -> impl Future<Output = ShellResult> + Send {
        E::run(self, cmd, cancel)
    }
}

/// Runs each command with `/bin/sh -c` in its own process group.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessExecutor;

impl Executor for ProcessExecutor {
    async fn run(&self, cmd: ShellCommand, cancel: CancellationToken) -> ShellResult {
        run_shell(cmd, &cancel).await
    }
}

#[cfg(test)]
pub mod mock {
    //! A scripted executor: the command text decides the result.
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::engine::process::shell::Exit;

    /// `exit N` -> Code(N); `echo X` -> stdout X; `sleep` -> Timeout if a timeout is set;
    /// `flaky K` fails the first K calls then succeeds. Records every script it ran.
    #[derive(Default)]
    pub struct MockExecutor {
        pub ran: Mutex<Vec<String>>,
        calls: Mutex<std::collections::HashMap<String, u32>>,
    }

    impl Executor for MockExecutor {
        async fn run(&self, cmd: ShellCommand, _cancel: CancellationToken) -> ShellResult {
            self.ran.lock().unwrap().push(cmd.script.clone());
            let n = {
                let mut calls = self.calls.lock().unwrap();
                let c = calls.entry(cmd.script.clone()).or_default();
                *c += 1;
                *c
            };
            let s = cmd.script.trim();
            let (exit, stdout) = if let Some(code) = s.strip_prefix("exit ") {
                (Exit::Code(code.trim().parse().unwrap_or(1)), Vec::new())
            } else if let Some(text) = s.strip_prefix("echo ") {
                (Exit::Success, format!("{text}\n").into_bytes())
            } else if s.starts_with("sleep") {
                match cmd.timeout {
                    Some(t) => (Exit::Timeout(t), Vec::new()),
                    None => (Exit::Success, Vec::new()),
                }
            } else if let Some(k) = s.strip_prefix("flaky ") {
                let k: u32 = k
                    .split_whitespace()
                    .next()
                    .and_then(|k| k.parse().ok())
                    .unwrap_or(1);
                if n <= k {
                    (Exit::Code(1), Vec::new())
                } else {
                    (Exit::Success, Vec::new())
                }
            } else {
                (Exit::Success, Vec::new())
            };
            ShellResult {
                exit,
                stdout,
                stderr_tail: String::new(),
                duration: Duration::from_millis(1),
                usage: Some(crate::state::records::Usage {
                    peak_rss_kb: 1024,
                    cpu_ms: 1,
                }),
            }
        }
    }
}

//! Delivering one notification: a command (event JSON on stdin, `${event.*}` rendered and
//! shell-escaped) or a webhook POST, each attempt bounded by a timeout, failed attempts
//! retried after a doubling backoff. Never panics, never waits without a bound.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::notify::spec::{Notify, Target};
use crate::workflow::template::resolve_path;

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub ok: bool,
    pub attempts: u32,
    /// The last attempt's error.
    pub error: Option<String>,
}

/// The longest a delivery of `n` can take (every attempt timing out, every backoff waited).
pub fn worst_case(n: &Notify) -> Duration {
    let mut total = n.timeout * (n.retries + 1);
    let mut wait = n.backoff;
    for _ in 0..n.retries {
        total += wait;
        wait = wait.saturating_mul(2);
    }
    total + Duration::from_secs(1)
}

/// Deliver `event` (its JSON) to `n`'s target; commands run in `dir`.
pub fn deliver(n: &Notify, event: &Value, dir: &Path) -> Delivery {
    let mut wait = n.backoff;
    let mut error = None;
    for attempt in 1..=n.retries + 1 {
        let result = match &n.target {
            Target::Command(t) => run_command(t, event, dir, n.timeout),
            Target::Webhook(url) => post(url, event, n.timeout),
        };
        match result {
            Ok(()) => {
                return Delivery {
                    ok: true,
                    attempts: attempt,
                    error: None,
                };
            }
            Err(e) => error = Some(e),
        }
        if attempt <= n.retries {
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2);
        }
    }
    Delivery {
        ok: false,
        attempts: n.retries + 1,
        error,
    }
}

fn post(url: &str, event: &Value, timeout: Duration) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(true)
        .build()
        .into();
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    agent
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("runner/", env!("CARGO_PKG_VERSION")))
        .send(&body[..])
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn run_command(
    t: &crate::workflow::template::Template,
    event: &Value,
    dir: &Path,
    timeout: Duration,
) -> Result<(), String> {
    // A field this kind of event does not have (`${event.item_id}` of a job's success) is
    // empty, so one command can serve several events.
    let lookup = |var: &crate::workflow::template::VarRef| -> Option<Cow<'static, Value>> {
        (var.root == "event").then(|| {
            Cow::Owned(
                resolve_path(event, &var.path)
                    .cloned()
                    .unwrap_or_else(|| Value::String(String::new())),
            )
        })
    };
    let script = t
        .render_shell(&lookup)
        .map_err(|e| format!("cannot render the command: {e}"))?;
    let json = serde_json::to_string(event).map_err(|e| e.to_string())?;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("RUNNER_EVENT", &json)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start /bin/sh: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A writer thread: a command that does not read its stdin must not block us.
        std::thread::spawn(move || {
            let _ = stdin.write_all(json.as_bytes());
        });
    }
    let stderr = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = s.by_ref().take(64 * 1024).read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for the command: {e}")),
        }
    };
    let Some(status) = status else {
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        return Err(format!(
            "timed out after {}",
            humantime::format_duration(timeout)
        ));
    };
    if status.success() {
        return Ok(());
    }
    let tail = stderr
        .and_then(|h| h.join().ok())
        .map(|s| s.trim().lines().last().unwrap_or("").to_owned())
        .filter(|s| !s.is_empty())
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    Err(format!("the command failed ({status}){tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::spec::NotifyOn;
    use crate::workflow::template::Template;

    fn command(text: &str, retries: u32) -> Notify {
        Notify {
            on: vec![NotifyOn::Failure],
            target: Target::Command(Template::parse(text, &|r| r == "event").unwrap()),
            timeout: Duration::from_secs(5),
            retries,
            backoff: Duration::from_millis(1),
        }
    }

    #[test]
    fn a_command_gets_the_event_on_stdin_and_as_escaped_variables() {
        let d = tempfile::tempdir().unwrap();
        let ev = serde_json::json!({"job_id": "j; touch pwned", "n": 1});
        let n = command("cat > got.json; echo ${event.job_id} > id.txt", 0);
        assert_eq!(
            deliver(&n, &ev, d.path()),
            Delivery {
                ok: true,
                attempts: 1,
                error: None
            }
        );
        let got: Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join("got.json")).unwrap())
                .unwrap();
        assert_eq!(got, ev);
        let id = std::fs::read_to_string(d.path().join("id.txt")).unwrap();
        assert_eq!(id.trim(), "j; touch pwned");
        assert!(!d.path().join("pwned").exists());
    }

    #[test]
    fn a_failing_command_is_retried_then_reported() {
        let d = tempfile::tempdir().unwrap();
        let n = command("echo x >> tries; echo broken >&2; exit 3", 2);
        let r = deliver(&n, &serde_json::json!({}), d.path());
        assert!(!r.ok);
        assert_eq!(r.attempts, 3);
        let error = r.error.unwrap();
        assert!(error.contains("broken"), "{error}");
        let tries = std::fs::read_to_string(d.path().join("tries")).unwrap();
        assert_eq!(tries.lines().count(), 3);
    }

    #[test]
    fn a_hanging_command_is_killed_at_its_timeout() {
        let d = tempfile::tempdir().unwrap();
        let mut n = command("sleep 30", 0);
        n.timeout = Duration::from_millis(200);
        let t = Instant::now();
        let r = deliver(&n, &serde_json::json!({}), d.path());
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("timed out"));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

//! Running one shell command in its own process group, with a time limit, cancellation and
//! a clean kill (TERM to the group, a grace period, then KILL). No process of a step
//! outlives it: background children left behind when the shell exits are killed too, and
//! if the runner itself dies, the [`watchdog`] kills the group. Resource limits are applied
//! right after the spawn, and what the step used comes back with its result.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use crate::engine::controls::KillSwitch;
use crate::engine::limits::LimitHit;
use crate::engine::limits::classify::Ending;
use crate::engine::limits::enforcer::{Applied, StepLimits};
use crate::engine::process::child::ShellChild;
use crate::engine::process::direct;
use crate::engine::process::launch::Launch;
use crate::engine::process::output::{Sink, StreamTarget};
use crate::engine::process::reaper;
use crate::engine::process::watchdog;
use crate::state::records::Usage;

/// One `sh -c` invocation, or one command line run without a shell.
#[derive(Debug, Clone)]
pub struct ShellCommand {
    /// The script for `sh -c`; with `argv`, the command line as text (for messages only).
    pub script: String,
    /// A command line run as is, without a shell (a Claude step); empty: `script` runs.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Added to (and overriding) the runner's own environment.
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub stdout: StreamTarget,
    pub stderr: StreamTarget,
    /// Told the process group id and its leader's start time right after spawning (so a
    /// crash can be cleaned up by the next run).
    pub on_spawn: Option<SpawnHook>,
    /// How a cancelled command is killed (the forwarded signal after an interrupt) and
    /// "KILL at once" (second Ctrl-C).
    pub kill: KillSwitch,
    /// Resource limits (`map.resources`), applied right after the spawn.
    pub limits: Option<StepLimits>,
}

/// A callback receiving `(pgid, leader start time in clock ticks)`.
#[derive(Clone)]
pub struct SpawnHook(pub std::sync::Arc<dyn Fn(i32, u64) + Send + Sync>);

impl std::fmt::Debug for SpawnHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpawnHook")
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Success,
    Code(i32),
    Signal(i32),
    /// The time limit ran out and the group was killed.
    Timeout(Duration),
    /// The command could not be started.
    Spawn(String),
    /// Cancelled (stop/SIGINT) and the group was killed.
    Cancelled,
    /// A resource limit (`map.resources`) ended it.
    Limit(LimitHit),
}

impl Exit {
    fn ending(&self) -> Ending {
        match self {
            Exit::Success => Ending::Success,
            Exit::Code(c) => Ending::Code(*c),
            Exit::Signal(s) => Ending::Signal(*s),
            _ => Ending::Other,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShellResult {
    pub exit: Exit,
    /// Captured stdout (empty unless `stdout.capture`).
    pub stdout: Vec<u8>,
    pub stderr_tail: String,
    pub duration: Duration,
    /// What the step used (docs/resources.md); `None` when it was not measured.
    pub usage: Option<Usage>,
}

/// How long to wait for output pipes to close once the shell itself has exited, before
/// the leftover background processes of its group are killed.
const LINGER: Duration = Duration::from_millis(100);

/// Run `cmd` to completion (or timeout/cancellation).
pub async fn run_shell(cmd: ShellCommand, cancel: &CancellationToken) -> ShellResult {
    let started = Instant::now();
    let mut out = Sink::new(cmd.stdout.clone());
    let mut err = Sink::new(cmd.stderr.clone());
    let failed = |message: String| ShellResult {
        exit: Exit::Spawn(message),
        stdout: Vec::new(),
        stderr_tail: String::new(),
        duration: started.elapsed(),
        usage: None,
    };
    let prepared = match cmd.limits.as_ref().map(StepLimits::prepare).transpose() {
        Ok(p) => p,
        Err(e) => return failed(format!("cannot create the step's cgroup: {e}")),
    };
    let mut child = match spawn(&cmd) {
        Ok(c) => c,
        Err(e) => {
            let program = cmd.argv.first().map_or("/bin/sh", String::as_str);
            return failed(format!(
                "cannot run {program} in {}: {e}",
                cmd.cwd.display()
            ));
        }
    };
    let pgid = child.id();
    let limits: Option<Applied> = match prepared.map(|p| p.attach(pgid)).transpose() {
        Ok(a) => a,
        Err(message) => {
            let now = CancellationToken::new();
            now.cancel();
            kill_group(
                pgid,
                &mut child,
                Signal::SIGKILL,
                Duration::ZERO,
                false,
                &now,
            )
            .await;
            return failed(message);
        }
    };
    // The limits are in place: let the gated shell run the step.
    child.open_gate();
    let start = child.start_ticks();
    watchdog::track(pgid, start);
    if let Some(hook) = &cmd.on_spawn {
        (hook.0)(pgid, start);
    }
    let kill_now = cmd.kill.now.clone();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let deadline = cmd.timeout.map(|t| tokio::time::Instant::now() + t);

    let mut exit = None;
    let mut out_open = stdout.is_some();
    let mut err_open = stderr.is_some();
    let mut out_buf = vec![0u8; 8192];
    let mut err_buf = vec![0u8; 8192];
    let mut linger_until: Option<tokio::time::Instant> = None;
    loop {
        if exit.is_some() && !out_open && !err_open {
            break;
        }
        tokio::select! {
            n = read_some(&mut stdout, &mut out_buf), if out_open => match n {
                Some(n) => out.feed(&out_buf[..n]),
                None => out_open = false,
            },
            n = read_some(&mut stderr, &mut err_buf), if err_open => match n {
                Some(n) => err.feed(&err_buf[..n]),
                None => err_open = false,
            },
            status = child.wait(), if exit.is_none() => {
                exit = Some(match status {
                    Ok(w) => status_exit(w.status),
                    Err(e) => Exit::Spawn(format!("waiting for the command failed: {e}")),
                });
                linger_until = Some(tokio::time::Instant::now() + LINGER);
            }
            _ = sleep_until_opt(linger_until), if linger_until.is_some() => {
                // The shell is gone but something in its group still holds the pipes.
                kill_group(pgid, &mut child, Signal::SIGTERM, cmd.kill_grace, true, &kill_now).await;
                linger_until = None;
                out_open = false;
                err_open = false;
            }
            _ = sleep_until_opt(deadline), if exit.is_none() && deadline.is_some() => {
                kill_group(pgid, &mut child, Signal::SIGTERM, cmd.kill_grace, false, &kill_now).await;
                exit = Some(Exit::Timeout(cmd.timeout.unwrap_or_default()));
                drain_after_kill(&mut stdout, &mut out, &mut stderr, &mut err).await;
                break;
            }
            _ = cancel.cancelled(), if exit.is_none() => {
                let (first, grace) = cmd.kill.plan(cmd.kill_grace);
                kill_group(pgid, &mut child, first, grace, false, &kill_now).await;
                exit = Some(Exit::Cancelled);
                drain_after_kill(&mut stdout, &mut out, &mut stderr, &mut err).await;
                break;
            }
        }
    }
    watchdog::untrack(pgid);
    let mut exit = exit.unwrap_or(Exit::Cancelled);
    let stderr_tail = err.tail_text();
    let mut usage = child.wait().await.ok().map(|w| w.usage);
    if let Some(applied) = limits {
        let (hit, measured) = applied.finish(exit.ending(), usage, &stderr_tail);
        usage = measured;
        if let Some(hit) = hit {
            exit = Exit::Limit(hit);
        }
    }
    ShellResult {
        exit,
        stdout: std::mem::take(&mut out.captured),
        stderr_tail,
        duration: started.elapsed(),
        usage,
    }
}

/// A limited step starts as this gate: it waits for one line on stdin (sent once its limits
/// are in place), then becomes the step's shell with stdin from /dev/null. So nothing the
/// step runs escapes limits that are set after the spawn; `$1` is the script, unchanged.
const GATE: &str = "IFS= read -r _ || exit 125; exec /bin/sh -c \"$1\" </dev/null";
/// The gate of a limited command line: it becomes the command (`"$@"`).
const GATE_ARGV: &str = "IFS= read -r _ || exit 125; exec \"$@\" </dev/null";

fn spawn(cmd: &ShellCommand) -> std::io::Result<ShellChild> {
    if let Some((program, args)) = cmd.argv.split_first() {
        let mut c;
        if cmd.limits.is_some() {
            c = Launch::new("/bin/sh");
            c.args(["-c", GATE_ARGV, "/bin/sh"])
                .args(&cmd.argv)
                .stdin_piped();
            if cmd.cwd.is_absolute() {
                c.env("PWD", &cmd.cwd);
            }
        } else {
            c = direct_command(program, args, cmd);
        }
        return spawn_in_group(c, cmd);
    }
    // A simple command runs without the shell (a limited one needs the gate); if it cannot
    // be started (not found, not executable, a script without `#!`), the shell runs it, to
    // fail or succeed as it would.
    if cmd.limits.is_none()
        && let Some(argv) = direct::simple_argv(&cmd.script)
        && let Some((program, args)) = argv.split_first()
        && let Ok(child) = spawn_in_group(direct_command(program, args, cmd), cmd)
    {
        return Ok(child);
    }
    let mut c = Launch::new("/bin/sh");
    if cmd.limits.is_some() {
        c.args(["-c", GATE, "/bin/sh"])
            .arg(&cmd.script)
            .stdin_piped();
    } else {
        c.arg("-c").arg(&cmd.script);
    }
    spawn_in_group(c, cmd)
}

/// `program args...` run without a shell, as the shell would have run it: looked up in
/// `PATH`, stdin from /dev/null, and `PWD` set to the directory it runs in.
fn direct_command(program: &str, args: &[String], cmd: &ShellCommand) -> Launch {
    let mut c = Launch::new(program);
    c.args(args);
    if cmd.cwd.is_absolute() {
        c.env("PWD", &cmd.cwd);
    }
    c
}

/// Spawn `c` in its own process group, with the step's directory, environment and pipes.
fn spawn_in_group(mut c: Launch, cmd: &ShellCommand) -> std::io::Result<ShellChild> {
    // Marks the step's processes for the watchdog, should the runner die before it
    // learns the group.
    if let Some((name, token)) = watchdog::marker() {
        c.env(name, token);
    }
    c.current_dir(&cmd.cwd);
    for (k, v) in &cmd.env {
        c.env(k, v);
    }
    ShellChild::spawn(&c)
}

async fn read_some<R: AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    let r = r.as_mut()?;
    match r.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Read whatever is left in the pipes after the group was killed (bounded in time).
async fn drain_after_kill<A, B>(a: &mut Option<A>, sa: &mut Sink, b: &mut Option<B>, sb: &mut Sink)
where
    A: AsyncRead + Unpin,
    B: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; 8192];
    let drain = async {
        while let Some(n) = read_some(a, &mut buf).await {
            sa.feed(&buf[..n]);
        }
        while let Some(n) = read_some(b, &mut buf).await {
            sb.feed(&buf[..n]);
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
}

fn status_exit(s: std::process::ExitStatus) -> Exit {
    match (s.code(), s.signal()) {
        (Some(0), _) => Exit::Success,
        (Some(c), _) => Exit::Code(c),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    }
}

fn group_alive(pgid: i32) -> bool {
    reaper::reap_orphans(pgid);
    pgid > 0 && killpg(Pid::from_raw(pgid), None).is_ok() && reaper::group_has_live_members(pgid)
}

/// Send `first` (TERM, or the interrupting signal) to the group, wait up to `grace` for it
/// to empty, then KILL what is left; reap the leader. With `leader_done`, the shell already
/// exited (only stragglers remain).
pub async fn kill_group(
    pgid: i32,
    child: &mut ShellChild,
    first: Signal,
    grace: Duration,
    leader_done: bool,
    kill_now: &CancellationToken,
) {
    if pgid <= 0 {
        return;
    }
    let _ = killpg(Pid::from_raw(pgid), first);
    let deadline = tokio::time::Instant::now() + grace;
    if !leader_done {
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, child.wait()) => {}
            _ = kill_now.cancelled() => {}
        }
    }
    let mut pause = Duration::from_millis(5);
    while !kill_now.is_cancelled() && group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = kill_now.cancelled() => {}
        }
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    if group_alive(pgid) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    let _ = child.wait().await;
    reaper::reap_orphans(pgid);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(script: &str) -> ShellCommand {
        ShellCommand {
            script: script.into(),
            argv: Vec::new(),
            cwd: std::env::temp_dir(),
            env: vec![("GREETING".into(), "hi there".into())],
            timeout: None,
            kill_grace: Duration::from_millis(500),
            stdout: StreamTarget {
                capture: true,
                ..Default::default()
            },
            stderr: StreamTarget::default(),
            on_spawn: None,
            kill: KillSwitch::default(),
            limits: None,
        }
    }

    fn read_pid(path: &std::path::Path) -> i32 {
        std::fs::read_to_string(path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Alive and not a zombie (an orphan's zombie may linger when init does not reap).
    fn running(pid: i32) -> bool {
        reaper::stat_of(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
    }

    #[tokio::test]
    async fn success_capture_and_env() {
        let r = run_shell(
            cmd("echo \"$GREETING\"; echo oops >&2"),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(r.exit, Exit::Success);
        assert_eq!(r.stdout, b"hi there\n");
        assert_eq!(r.stderr_tail, "oops");
    }

    #[tokio::test]
    async fn nonzero_exit_and_signal() {
        let c = CancellationToken::new();
        assert_eq!(run_shell(cmd("exit 3"), &c).await.exit, Exit::Code(3));
        assert_eq!(run_shell(cmd("kill -9 $$"), &c).await.exit, Exit::Signal(9));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        let mut c = cmd(&format!(
            "sleep 30 & echo $! > {}; sleep 30",
            pidfile.display()
        ));
        c.timeout = Some(Duration::from_millis(300));
        let r = run_shell(c, &CancellationToken::new()).await;
        assert_eq!(r.exit, Exit::Timeout(Duration::from_millis(300)));
        let pid = read_pid(&pidfile);
        assert!(!running(pid), "background child survived");
    }

    #[tokio::test]
    async fn background_leftovers_are_killed_after_exit() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        let c = cmd(&format!(
            "sleep 30 & echo $! > {}; exit 0",
            pidfile.display()
        ));
        let started = Instant::now();
        let r = run_shell(c, &CancellationToken::new()).await;
        assert_eq!(r.exit, Exit::Success);
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = read_pid(&pidfile);
        assert!(!running(pid), "background child survived");
    }

    #[tokio::test]
    async fn cancel_kills() {
        let c = CancellationToken::new();
        let c2 = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c2.cancel();
        });
        let r = run_shell(cmd("sleep 30"), &c).await;
        assert_eq!(r.exit, Exit::Cancelled);
    }

    #[tokio::test]
    async fn missing_cwd_is_a_spawn_error() {
        let mut c = cmd("true");
        c.cwd = "/nonexistent/dir/for/runner".into();
        assert!(matches!(
            run_shell(c, &CancellationToken::new()).await.exit,
            Exit::Spawn(_)
        ));
    }
}

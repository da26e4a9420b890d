//! Starting a step's process: `clone(CLONE_VM | CLONE_VFORK)` and `execve`, the way glibc's
//! `posix_spawn` does it, minus what made that the largest cost of dispatch
//! (docs/performance.md §3): its child resets the disposition of all 64 signals (about 120
//! `rt_sigaction` calls while the runner waits), it maps and unmaps a stack per spawn, and
//! `std::process::Command` copies the whole environment into a map and opens /dev/null for
//! each one. Here the signals with a handler are known to the parent (looked up at most once
//! a second), the child's stack is reused, /dev/null is opened once, the environment is
//! prepared by [`Launch::prepare`], and the kernel hands back a pidfd with the pid.
//!
//! The child shares the runner's memory until it executes the program, so it makes only
//! system calls on data prepared before: no allocation, no lock, no panic. The runner's
//! thread is suspended meanwhile (`CLONE_VFORK`), and every signal stays blocked in the
//! child until its handlers are reset to the default.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::engine::process::launch::Launch;

/// A started process: its stdout and stderr are pipes, it leads its own process group.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    /// From `CLONE_PIDFD`; `None` where the kernel has none (before Linux 5.2).
    pub pidfd: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Its start time in clock ticks since boot, as `/proc/<pid>/stat` field 22 has it,
    /// when the clock tells it exactly (see [`start_ticks`]).
    pub start_ticks: Option<u64>,
}

/// Start `l` (see the module documentation).
pub fn spawn(l: &Launch) -> io::Result<Spawned> {
    let prepared = l.prepare()?;
    let argv = prepared.argv.pointers();
    let envp = prepared.envp.pointers();
    let paths = prepared.paths.pointers();
    let (stdout, out_w) = pipe()?;
    let (stderr, err_w) = pipe()?;
    let (stdin, in_r) = if l.wants_stdin() {
        let (r, w) = pipe()?;
        (Some(w), Some(r))
    } else {
        (None, None)
    };
    let stdin_fd = match &in_r {
        Some(r) => r.as_raw_fd(),
        None => dev_null()?,
    };
    let reset = handled_signals();
    let mut child = Child {
        paths: paths.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: prepared
            .cwd
            .as_ref()
            .map_or(std::ptr::null(), |c| c.as_ptr()),
        fds: [stdin_fd, out_w.as_raw_fd(), err_w.as_raw_fd()],
        reset: reset.signals,
        reset_len: reset.len,
        // SAFETY: sigset_t is plain data; it is filled by pthread_sigmask below.
        mask: unsafe { std::mem::zeroed() },
        started_ns: 0,
        error: 0,
    };
    let before = boot_ns();
    let (pid, pidfd) = clone_blocked(&mut child)?;
    // SAFETY: the child wrote these before it executed the program or exited; CLONE_VFORK
    // returned only then, and the child no longer runs in this memory.
    let (error, started_ns) = unsafe {
        (
            std::ptr::read_volatile(&child.error),
            std::ptr::read_volatile(&child.started_ns),
        )
    };
    if error != 0 {
        // It exited without running the program: collect it, report why.
        let mut status = 0;
        // SAFETY: waitpid on our own child, which has exited.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(Spawned {
        pid,
        pidfd,
        stdin,
        stdout,
        stderr,
        start_ticks: start_ticks(before, started_ns, clock_ticks()),
    })
}

/// What the child needs, all prepared by the parent.
#[repr(C)]
struct Child {
    paths: *const *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    /// Becomes the child's 0, 1 and 2.
    fds: [RawFd; 3],
    reset: [libc::c_int; MAX_SIGNALS],
    reset_len: usize,
    /// The signal mask the program starts with (the parent's own).
    mask: libc::sigset_t,
    /// Written by the child: `CLOCK_BOOTTIME` when it began, and the `errno` that stopped it.
    started_ns: u64,
    error: libc::c_int,
}

const STACK_WORDS: usize = 64 * 1024 / 16;

thread_local! {
    /// The child's stack (the parent is suspended while the child uses it).
    static STACK: std::cell::RefCell<Box<[u128]>> =
        std::cell::RefCell::new(vec![0u128; STACK_WORDS].into_boxed_slice());
}

/// Clone with every signal blocked (restored in the parent after, in the child before exec).
fn clone_blocked(child: &mut Child) -> io::Result<(i32, Option<OwnedFd>)> {
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        // SAFETY: one past the end of the stack buffer (stacks grow down), 16-byte aligned.
        let top = unsafe { stack.as_mut_ptr().add(stack.len()) }.cast::<c_void>();
        // SAFETY: plain sigset_t values, filled by sigfillset / pthread_sigmask.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to sigset_t values.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut child.mask);
        }
        let arg = (child as *mut Child).cast::<c_void>();
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
        let mut pidfd: libc::c_int = -1;
        // SAFETY: `child_main` runs on `top` with `arg`, which outlive the call: CLONE_VFORK
        // suspends this thread until the child executed the program or exited. With
        // CLONE_PIDFD the kernel writes the pidfd to `pidfd`.
        let mut pid = unsafe {
            libc::clone(
                child_main,
                top,
                flags | libc::CLONE_PIDFD,
                arg,
                &mut pidfd as *mut libc::c_int,
            )
        };
        let mut err = io::Error::last_os_error();
        let lack_of_resources = matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM));
        if pid < 0 && !lack_of_resources {
            // A kernel without CLONE_PIDFD (EINVAL), or a sandbox that refuses it.
            pidfd = -1;
            // SAFETY: as above, without the pidfd.
            pid = unsafe { libc::clone(child_main, top, flags, arg) };
            err = io::Error::last_os_error();
        }
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &child.mask, std::ptr::null_mut()) };
        if pid < 0 {
            return Err(err);
        }
        // SAFETY: the kernel created this descriptor for us and nothing else owns it.
        let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
        Ok((pid, pidfd))
    })
}

/// The child, between clone and exec. Only system calls (async-signal-safe libc wrappers)
/// on the parent's prepared data; no allocation, no indexing that could panic.
extern "C" fn child_main(arg: *mut c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Child`, alive and not touched by the suspended parent.
    let c = unsafe { &mut *arg.cast::<Child>() };
    // SAFETY: every call gets valid pointers from the prepared data; see the module docs.
    unsafe {
        let mut now: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now);
        c.started_ns = now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64;
        // Handlers belong to the runner's memory: back to the default before unblocking.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in c.reset.iter().take(c.reset_len) {
            libc::sigaction(*sig, &dfl, std::ptr::null_mut());
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(c);
        }
        for (target, fd) in c.fds.iter().enumerate() {
            let target = target as libc::c_int;
            let ok = if *fd == target {
                // Already in place: only keep it open across exec.
                libc::fcntl(*fd, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(*fd, target) == target
            };
            if !ok {
                return fail(c);
            }
        }
        if !c.cwd.is_null() && libc::chdir(c.cwd) != 0 {
            return fail(c);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &c.mask, std::ptr::null_mut());
        // As execvp: try each path; "permission denied" wins over "not found".
        let mut error = libc::ENOENT;
        let mut denied = false;
        let mut path = c.paths;
        while !(*path).is_null() {
            libc::execve(*path, c.argv, c.envp);
            match *libc::__errno_location() {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                e => {
                    error = e;
                    break;
                }
            }
            path = path.add(1);
        }
        c.error = if denied && error == libc::ENOENT {
            libc::EACCES
        } else {
            error
        };
        libc::_exit(127)
    }
}

/// Record `errno` and exit (the parent reports it).
unsafe fn fail(c: &mut Child) -> libc::c_int {
    // SAFETY: errno of this thread; _exit never returns.
    unsafe {
        let e = *libc::__errno_location();
        c.error = if e == 0 { libc::EIO } else { e };
        libc::_exit(127)
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// /dev/null, opened once (read and write, close-on-exec), for every child's stdin.
fn dev_null() -> io::Result<RawFd> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    Ok(NULL.get_or_init(|| OwnedFd::from(file)).as_raw_fd())
}

const MAX_SIGNALS: usize = 65;

/// The signals the child must reset to the default.
#[derive(Clone, Copy)]
struct Handled {
    signals: [libc::c_int; MAX_SIGNALS],
    len: usize,
}

/// SIGPIPE (ignored by Rust programs, default for what they start, as `std` does) and every
/// signal that has a handler in this process, looked up at most once a second: a handler
/// installed since runs in the child only if that signal reaches it in the microseconds
/// between its unblocking and the exec.
fn handled_signals() -> Handled {
    static CACHE: Mutex<Option<(Instant, Handled)>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    match *cache {
        Some((at, h)) if at.elapsed().as_secs() < 1 => h,
        _ => {
            let h = look_up_handlers();
            *cache = Some((Instant::now(), h));
            h
        }
    }
}

fn look_up_handlers() -> Handled {
    let mut h = Handled {
        signals: [0; MAX_SIGNALS],
        len: 0,
    };
    let mut add = |sig| {
        if h.len < MAX_SIGNALS {
            h.signals[h.len] = sig;
            h.len += 1;
        }
    };
    add(libc::SIGPIPE);
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGPIPE || sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a query (no new action) into a zeroed sigaction.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer; glibc refuses its internal signals (EINVAL), skipped here.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } == 0
            && old.sa_sigaction != libc::SIG_DFL
            && old.sa_sigaction != libc::SIG_IGN
        {
            add(sig);
        }
    }
    h
}

fn boot_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Clock ticks per second (`USER_HZ`), as /proc reports times.
fn clock_ticks() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|hz| *hz > 0)
            .map_or(100, |hz| hz as u64)
    })
}

/// The kernel stamps a new process with `CLOCK_BOOTTIME` between `before` (read by the
/// parent before clone) and `started` (read by the child first thing), and /proc shows it
/// as whole clock ticks; when both fall in the same tick, that tick is the start time.
/// Otherwise (rarely: the two are microseconds apart) `None`, and /proc is read.
pub fn start_ticks(before: u64, started: u64, hz: u64) -> Option<u64> {
    let tick = 1_000_000_000 / hz.max(1);
    (started >= before && before / tick == started / tick).then_some(before / tick)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(fd: OwnedFd) -> String {
        use std::io::Read;
        let mut s = String::new();
        std::fs::File::from(fd).read_to_string(&mut s).unwrap();
        s
    }

    fn wait(pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        libc::WEXITSTATUS(status)
    }

    #[test]
    fn runs_in_its_group_and_directory_with_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Launch::new("sh");
        l.arg("-c")
            .arg("echo \"$PWD $RUNNER_VFORK_T\"; pwd -P; cut -d' ' -f5 /proc/$$/stat; echo err >&2; exit 3")
            .env("RUNNER_VFORK_T", "x y")
            .env("PWD", dir.path())
            .current_dir(dir.path());
        let s = spawn(&l).unwrap();
        assert!(s.pidfd.is_some());
        let (out, err) = (read_all(s.stdout), read_all(s.stderr));
        assert_eq!(wait(s.pid), 3);
        let real = dir.path().canonicalize().unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("{} x y", dir.path().display()));
        assert_eq!(lines[1], real.display().to_string());
        assert_eq!(lines[2].trim(), s.pid.to_string());
        assert_eq!(err, "err\n");
    }

    #[test]
    fn stdin_is_a_pipe_or_dev_null_and_signals_are_default() {
        let mut l = Launch::new("/bin/sh");
        l.arg("-c").arg("read -r x; echo \"got $x\"").stdin_piped();
        let s = spawn(&l).unwrap();
        let mut w = std::fs::File::from(s.stdin.unwrap());
        std::io::Write::write_all(&mut w, b"hello\n").unwrap();
        drop(w);
        assert_eq!(read_all(s.stdout), "got hello\n");
        assert_eq!(wait(s.pid), 0);

        // No signal blocked; SIGPIPE (which Rust ignores) is back to the default.
        let s = spawn(Launch::new("cat").arg("/proc/self/status")).unwrap();
        let status = read_all(s.stdout);
        assert_eq!(wait(s.pid), 0);
        let mask = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        assert_eq!(mask("SigBlk:"), 0, "{status}");
        assert_eq!(mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{status}");

        let s = spawn(Launch::new("cat").arg("-")).unwrap();
        assert_eq!(read_all(s.stdout), "");
        assert_eq!(wait(s.pid), 0);
    }

    #[test]
    fn errors_come_back() {
        let e = spawn(&Launch::new("runner-no-such-program-x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "echo hi\n").unwrap();
        // Not executable.
        let e = spawn(&Launch::new(&script)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        // Executable but no `#!`: the caller falls back to the shell.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = spawn(&Launch::new(&script)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOEXEC));
        let e = spawn(Launch::new("true").current_dir(dir.path().join("gone"))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn start_time_matches_proc() {
        // A spawn straddling a tick boundary has no start time (about 1 in 1,000): most of
        // the 20 must have one, and every one must be /proc's.
        let mut known = 0;
        for _ in 0..20 {
            let s = spawn(Launch::new("sleep").arg("1")).unwrap();
            let stat = crate::engine::process::reaper::stat_of(s.pid).unwrap();
            if let Some(t) = s.start_ticks {
                assert_eq!(t, stat.start);
                known += 1;
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(s.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            wait(s.pid);
        }
        assert!(
            known >= 15,
            "only {known} of 20 spawns knew their start time"
        );
    }

    #[test]
    fn threads_spawn_at_once() {
        // Each thread has its own child stack; the children's outputs never mix.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let s = spawn(Launch::new("echo").arg(format!("{t}-{i}"))).unwrap();
                        assert_eq!(read_all(s.stdout), format!("{t}-{i}\n"));
                        assert_eq!(wait(s.pid), 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn start_ticks_only_within_one_tick() {
        assert_eq!(start_ticks(1_234_000_000, 1_235_000_000, 100), Some(123));
        assert_eq!(start_ticks(1_239_999_000, 1_240_000_100, 100), None);
        assert_eq!(start_ticks(5, 4, 100), None);
    }

    #[test]
    fn sigpipe_and_handlers_are_reset() {
        let h = look_up_handlers();
        let sigs = &h.signals[..h.len];
        assert!(sigs.contains(&libc::SIGPIPE));
        // std installs a SIGSEGV handler (stack overflow reports) in every Rust program.
        assert!(sigs.contains(&libc::SIGSEGV), "{sigs:?}");
        assert!(!sigs.contains(&libc::SIGKILL));
    }
}

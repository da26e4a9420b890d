//! What a step's process is started with (program, arguments, directory, environment,
//! stdin) and its preparation into the NUL-terminated C arrays that `execve` takes. Built
//! in the parent before the spawn, so the child of [`super::vfork`] only makes system calls.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A process to start, like `std::process::Command` (see [`super::vfork::spawn`] for what
/// is fixed: piped stdout and stderr, its own process group).
#[derive(Debug, Clone)]
pub struct Launch {
    program: OsString,
    args: Vec<OsString>,
    /// Added to (and overriding) the runner's environment; the last value of a name wins.
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdin_piped: bool,
}

impl Launch {
    /// `program` is looked up in `PATH` (the child's) unless it contains a `/`.
    pub fn new(program: impl AsRef<OsStr>) -> Launch {
        Launch {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdin_piped: false,
        }
    }

    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Launch {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Launch {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Launch {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Launch {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Give the child a pipe as stdin (the default is /dev/null).
    pub fn stdin_piped(&mut self) -> &mut Launch {
        self.stdin_piped = true;
        self
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }

    pub fn wants_stdin(&self) -> bool {
        self.stdin_piped
    }

    /// The value of `name` in the child's environment.
    fn child_var(&self, name: &[u8]) -> Option<&[u8]> {
        let own = self.env.iter().rev().find(|(k, _)| k.as_bytes() == name);
        match own {
            Some((_, v)) => Some(v.as_bytes()),
            None => base_env().get(name),
        }
    }

    /// The arrays for `execve`, the directory and the paths to try, in order.
    pub fn prepare(&self) -> io::Result<Prepared> {
        let mut argv = CArray::default();
        argv.push(&[self.program.as_bytes()])?;
        for a in &self.args {
            argv.push(&[a.as_bytes()])?;
        }
        let mut envp = base_env().without(|k| self.env.iter().any(|(o, _)| o.as_bytes() == k));
        for (i, (k, v)) in self.env.iter().enumerate() {
            // A name set twice: only its last value.
            if !self.env[i + 1..].iter().any(|(o, _)| o == k) {
                envp.push(&[k.as_bytes(), b"=", v.as_bytes()])?;
            }
        }
        let mut paths = CArray::default();
        let program = self.program.as_bytes();
        if program.contains(&b'/') {
            paths.push(&[program])?;
        } else if !program.is_empty() {
            let search = self.child_var(b"PATH");
            for dir in search.unwrap_or(b"/bin:/usr/bin").split(|b| *b == b':') {
                // An empty entry is the current directory, as for the shell.
                let dir = if dir.is_empty() { &b"."[..] } else { dir };
                paths.push(&[dir, b"/", program])?;
            }
        }
        let cwd = match &self.cwd {
            Some(d) => Some(c_string(d.as_os_str().as_bytes())?),
            None => None,
        };
        Ok(Prepared {
            argv,
            envp,
            paths,
            cwd,
        })
    }
}

/// The runner's environment as `NAME=value` strings, read at the first spawn: the runner
/// never changes its own environment once it runs commands (`runner worker` removes one
/// variable before). Each spawn copies it in one piece.
fn base_env() -> &'static BaseEnv {
    static BASE: OnceLock<BaseEnv> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut vars = CArray::default();
        let mut name_lens = Vec::new();
        for (k, v) in std::env::vars_os() {
            // The OS hands out no NUL inside a variable; a failed push is skipped anyway.
            if vars.push(&[k.as_bytes(), b"=", v.as_bytes()]).is_ok() {
                name_lens.push(k.len());
            }
        }
        BaseEnv { vars, name_lens }
    })
}

struct BaseEnv {
    vars: CArray,
    /// The length of each variable's name.
    name_lens: Vec<usize>,
}

impl BaseEnv {
    fn entries(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let bytes = &self.vars.bytes;
        (self.vars.starts.iter().zip(&self.name_lens)).map(|(&s, &n)| (s, &bytes[s..s + n]))
    }

    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        let (start, _) = self.entries().find(|(_, k)| *k == name)?;
        let value = &self.vars.bytes[start + name.len() + 1..];
        Some(&value[..value.iter().position(|b| *b == 0).unwrap_or(value.len())])
    }

    /// A copy without the variables whose name `skip` accepts.
    fn without(&self, skip: impl Fn(&[u8]) -> bool) -> CArray {
        let mut bytes = Vec::with_capacity(self.vars.bytes.len() + 256);
        bytes.extend_from_slice(&self.vars.bytes);
        let mut starts = Vec::with_capacity(self.vars.starts.len() + 4);
        starts.extend(self.entries().filter(|(_, k)| !skip(k)).map(|(s, _)| s));
        CArray { bytes, starts }
    }
}

fn c_string(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an argument, variable or path holds a NUL byte",
        )
    })
}

/// NUL-terminated strings in one buffer.
#[derive(Debug, Default)]
pub struct CArray {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl CArray {
    /// Append the concatenation of `parts` as one string.
    fn push(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if parts.iter().any(|p| p.contains(&0)) {
            return Err(c_string(b"\0").unwrap_err());
        }
        self.starts.push(self.bytes.len());
        for p in parts {
            self.bytes.extend_from_slice(p);
        }
        self.bytes.push(0);
        Ok(())
    }

    /// The null-terminated pointer array; valid while `self` is neither moved nor changed.
    pub fn pointers(&self) -> Vec<*const libc::c_char> {
        let base = self.bytes.as_ptr();
        self.starts
            .iter()
            // SAFETY: every start is an offset inside `bytes`.
            .map(|&s| unsafe { base.add(s) }.cast::<libc::c_char>())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    }

    #[cfg(test)]
    fn strings(&self) -> Vec<String> {
        self.starts
            .iter()
            .map(|&s| {
                let end = s + self.bytes[s..].iter().position(|b| *b == 0).unwrap();
                String::from_utf8_lossy(&self.bytes[s..end]).into_owned()
            })
            .collect()
    }
}

/// A [`Launch`] as C data.
#[derive(Debug)]
pub struct Prepared {
    pub argv: CArray,
    pub envp: CArray,
    /// Where to look for the program, in order (`PATH`, or the program's own path).
    pub paths: CArray,
    pub cwd: Option<CString>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_env_and_path_search() {
        let mut l = Launch::new("prog");
        l.args(["a b", "c"])
            .env("PATH", "/x::/y")
            .env("RUNNER_T1", "1")
            .env("RUNNER_T1", "2");
        let p = l.prepare().unwrap();
        assert_eq!(p.argv.strings(), ["prog", "a b", "c"]);
        assert_eq!(p.paths.strings(), ["/x/prog", "./prog", "/y/prog"]);
        let env = p.envp.strings();
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        assert!(env.contains(&"PATH=/x::/y".to_string()));
        assert!(env.contains(&"RUNNER_T1=2".to_string()));
        assert!(!env.contains(&"RUNNER_T1=1".to_string()));
        // The runner's own environment is passed on.
        let (k, v) = std::env::vars().find(|(k, _)| k != "PATH").unwrap();
        assert!(env.contains(&format!("{k}={v}")));
        assert_eq!(p.envp.pointers().len(), env.len() + 1);
    }

    #[test]
    fn a_path_is_not_searched_and_nul_is_refused() {
        let p = Launch::new("./bin/x").prepare().unwrap();
        assert_eq!(p.paths.strings(), ["./bin/x"]);
        let e = Launch::new("x").arg("a\0b").prepare().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}

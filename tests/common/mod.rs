//! Shared harness for black-box tests: a temporary project directory with a workflow file,
//! a private state directory, and the built `runner` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join(".runner")
    }

    /// Write a file relative to the project.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Write an executable file (mode 0755) relative to the project.
    pub fn executable(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.file(name, text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// `runner <args>` run in the project directory with its own state dir.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("runner").expect("binary");
        c.current_dir(self.dir.path())
            .env("RUNNER_STATE_DIR", self.state_dir())
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run runner")
    }

    /// The only job id in the state dir (panics if there is not exactly one).
    pub fn only_job(&self) -> String {
        let jobs = self.jobs();
        assert_eq!(jobs.len(), 1, "expected one job, found {jobs:?}");
        jobs[0].clone()
    }

    pub fn jobs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.state_dir().join("jobs"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.state_dir().join("jobs").join(id)
    }

    /// `status JOB --json` parsed.
    pub fn status(&self, job: &str) -> serde_json::Value {
        let out = self.run(&["status", job, "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

//! Issue 15, git worktrees (Prodigy's isolation model): the job's worktree and branch, one
//! worktree per item merged back one at a time (`merge_conflict` on a conflict),
//! `commit_required`, the final merge (`--merge`, `-y`, `PRODIGY_AUTO_MERGE`) or the
//! command that does it, crash recovery, `clean`, `isolation: none`, and no git repository.
//! Each test runs in a fresh git repository with `user.name`/`user.email` in its config.
mod common;
#[path = "common/extra.rs"]
mod extra;
use std::process::Command;

use common::*;
use extra::*;

/// `git args` in `dir`; its stdout.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A project that is a git repository on `main`, with `files` committed.
fn repo(files: &[(&str, &str)]) -> Project {
    let p = Project::new();
    git(p.path(), &["init", "-q", "-b", "main"]);
    git(p.path(), &["config", "user.name", "Test"]);
    git(p.path(), &["config", "user.email", "test@example.com"]);
    p.file(".gitignore", ".runner/\nout/\n");
    for (name, text) in files {
        p.file(name, text);
    }
    git(p.path(), &["add", "-A"]);
    git(p.path(), &["commit", "-q", "-m", "init"]);
    p
}

/// Items `a`, `b`, `c`.
const ITEMS: &str = r#"[{"id": "a"}, {"id": "b"}, {"id": "c"}]"#;

/// A map step that writes `file-<id>.txt` and commits it.
const COMMIT_STEP: &str = r#"    - shell: "echo ${item.id} > file-${item.id}.txt && git add file-${item.id}.txt && git commit -q -m item-${item.id}"
      commit_required: true
"#;

/// A Prodigy-format workflow over `ITEMS` with these map steps and reduce.
fn prodigy_wf(steps: &str, reduce: &str, max_parallel: u32) -> String {
    format!(
        "name: wt\nmode: mapreduce\nmap:\n  input: items.json\n  max_parallel: {max_parallel}\n  agent_template:\n{steps}{reduce}"
    )
}

/// Local branches of the repository.
fn branches(p: &Project) -> Vec<String> {
    git(p.path(), &["branch", "--format=%(refname:short)"])
        .lines()
        .map(String::from)
        .collect()
}

fn job_branch(job: &str) -> String {
    format!("runner/{job}/job")
}

#[test]
fn three_parallel_items_commit_and_reduce_sees_all_their_files() {
    let p = repo(&[
        ("items.json", ITEMS),
        (
            "wf.yml",
            &prodigy_wf(
                COMMIT_STEP,
                "reduce:\n  - shell: \"mkdir -p $OUT && ls file-*.txt > $OUT/reduce.txt && pwd > $OUT/pwd.txt\"\n",
                3,
            ),
        ),
    ]);
    let out_dir = p.path().join("out");
    let out = p
        .cmd()
        .args(["run", "wf.yml"])
        .env("OUT", &out_dir)
        .env_remove("PRODIGY_AUTO_MERGE")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let job = p.only_job();
    assert_eq!(
        lines(&p, "out/reduce.txt"),
        ["file-a.txt", "file-b.txt", "file-c.txt"]
    );
    // Reduce ran in the job's worktree, under the job's directory.
    let wt = p.job_dir(&job).join("worktrees").join("job");
    assert_eq!(
        p.read("out/pwd.txt").trim(),
        wt.canonicalize().unwrap().to_string_lossy()
    );
    // The original checkout and branch are untouched; the job branch has the three commits.
    assert!(!p.path().join("file-a.txt").exists());
    assert_eq!(git(p.path(), &["rev-list", "--count", "main"]), "1");
    let log = git(p.path(), &["log", "--format=%s", &job_branch(&job)]);
    for id in ["a", "b", "c"] {
        assert_eq!(
            log.lines().filter(|l| *l == format!("item-{id}")).count(),
            1,
            "{log}"
        );
    }
    // The items' branches are gone; the job's stays, and the command to merge it is printed.
    assert_eq!(branches(&p), ["main".to_owned(), job_branch(&job)]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("merge it with: git -C {}", p.path().display()))
            && err.contains(&format!("merge {}", job_branch(&job))),
        "{err}"
    );
}

#[test]
fn commit_required_fails_a_step_that_made_no_commit() {
    let p = repo(&[
        ("items.json", r#"[{"id": "a"}]"#),
        (
            "wf.yml",
            &prodigy_wf(
                "    - shell: \"echo ${item.id} > x.txt\"\n      commit_required: true\n",
                "",
                1,
            ),
        ),
    ]);
    let out = run_expect(&p, &["run", "wf.yml"], 1);
    let job = p.only_job();
    let out2 = run_expect(&p, &["dlq", "list", &job, "--json"], 0);
    let v: serde_json::Value = serde_json::from_slice(&out2.stdout).unwrap();
    assert_eq!(v[0]["failure_class"], "no_commit", "{v}");
    assert!(
        stderr(&out).contains("commit_required: true but made no git commit"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_merge_conflict_sends_the_item_to_the_dlq_and_dlq_retry_runs_it_on_the_new_tip() {
    // Both items write the same line of the same file; one at a time, `a` first.
    let p = repo(&[
        ("items.json", r#"[{"id": "a"}, {"id": "b"}]"#),
        ("same.txt", "base\n"),
        (
            "wf.yml",
            &prodigy_wf(
                "    - shell: \"touch $SYNC/${item.id}; while [ ! -f $SYNC/a ] || [ ! -f $SYNC/b ]; do sleep 0.02; done\"\n    - shell: \"echo ${item.id} > same.txt && git commit -q -am item-${item.id}\"\n      commit_required: true\n",
                "",
                2,
            ),
        ),
    ]);
    // Both start from the same tip: each waits until both have started.
    std::fs::create_dir(p.path().join("out")).unwrap();
    let out = p
        .cmd()
        .args(["run", "wf.yml"])
        .env("SYNC", p.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let job = p.only_job();
    let dlq = run_expect(&p, &["dlq", "list", &job, "--json"], 0);
    let v: serde_json::Value = serde_json::from_slice(&dlq.stdout).unwrap();
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{v}\n{}", stderr(&out));
    assert_eq!(entries[0]["failure_class"], "merge_conflict", "{v}");
    let loser = entries[0]["item_id"].as_str().unwrap().to_owned();
    // The job branch has the winner's line, and no half-done merge.
    let wt = p.job_dir(&job).join("worktrees").join("job");
    let winner_line = std::fs::read_to_string(wt.join("same.txt")).unwrap();
    assert_ne!(winner_line.trim(), loser);
    assert_eq!(
        git(&wt, &["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
    // Retried on the new tip, it applies cleanly.
    let out = p
        .cmd()
        .args(["dlq", "retry", &job])
        .env("SYNC", p.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(wt.join("same.txt")).unwrap().trim(),
        loser
    );
}

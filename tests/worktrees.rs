//! Issue 15, git worktrees (Prodigy's isolation model): the job's worktree and branch, one
//! worktree per item merged back one at a time (`merge_conflict` on a conflict),
//! `commit_required`, the final merge (`--merge`, `-y`, `PRODIGY_AUTO_MERGE`) or the
//! command that does it, crash recovery, `clean`, `isolation: none`, and no git repository.
//! Each test runs in a fresh git repository with `user.name`/`user.email` in its config.
mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/extra.rs"]
mod extra;
use std::time::Duration;

use common::*;
use extra::*;

/// A project that is a git repository on `main`, with `files` committed.
fn repo(files: &[(&str, &str)]) -> Project {
    let p = Project::new();
    git_init(p.path());
    p.file(".gitignore", ".runner/\nout/\n.bg/\n");
    for (name, text) in files {
        p.file(name, text);
    }
    git_commit_all(p.path(), "init");
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

/// The files of the job's worktree named `file-*.txt`, with their contents.
fn item_files(wt: &std::path::Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(wt)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with("file-").then(|| {
                (
                    name.clone(),
                    std::fs::read_to_string(wt.join(&name)).unwrap(),
                )
            })
        })
        .collect();
    v.sort();
    v
}

/// Commit subjects of `branch`.
fn subjects(p: &Project, branch: &str) -> Vec<String> {
    git(p.path(), &["log", "--format=%s", branch])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn merge_flags_merge_the_job_branch_into_the_original_branch() {
    for (args, env) in [
        (&["run", "wf.yml", "--merge"][..], None),
        (&["run", "wf.yml", "-y"][..], None),
        (&["run", "wf.yml"][..], Some("true")),
    ] {
        let p = repo(&[
            ("items.json", ITEMS),
            ("wf.yml", &prodigy_wf(COMMIT_STEP, "", 3)),
        ]);
        let mut c = p.cmd();
        c.args(args).env_remove("PRODIGY_AUTO_MERGE");
        if let Some(v) = env {
            c.env("PRODIGY_AUTO_MERGE", v);
        }
        let out = c.output().unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        // The original checkout has every item's file now, and its branch the commits.
        for id in ["a", "b", "c"] {
            assert_eq!(p.read(&format!("file-{id}.txt")).trim(), id, "{args:?}");
        }
        let job = p.only_job();
        assert_eq!(
            git(p.path(), &["rev-parse", "main"]),
            git(p.path(), &["rev-parse", &job_branch(&job)])
        );
        assert!(
            stderr(&out).contains(&format!("merged branch {} into main", job_branch(&job))),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn isolation_none_runs_in_the_start_directory() {
    let p = repo(&[
        ("items.json", ITEMS),
        (
            "wf.yml",
            &format!(
                "isolation: none\n{}",
                prodigy_wf(
                    "    - shell: \"echo ${item.id} > file-${item.id}.txt\"\n",
                    "",
                    3
                )
            ),
        ),
    ]);
    run_expect(&p, &["run", "wf.yml"], 0);
    for id in ["a", "b", "c"] {
        assert_eq!(p.read(&format!("file-{id}.txt")).trim(), id);
    }
    assert_eq!(branches(&p), ["main"]);
    assert!(!p.job_dir(&p.only_job()).join("worktrees").exists());
}

#[test]
fn the_state_directory_stays_out_of_git_status() {
    // A repository that does not ignore `.runner/`: the job's worktrees inside it are
    // excluded locally (`.git/info/exclude`), once, and the checkout stays clean.
    let p = Project::new();
    git_init(p.path());
    p.file("items.json", ITEMS);
    p.file("wf.yml", &prodigy_wf(COMMIT_STEP, "", 2));
    git_commit_all(p.path(), "init");
    run_expect(&p, &["run", "wf.yml"], 0);
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(git(p.path(), &["status", "--porcelain"]), "");
    let exclude = p.read(".git/info/exclude");
    assert_eq!(exclude.matches("/.runner/").count(), 1, "{exclude}");
    // Nothing was committed for it.
    assert_eq!(git(p.path(), &["ls-files"]), "items.json\nwf.yml");
}

#[test]
fn outside_a_git_repository() {
    // `isolation: worktree` is refused (exit 2), saying what to do; nothing is left behind.
    let p = Project::new();
    p.file("items.json", ITEMS);
    p.file(
        "wf.yml",
        &format!(
            "isolation: worktree\n{}",
            prodigy_wf(
                "    - shell: \"echo ${item.id} > file-${item.id}.txt\"\n",
                "",
                3
            )
        ),
    );
    let out = run_expect(&p, &["run", "wf.yml"], 2);
    let err = stderr(&out);
    assert!(
        err.contains("is not inside a git work tree") && err.contains("isolation: none"),
        "{err}"
    );
    assert!(p.jobs().is_empty());
    // A Prodigy-format file without `isolation:` runs in place.
    p.file(
        "wf.yml",
        &prodigy_wf(
            "    - shell: \"echo ${item.id} > file-${item.id}.txt\"\n",
            "",
            3,
        ),
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("file-b.txt").trim(), "b");
}

#[test]
fn worktree_isolation_needs_the_local_executor() {
    let p = repo(&[(
        "wf.yml",
        &format!(
            "isolation: worktree\nexecutor: slurm\n{}",
            prodigy_wf("    - shell: \"true\"\n", "", 1)
        ),
    )]);
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    assert!(
        stderr(&out).contains("runs with the local executor only"),
        "{}",
        stderr(&out)
    );
    // `merge:` without worktrees is an error too, not ignored.
    p.file(
        "wf.yml",
        "name: m\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\nmerge:\n  - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    assert!(
        stderr(&out).contains("add `isolation: worktree`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn clean_removes_the_jobs_worktrees_and_branches() {
    let p = repo(&[
        ("items.json", ITEMS),
        ("wf.yml", &prodigy_wf(COMMIT_STEP, "", 3)),
    ]);
    run_expect(&p, &["run", "wf.yml"], 0);
    let job = p.only_job();
    assert_eq!(branches(&p), ["main".to_owned(), job_branch(&job)]);
    assert_eq!(git(p.path(), &["worktree", "list"]).lines().count(), 2);
    run_expect(&p, &["clean"], 0);
    assert!(p.jobs().is_empty());
    assert_eq!(branches(&p), ["main"]);
    assert_eq!(git(p.path(), &["worktree", "list"]).lines().count(), 1);
}

/// A map step that logs its run to `$OUT/ran.txt`, waits for `$OUT/go` when the item is
/// `c` (after saying so in `$OUT/c-started`), then commits `file-<id>.txt`.
const LOGGED_STEP: &str = r#"    - shell: "echo ${item.id} >> $OUT/ran.txt; if [ ${item.id} = c ]; then touch $OUT/c-started; while [ ! -f $OUT/go ]; do sleep 0.02; done; fi; echo ${item.id} > file-${item.id}.txt && git add file-${item.id}.txt && git commit -q -m item-${item.id}"
      commit_required: true
"#;

#[test]
fn kill_9_mid_map_then_resume_merges_every_item_once() {
    let p = repo(&[
        (
            "items.json",
            r#"[{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}]"#,
        ),
        ("wf.yml", &prodigy_wf(LOGGED_STEP, "", 1)),
    ]);
    let out_dir = p.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out_s = out_dir.to_string_lossy().into_owned();
    let mut bg = crash::spawn_with(&p, &p.state_dir(), &["run", "wf.yml"], &[("OUT", &out_s)]);
    wait_until(Duration::from_secs(30), "c-started", || {
        assert!(bg.child.try_wait().unwrap().is_none(), "{}", bg.stderr());
        out_dir.join("c-started").exists()
    });
    bg.kill9();
    std::fs::write(out_dir.join("go"), "").unwrap();
    let job = p.only_job();
    let out = crash::run_with(&p, &p.state_dir(), &["resume", &job], &[("OUT", &out_s)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let wt = p.job_dir(&job).join("worktrees").join("job");
    assert_eq!(
        item_files(&wt),
        ["a", "b", "c", "d"]
            .map(|id| (format!("file-{id}.txt"), format!("{id}\n")))
            .to_vec()
    );
    // One commit per item, no merge commit twice (one at a time: all fast-forwards).
    let mut s = subjects(&p, &job_branch(&job));
    s.sort();
    assert_eq!(s, ["init", "item-a", "item-b", "item-c", "item-d"]);
    // `c` was interrupted and ran again, in a worktree made afresh.
    let ran = sorted_lines(&p, "out/ran.txt");
    assert_eq!(ran, ["a", "b", "c", "c", "d"]);
}

#[test]
fn an_item_merged_before_a_kill_9_is_not_run_or_merged_again() {
    // The first merge's post-merge hook stops until `$OUT/release`: the runner is killed
    // after the merge, before the item's outcome is recorded.
    let p = repo(&[
        ("items.json", r#"[{"id": "a"}, {"id": "b"}]"#),
        ("wf.yml", &prodigy_wf(LOGGED_STEP, "", 1)),
    ]);
    p.executable(
        ".git/hooks/post-merge",
        "#!/bin/sh\nif [ ! -f \"$OUT/hooked\" ]; then touch \"$OUT/hooked\"; while [ ! -f \"$OUT/release\" ]; do sleep 0.02; done; touch \"$OUT/hook-done\"; fi\n",
    );
    let out_dir = p.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out_s = out_dir.to_string_lossy().into_owned();
    let mut bg = crash::spawn_with(&p, &p.state_dir(), &["run", "wf.yml"], &[("OUT", &out_s)]);
    wait_until(Duration::from_secs(30), "the post-merge hook", || {
        assert!(bg.child.try_wait().unwrap().is_none(), "{}", bg.stderr());
        out_dir.join("hooked").exists()
    });
    bg.kill9();
    std::fs::write(out_dir.join("release"), "").unwrap();
    wait_until(Duration::from_secs(30), "the hook's end", || {
        out_dir.join("hook-done").exists()
    });
    let job = p.only_job();
    let out = crash::run_with(&p, &p.state_dir(), &["resume", &job], &[("OUT", &out_s)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // `a` ran once: its merged branch was found and taken as its outcome.
    assert_eq!(sorted_lines(&p, "out/ran.txt"), ["a", "b"]);
    let mut s = subjects(&p, &job_branch(&job));
    s.sort();
    assert_eq!(s, ["init", "item-a", "item-b"]);
}

#[test]
fn a_claude_map_with_a_merge_block() {
    // The stand-in `claude` commits a file named after the item its command names.
    let p = repo(&[
        ("items.json", ITEMS),
        (
            "wf.yml",
            r#"name: wt
mode: mapreduce
map:
  input: items.json
  max_parallel: 3
  agent_template:
    - claude: "/fix ${item.id}"
      commit_required: true
merge:
  commands:
    - shell: "echo ${merge.source_branch} ${merge.target_branch} ${merge.worktree} ${merge.session_id} ${merge.worktree_path} > $OUT/merge.txt && pwd >> $OUT/merge.txt"
    - shell: "git -C $REPO merge --no-edit -q ${merge.source_branch}"
  timeout: 60
"#,
        ),
    ]);
    p.executable(
        "bin/claude",
        "#!/bin/sh\nfor last in \"$@\"; do :; done\nid=${last#/fix }\necho \"$id\" > \"claude-$id.txt\"\ngit add \"claude-$id.txt\" && git commit -q -m \"claude-$id\"\n",
    );
    std::fs::create_dir(p.path().join("out")).unwrap();
    let path = format!(
        "{}:{}",
        p.path().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let out = p
        .cmd()
        .args(["run", "wf.yml"])
        .env("PATH", path)
        .env("OUT", p.path().join("out"))
        .env("REPO", p.path())
        .env_remove("RUNNER_CLAUDE")
        .env_remove("PRODIGY_AUTO_MERGE")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let job = p.only_job();
    let wt = p.job_dir(&job).join("worktrees").join("job");
    let wt = wt.canonicalize().unwrap();
    assert_eq!(
        lines(&p, "out/merge.txt"),
        [
            format!(
                "{} main {job} {job} {}",
                job_branch(&job),
                p.job_dir(&job).join("worktrees").join("job").display()
            ),
            wt.to_string_lossy().into_owned()
        ]
    );
    // The block merged the job's branch: the original checkout has every item's file.
    for id in ["a", "b", "c"] {
        assert_eq!(p.read(&format!("claude-{id}.txt")).trim(), id);
    }
    assert!(
        stderr(&out).contains(&format!("merged branch {} into main", job_branch(&job))),
        "{}",
        stderr(&out)
    );
}

#[test]
fn merge_block_variables_are_checked_and_a_failing_block_fails_the_job() {
    let p = repo(&[
        ("items.json", ITEMS),
        (
            "wf.yml",
            &format!(
                "{}merge:\n  - shell: \"echo ${{merge.source_brnch}}\"\n",
                prodigy_wf(COMMIT_STEP, "", 3)
            ),
        ),
    ]);
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    assert!(
        stderr(&out).contains("merge.source_brnch") && stderr(&out).contains("merge.source_branch"),
        "{}",
        stderr(&out)
    );
    p.file(
        "wf.yml",
        &format!(
            "{}merge:\n  - shell: \"exit 3\"\n",
            prodigy_wf(COMMIT_STEP, "", 3)
        ),
    );
    let out = run_expect(&p, &["run", "wf.yml"], 1);
    assert!(
        stderr(&out).contains("merge step 1 (`exit 3`) exited with code 3"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stop_then_resume_runs_an_interrupted_item_again_in_a_fresh_worktree() {
    // `c` commits a first file, then waits for `$OUT/go`: stopped there, its commit must not
    // reach the job branch, and its second run starts from the job branch's tip.
    let p = repo(&[
        ("items.json", ITEMS),
        (
            "wf.yml",
            &prodigy_wf(
                r#"    - shell: "echo ${item.id} > part-${item.id}.txt && git add part-${item.id}.txt && git commit -q -m part-${item.id}; if [ ${item.id} = c ]; then touch $OUT/c-started; while [ ! -f $OUT/go ]; do sleep 0.02; done; fi; echo ${item.id} > file-${item.id}.txt && git add file-${item.id}.txt && git commit -q -m item-${item.id}"
      commit_required: true
"#,
                "",
                1,
            ),
        ),
    ]);
    let out_dir = p.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out_s = out_dir.to_string_lossy().into_owned();
    let mut bg = crash::spawn_with(
        &p,
        &p.state_dir(),
        &["run", "wf.yml", "--job-id", "st"],
        &[("OUT", &out_s)],
    );
    wait_until(Duration::from_secs(30), "c-started", || {
        assert!(bg.child.try_wait().unwrap().is_none(), "{}", bg.stderr());
        out_dir.join("c-started").exists()
    });
    run_expect(&p, &["stop", "st", "--grace", "100ms"], 0);
    assert_eq!(
        bg.wait_code(Duration::from_secs(30)),
        Some(143),
        "{}",
        bg.stderr()
    );
    assert_eq!(
        subjects(&p, &job_branch("st")).len(),
        5,
        "a and b: two commits each"
    );
    std::fs::write(out_dir.join("go"), "").unwrap();
    let out = crash::run_with(&p, &p.state_dir(), &["resume", "st"], &[("OUT", &out_s)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut s = subjects(&p, &job_branch("st"));
    s.sort();
    assert_eq!(
        s,
        [
            "init", "item-a", "item-b", "item-c", "part-a", "part-b", "part-c"
        ]
    );
}

#[test]
fn on_incomplete_commit_required_needs_the_handler_to_commit() {
    // The validation passes once `fixed.txt` exists; the handler writes it, and commits it
    // only when told to.
    let wf = |commit: &str| {
        prodigy_wf(
            &format!(
                r#"    - shell: "true"
      validate:
        shell: "if [ -f fixed-${{item.id}}.txt ]; then echo '{{\"completion_percentage\": 100, \"status\": \"complete\"}}'; else echo '{{\"completion_percentage\": 0, \"status\": \"incomplete\"}}'; fi"
        on_incomplete:
          shell: "touch fixed-${{item.id}}.txt{commit}"
          commit_required: true
          max_attempts: 1
"#
            ),
            "",
            1,
        )
    };
    let p = repo(&[("items.json", r#"[{"id": "a"}]"#), ("wf.yml", &wf(""))]);
    let out = run_expect(&p, &["run", "wf.yml"], 1);
    assert!(
        stderr(&out).contains("made no git commit"),
        "{}",
        stderr(&out)
    );
    p.file(
        "wf2.yml",
        &wf(" && git add fixed-${item.id}.txt && git commit -q -m fix-${item.id}"),
    );
    run_expect(&p, &["run", "wf2.yml", "--merge"], 0);
    assert!(subjects(&p, "main").contains(&"fix-a".to_string()));
}

//! `runner resume JOB --dry-run [--json]`: what a resume would do, read-only.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/extra.rs"]
mod extra;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use crash::{crash_leaving_groups, spawn, stopped_job_with_stray_dlq_entry, wait_until};
use extra::{events_named, pid_alive, run_expect};

const LIMIT: Duration = Duration::from_secs(10);

/// Every file under `dir` with its content, to prove that nothing was written.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                m.insert(name, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    m
}

fn preview(p: &Project, job: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["resume", job, "--dry-run", "--json"];
    args.extend_from_slice(extra);
    let out = run_expect(p, &args, 0);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON document: {e}: {}", stdout(&out)))
}

#[test]
fn counts_by_source_match_what_resume_runs_and_nothing_is_written() {
    let p = Project::new();
    stopped_job_with_stray_dlq_entry(&p);
    let dir = p.job_dir("s");
    let before = snapshot(&dir);

    let d = preview(&p, "s", &[]);
    assert_eq!(d["job_id"], "s");
    assert_eq!(d["state"], "failed");
    assert_eq!(d["action"], "run");
    assert_eq!(d["items_selected"], true);
    assert_eq!(
        d["would_run"],
        serde_json::json!({"pending": 3, "failed": 0, "dlq": 1, "total": 4}),
        "b is pending and in the DLQ: it counts once, as pending"
    );
    assert_eq!(d["reduce_steps"], 1);
    assert_eq!(d["setup_steps"], 0);
    assert_eq!(d["workflow_changed"], false);
    assert_eq!(d["force_required"], false);
    assert_eq!(d["lock_holder"], serde_json::Value::Null);
    assert_eq!(d["leftover_process_groups"], serde_json::json!([]));

    let d = preview(&p, "s", &["--pending-only"]);
    assert_eq!(
        d["would_run"],
        serde_json::json!({"pending": 3, "failed": 0, "dlq": 0, "total": 3})
    );

    let out = run_expect(&p, &["resume", "s", "--dry-run"], 0);
    let text = stdout(&out);
    assert!(
        text.contains("items:      4 would run: 3 pending, 0 failed, 1 from the DLQ"),
        "{text}"
    );
    assert!(text.contains("lock:       free"), "{text}");
    assert!(stderr(&out).contains("nothing was run or written"));

    assert_eq!(snapshot(&dir), before, "the preview wrote nothing");
    assert!(!dir.join("lock").exists(), "no lock file left behind");
    assert_eq!(p.status("s")["runs"], 1);

    // The real resume runs exactly what the preview counted.
    p.file("fixed", "");
    let out = run_expect(&p, &["resume", "s", "--json"], 0);
    let map = events_named(&out, "map_started");
    assert_eq!(map[0]["to_run"], 4, "{}", stdout(&out));

    // A completed job: nothing to do.
    let d = preview(&p, "s", &[]);
    assert_eq!(d["action"], "nothing_to_do");
    assert_eq!(d["state"], "completed");
    assert_eq!(d["would_run"]["total"], 0);
    let out = run_expect(&p, &["resume", "s", "--dry-run"], 0);
    assert!(stdout(&out).contains("nothing: the job is completed"));

    run_expect(&p, &["resume", "nope", "--dry-run"], 2);
    run_expect(&p, &["resume", "nope", "--dry-run", "--json"], 2);
}

#[test]
fn a_changed_workflow_needs_force_and_the_preview_does_not_adopt_it() {
    let p = Project::new();
    stopped_job_with_stray_dlq_entry(&p);
    let dir = p.job_dir("s");
    p.file(
        "s.yml",
        "name: s\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'true'\n",
    );
    let before = snapshot(&dir);
    let d = preview(&p, "s", &[]);
    assert_eq!(d["workflow_changed"], true);
    assert_eq!(d["force_required"], true);
    assert_eq!(d["action"], "needs_force");
    assert_eq!(
        d["reduce_steps"], 1,
        "the job's own workflow has a reduce step"
    );
    let d = preview(&p, "s", &["--force"]);
    assert_eq!(d["force_required"], false);
    assert_eq!(d["action"], "run");
    assert_eq!(
        d["reduce_steps"], 0,
        "--force runs the changed file: no reduce"
    );
    assert_eq!(
        snapshot(&dir),
        before,
        "--force in a preview adopts nothing"
    );
    let out = run_expect(&p, &["resume", "s", "--dry-run"], 0);
    assert!(
        stdout(&out).contains("resume needs --force"),
        "{}",
        stdout(&out)
    );
    // And the real resume agrees.
    run_expect(&p, &["resume", "s"], 2);
}

#[test]
fn items_not_selected_yet() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "w.yml",
        "name: w\nsetup:\n  - shell: 'true'\n  - shell: '[ -f ready ]'\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'true'\n",
    );
    run_expect(&p, &["run", "w.yml", "--job-id", "w"], 1);
    let d = preview(&p, "w", &[]);
    assert_eq!(d["items_selected"], false);
    assert_eq!(d["would_run"], serde_json::Value::Null);
    assert_eq!(d["setup_steps"], 1);
    let out = run_expect(&p, &["resume", "w", "--dry-run"], 0);
    assert!(
        stdout(&out).contains("not selected yet"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_live_job_names_its_holder_and_the_preview_takes_no_lock() {
    let p = Project::new();
    p.file("items.json", &crash::numbered_items(3));
    p.file(
        "l.yml",
        "name: l\nmap:\n  input: items.json\n  max_parallel: 1\n  agent_template:\n    - shell: 'touch started; while [ ! -f release ]; do sleep 0.05; done'\n",
    );
    let mut live = spawn(&p, &["run", "l.yml", "--job-id", "l"]);
    wait_until("the item to start", LIMIT, || {
        p.path().join("started").exists()
    });
    let lock_before = std::fs::read(p.job_dir("l").join("lock")).unwrap();

    let d = preview(&p, "l", &[]);
    assert_eq!(d["action"], "locked");
    assert_eq!(d["state"], "running");
    let h = &d["lock_holder"];
    assert_eq!(h["pid"], live.pid());
    assert_eq!(h["command"], "run");
    assert!(h["host"].is_string() && h["started_at"].is_string(), "{h}");
    assert!(
        h["heartbeat_age_s"].as_f64().is_some_and(|a| a < 30.0),
        "{h}"
    );
    assert_eq!(
        d["leftover_process_groups"],
        serde_json::json!([]),
        "a live run's groups are not leftovers"
    );
    let out = run_expect(&p, &["resume", "l", "--dry-run"], 0);
    assert!(
        stdout(&out).contains(&format!("lock:       held by pid {}", live.pid())),
        "{}",
        stdout(&out)
    );
    // The holder's lock file is untouched (same holder, same start).
    let lock_after = std::fs::read(p.job_dir("l").join("lock")).unwrap();
    let pick = |b: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        (v["pid"].clone(), v["started_at"].clone())
    };
    assert_eq!(pick(&lock_after), pick(&lock_before));

    run_expect(&p, &["pause", "l"], 0);
    assert_eq!(preview(&p, "l", &[])["action"], "unpause");
    run_expect(&p, &["resume", "l"], 0);
    p.file("release", "");
    assert_eq!(live.wait_code(LIMIT), Some(0), "{}", live.stderr());
}

#[test]
fn leftover_process_groups_of_a_crashed_run_are_listed_not_killed() {
    let p = Project::new();
    let pids = crash_leaving_groups(&p, "k", 2);
    let before = snapshot(&p.job_dir("k"));

    let d = preview(&p, "k", &[]);
    assert_eq!(d["state"], "interrupted");
    assert_eq!(d["action"], "run");
    let groups = d["leftover_process_groups"].as_array().unwrap();
    let mut pgids: Vec<i64> = groups.iter().map(|g| g["pgid"].as_i64().unwrap()).collect();
    pgids.sort();
    let mut want: Vec<i64> = pids.iter().map(|&p| i64::from(p)).collect();
    want.sort();
    assert_eq!(pgids, want, "{d}");
    for g in groups {
        assert_eq!(g["alive"], true, "{g}");
        assert_eq!(g["phase"], "map");
        assert!(g["item_id"].is_string(), "{g}");
    }
    let out = run_expect(&p, &["resume", "k", "--dry-run"], 0);
    assert!(
        stdout(&out).contains("2 recorded by a crashed run, 2 still running"),
        "{}",
        stdout(&out)
    );
    for &pid in &pids {
        assert!(pid_alive(pid), "the preview killed nothing ({pid})");
    }
    assert_eq!(
        snapshot(&p.job_dir("k")),
        before,
        "the preview wrote nothing"
    );

    // The real resume kills them, as announced.
    std::fs::remove_file(p.path().join("slow")).unwrap();
    let out = run_expect(&p, &["resume", "k"], 0);
    assert!(
        stderr(&out).contains("killed 2 process group(s)"),
        "{}",
        stderr(&out)
    );
    for &pid in &pids {
        wait_until("the leftover to be gone", LIMIT, || !pid_alive(pid));
    }
    assert_eq!(
        preview(&p, "k", &[])["leftover_process_groups"],
        serde_json::json!([])
    );
}

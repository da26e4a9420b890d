//! `dlq list --class/--since`, `dlq retry --class`, and one DLQ count: `dlq list` and
//! `status` agree when `dlq.jsonl` holds an entry for an item the journal has as pending.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/extra.rs"]
mod extra;

use common::*;
use crash::{dlq_ids, stopped_job_with_stray_dlq_entry};
use extra::{run_expect, sorted_lines};

/// A failed job `f` with three DLQ items, one per failure class (`x1` exit 3, `t1`
/// timeout, `s1` signal) and `ok`. `t1` and `s1` succeed once the file `fixed` exists.
fn failed_job() -> Project {
    let p = Project::new();
    p.file(
        "items.json",
        r#"[{"id":"x1"},{"id":"t1"},{"id":"s1"},{"id":"ok"}]"#,
    );
    p.file(
        "f.yml",
        r#"name: f
map:
  input: items.json
  max_parallel: 4
  timeout: 300ms
  agent_template:
    - shell: 'echo ${item.id} >> ran.log; case ${item.id} in x1) exit 3;; t1) [ -f fixed ] || exec sleep 5;; s1) [ -f fixed ] || kill -KILL $$;; esac'
"#,
    );
    run_expect(&p, &["run", "f.yml", "--job-id", "f"], 1);
    assert_eq!(dlq_ids(&p, "f"), ["s1", "t1", "x1"], "precondition");
    std::fs::remove_file(p.path().join("ran.log")).unwrap();
    p
}

/// `dlq list f --json ARGS...` item ids, in listing order.
fn listed(p: &Project, args: &[&str]) -> Vec<String> {
    let mut all = vec!["dlq", "list", "f", "--json"];
    all.extend_from_slice(args);
    let out = run_expect(p, &all, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    v.as_array()
        .expect("an array of entries")
        .iter()
        .map(|e| e["item_id"].as_str().expect("item_id").to_owned())
        .collect()
}

#[test]
fn list_filters_by_class_and_since() {
    let p = failed_job();
    assert_eq!(listed(&p, &["--class", "timeout"]), ["t1"]);
    assert_eq!(listed(&p, &["--class", "exit,signal"]), ["x1", "s1"]);
    assert_eq!(
        listed(&p, &["--class", "exit", "--class", "timeout"]),
        ["x1", "t1"]
    );
    assert!(listed(&p, &["--class", "spawn"]).is_empty());
    // The JSON shape stays the same: full entries.
    let out = run_expect(&p, &["dlq", "list", "f", "--json", "--class", "exit"], 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["failure_class"], "exit");
    assert_eq!(v[0]["exit_code"], 3);

    // Human output says how many match.
    let out = run_expect(&p, &["dlq", "list", "f", "--class", "timeout"], 0);
    let text = stdout(&out);
    assert!(
        text.starts_with("1 of 3 item(s) in the DLQ of job f match: 1 x timeout"),
        "{text}"
    );
    assert!(!text.contains("x1"), "{text}");

    // An unknown class is a usage error naming the valid ones.
    let out = run_expect(&p, &["dlq", "list", "f", "--class", "exit,oom"], 2);
    let err = stderr(&out);
    assert!(
        err.contains("possible values: exit, signal, timeout, spawn, template, cancelled"),
        "{err}"
    );

    // --since: make x1's last failure old.
    let path = p.job_dir("f").join("dlq.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = Vec::new();
    for l in text.lines() {
        let mut e: serde_json::Value = serde_json::from_str(l).unwrap();
        if e["item_id"] == "x1" {
            e["last_failure_at"] = "2020-01-01T00:00:00Z".into();
        }
        lines.push(serde_json::to_string(&e).unwrap());
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    assert_eq!(listed(&p, &["--since", "1h"]), ["s1", "t1"]);
    assert!(listed(&p, &["--since", "1h", "--class", "exit"]).is_empty());
    assert_eq!(listed(&p, &["--since", "100000d"]), ["x1", "s1", "t1"]);
    run_expect(&p, &["dlq", "list", "f", "--since", "soon"], 2);
}

#[test]
fn retry_takes_only_the_selected_classes() {
    let p = failed_job();
    p.file("fixed", "");
    let out = run_expect(&p, &["dlq", "retry", "f", "--class", "timeout"], 1);
    assert_eq!(sorted_lines(&p, "ran.log"), ["t1"], "{}", stderr(&out));
    assert_eq!(dlq_ids(&p, "f"), ["s1", "x1"]);

    // --item and --class intersect: s1 is not an exit failure, so nothing runs.
    let out = run_expect(
        &p,
        &["dlq", "retry", "f", "--class", "exit", "--item", "s1"],
        0,
    );
    assert!(
        stderr(&out).contains("matches the filter; nothing to retry"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sorted_lines(&p, "ran.log"), ["t1"]);

    let out = run_expect(
        &p,
        &["dlq", "retry", "f", "--class", "signal", "--item", "s1"],
        1,
    );
    assert_eq!(
        sorted_lines(&p, "ran.log"),
        ["s1", "t1"],
        "{}",
        stderr(&out)
    );
    assert_eq!(dlq_ids(&p, "f"), ["x1"]);
    run_expect(&p, &["dlq", "retry", "f", "--class", "bogus"], 2);
}

#[test]
fn dlq_list_and_status_agree_on_an_item_both_pending_and_in_the_dlq() {
    let p = Project::new();
    stopped_job_with_stray_dlq_entry(&p);
    std::fs::remove_file(p.path().join("ran.log")).unwrap();
    let st = p.status("s");
    assert_eq!(
        (st["dlq"].as_u64(), st["pending"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(
        dlq_ids(&p, "s"),
        ["a"],
        "one rule, one number: the journal's"
    );
    let out = run_expect(&p, &["dlq", "list", "s"], 0);
    assert!(
        stdout(&out).starts_with("1 item(s) in the DLQ of job s"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("(b) whose item is pending"),
        "the other entry is explained: {}",
        stderr(&out)
    );
    // An item that is pending is not retried or purged by `dlq ... --item`: resume runs it.
    run_expect(&p, &["dlq", "retry", "s", "--item", "b"], 2);
    run_expect(&p, &["dlq", "purge", "s", "--item", "b"], 2);

    // Resume runs b once (as pending) and its stray entry goes when it succeeds.
    p.file("fixed", "");
    run_expect(&p, &["resume", "s"], 0);
    assert_eq!(sorted_lines(&p, "ran.log"), ["a", "b", "c", "d"]);
    assert_eq!(p.status("s")["dlq"], 0);
    assert!(dlq_ids(&p, "s").is_empty());
}

#[test]
fn an_entry_left_by_an_interrupted_purge_is_not_listed_and_goes_with_the_next_purge() {
    let p = Project::new();
    stopped_job_with_stray_dlq_entry(&p);
    let path = p.job_dir("s").join("dlq.jsonl");
    let before = std::fs::read_to_string(&path).unwrap();
    let out = run_expect(&p, &["dlq", "purge", "s"], 0);
    assert!(
        stderr(&out).contains("removed 1 item(s)"),
        "only a counts: {}",
        stderr(&out)
    );
    // As if the purge was killed after its journal record, before rewriting dlq.jsonl.
    std::fs::write(&path, &before).unwrap();
    assert_eq!(p.status("s")["purged"], 1);
    assert!(dlq_ids(&p, "s").is_empty());
    let out = run_expect(&p, &["dlq", "list", "s"], 0);
    assert!(
        stderr(&out).contains("(a) whose item is purged"),
        "{}",
        stderr(&out)
    );
    run_expect(&p, &["dlq", "purge", "s"], 0);
    let left = std::fs::read_to_string(&path).unwrap();
    assert!(
        !left.contains(r#""item_id":"a""#) && left.contains(r#""item_id":"b""#),
        "the purged item's entry goes, the pending one's stays: {left}"
    );
}

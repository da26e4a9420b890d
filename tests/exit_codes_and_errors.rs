//! SPEC 3.1 exit codes and the error messages behind them.
mod common;
#[path = "common/extra.rs"]
mod extra;
use common::*;
use extra::*;

const OK_WF: &str = "name: ok\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ${item_id} >> seen.txt\"\n";

fn ok_project() -> Project {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"}]"#);
    p.file("wf.yml", OK_WF);
    p
}

#[test]
fn all_ok_exits_0() {
    let p = ok_project();
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(sorted_lines(&p, "seen.txt"), ["a", "b"]);
    assert_eq!(p.status(&p.only_job())["state"], "completed");
}

#[test]
fn some_items_in_dlq_exits_1_and_reduce_still_runs() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"}]"#);
    p.file(
        "wf.yml",
        "name: d\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"test ${item_id} = a\"\nreduce:\n  - shell: \"echo reduced > r.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml"], 1);
    assert!(stderr(&out).contains("DLQ"), "{}", stderr(&out));
    assert_eq!(p.read("r.txt").trim(), "reduced");
    let st = p.status(&p.only_job());
    assert_eq!(st["dlq"], 1);
    assert_eq!(st["successful"], 1);
    assert_eq!(st["state"], "failed");
}

#[test]
fn failing_setup_step_exits_1_and_runs_no_item() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: s\nsetup:\n  - shell: \"exit 4\"\n  - shell: \"echo no > setup2.txt\"\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ran > item.txt\"\nreduce:\n  - shell: \"echo no > reduce.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml"], 1);
    assert!(
        stderr(&out).to_lowercase().contains("setup"),
        "{}",
        stderr(&out)
    );
    assert!(!p.path().join("setup2.txt").exists());
    assert!(!p.path().join("item.txt").exists());
    assert!(!p.path().join("reduce.txt").exists());
    assert_eq!(p.status(&p.only_job())["state"], "failed");
}

#[test]
fn failing_reduce_step_exits_1() {
    let p = ok_project();
    p.file(
        "wf.yml",
        &format!("{OK_WF}reduce:\n  - shell: \"exit 9\"\n  - shell: \"echo no > r2.txt\"\n"),
    );
    let out = run_expect(&p, &["run", "wf.yml"], 1);
    assert!(
        stderr(&out).to_lowercase().contains("reduce"),
        "{}",
        stderr(&out)
    );
    assert!(
        !p.path().join("r2.txt").exists(),
        "reduce stops at the failed step"
    );
    let st = p.status(&p.only_job());
    assert_eq!(st["state"], "failed");
    assert_eq!(st["successful"], 2);
}

#[test]
fn failing_step_fails_item_and_later_steps_do_not_run() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: f\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo one > s1.txt; false\"\n    - shell: \"echo two > s2.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert_eq!(p.read("s1.txt").trim(), "one");
    assert!(
        !p.path().join("s2.txt").exists(),
        "step 2 ran after step 1 failed"
    );
    let fin = events_named(&out, "item_finished");
    assert_eq!(fin[0]["status"], "dlq");
    assert_eq!(fin[0]["exit_code"], 1);
}

#[test]
fn step_killed_by_signal_fails_item() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: sig\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"kill -9 $$\"\n    - shell: \"echo no > s2.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert!(!p.path().join("s2.txt").exists());
    assert_eq!(events_named(&out, "item_finished")[0]["status"], "dlq");
}

#[test]
fn bad_yaml_exits_2_with_file_line_column() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: y\nmap:\n  input: \"x.json\n  agent_template: []\n",
    );
    let out = run_expect(&p, &["validate", "wf.yml"], 2);
    let err = stderr(&out);
    assert!(
        err.contains("wf.yml:3:"),
        "want file:line:column, got {err}"
    );
    let loc = err.split("wf.yml:3:").nth(1).unwrap();
    assert!(
        loc.starts_with(|c: char| c.is_ascii_digit()),
        "no column: {err}"
    );
    p.file(
        "tabs.yml",
        "name: y\nmap:\n  input: x.json\n  agent_template:\n\t- shell: \"x\"\n",
    );
    let out = run_expect(&p, &["run", "tabs.yml"], 2);
    assert!(stderr(&out).contains("tabs.yml:5:"), "{}", stderr(&out));
    assert!(p.jobs().is_empty());
}

#[test]
fn invalid_workflow_exits_2() {
    let p = Project::new();
    for (name, yaml, word) in [
        (
            "noname.yml",
            "map:\n  input: x.json\n  agent_template:\n    - shell: x\n",
            "name",
        ),
        (
            "badname.yml",
            "name: \"bad name\"\nmap:\n  input: x.json\n  agent_template:\n    - shell: x\n",
            "name",
        ),
        ("nomap.yml", "name: n\n", "map"),
        (
            "nosteps.yml",
            "name: n\nmap:\n  input: x.json\n",
            "agent_template",
        ),
        (
            "noshell.yml",
            "name: n\nmap:\n  input: x.json\n  agent_template:\n    - timeout: 1s\n",
            "shell",
        ),
        (
            "badtimeout.yml",
            "name: n\nmap:\n  input: x.json\n  timeout: forever\n  agent_template:\n    - shell: x\n",
            "forever",
        ),
        (
            "badfilter.yml",
            "name: n\nmap:\n  input: x.json\n  filter: 'item.a ==== 3'\n  agent_template:\n    - shell: x\n",
            "filter",
        ),
    ] {
        p.file(name, yaml);
        let out = run_expect(&p, &["validate", name], 2);
        assert!(stderr(&out).contains(word), "{name}: {}", stderr(&out));
        run_expect(&p, &["run", name], 2);
    }
    assert!(p.jobs().is_empty(), "invalid workflows create no job");
}

#[test]
fn validate_ok_exits_0() {
    let p = ok_project();
    let out = run_expect(&p, &["validate", "wf.yml"], 0);
    assert!(stdout(&out).contains("ok") || stderr(&out).contains("ok"));
    assert!(p.jobs().is_empty(), "validate writes no state");
}

#[test]
fn missing_workflow_file_exits_2() {
    let p = Project::new();
    let out = run_expect(&p, &["run", "nope.yml"], 2);
    assert!(stderr(&out).contains("nope.yml"), "{}", stderr(&out));
    run_expect(&p, &["validate", "nope.yml"], 2);
}

#[test]
fn unknown_job_id_exits_2() {
    let p = ok_project();
    run_expect(&p, &["run", "wf.yml"], 0);
    for args in [
        &["status", "no-such-job"][..],
        &["status", "no-such-job", "--json"],
        &["resume", "no-such-job"],
        &["dlq", "list", "no-such-job"],
        &["dlq", "show", "no-such-job", "a"],
    ] {
        let out = run_expect(&p, args, 2);
        assert!(
            stderr(&out).contains("no-such-job"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn invalid_flags_exit_2() {
    let p = ok_project();
    run_expect(&p, &["run", "wf.yml", "--bogus"], 2);
    run_expect(&p, &["run", "wf.yml", "--max-parallel", "0"], 2);
    run_expect(&p, &["run", "wf.yml", "--max-parallel", "many"], 2);
    run_expect(&p, &["run"], 2);
    run_expect(&p, &["frobnicate"], 2);
    run_expect(&p, &["status", "--color", "sometimes"], 2);
    let out = run_expect(&p, &["run", "wf.yml", "--set", "NOEQUALS"], 2);
    assert!(stderr(&out).contains("NOEQUALS"), "{}", stderr(&out));
    assert!(!p.path().join("seen.txt").exists(), "nothing ran");
}

#[test]
fn invalid_job_id_flag_exits_2() {
    let p = ok_project();
    for bad in ["../evil", "a/b", ""] {
        run_expect(&p, &["run", "wf.yml", "--job-id", bad], 2);
    }
    assert!(!p.path().join("seen.txt").exists());
    assert!(!p.path().join("evil").exists());
}

#[test]
fn duplicate_item_ids_exit_2_naming_the_id() {
    let p = Project::new();
    p.file(
        "items.json",
        r#"[{"id":"uniq"},{"id":"twice-42"},{"id":"other"},{"id":"twice-42"}]"#,
    );
    p.file(
        "wf.yml",
        "name: dup\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ${item_id} >> ran.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml"], 2);
    assert!(stderr(&out).contains("twice-42"), "{}", stderr(&out));
    assert!(
        !p.path().join("ran.txt").exists(),
        "no item runs when ids collide"
    );
    // dry-run reports it too
    let out = run_expect(&p, &["run", "wf.yml", "--dry-run"], 2);
    assert!(stderr(&out).contains("twice-42"), "{}", stderr(&out));
    // `distinct:` removes the duplicate
    p.file(
        "wf2.yml",
        "name: dup\nmap:\n  input: items.json\n  distinct: item.id\n  agent_template:\n    - shell: \"echo ${item_id} >> ran.txt\"\n",
    );
    run_expect(&p, &["run", "wf2.yml"], 0);
    assert_eq!(sorted_lines(&p, "ran.txt"), ["other", "twice-42", "uniq"]);
}

#[test]
fn duplicate_ids_from_id_template_exit_2() {
    let p = Project::new();
    p.file("items.json", r#"[{"k":"same","n":1},{"k":"same","n":2}]"#);
    p.file(
        "wf.yml",
        "name: dup\nmap:\n  input: items.json\n  id: \"key-${item.k}\"\n  agent_template:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml"], 2);
    assert!(stderr(&out).contains("key-same"), "{}", stderr(&out));
}

#[test]
fn missing_input_file_exits_2() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: mi\nmap:\n  input: {file: missing.json}\n  agent_template:\n    - shell: \"echo ran > ran.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml"], 2);
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));
    assert!(!p.path().join("ran.txt").exists());
}

#[test]
fn failing_input_command_exits_2() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: mi\nmap:\n  input: {command: \"echo oops >&2; exit 5\"}\n  agent_template:\n    - shell: \"echo ran > ran.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml"], 2);
    assert!(stderr(&out).contains("oops"), "{}", stderr(&out));
    assert!(!p.path().join("ran.txt").exists());
}

#[test]
fn malformed_json_input_exits_2() {
    let p = Project::new();
    p.file("items.json", "[{\"id\": \"a\"}, {\"id\": ");
    p.file(
        "wf.yml",
        "name: mj\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ran > ran.txt\"\n",
    );
    run_expect(&p, &["run", "wf.yml"], 2);
    assert!(!p.path().join("ran.txt").exists());
}

#[test]
fn existing_job_id_is_refused_with_2() {
    let p = ok_project();
    run_expect(&p, &["run", "wf.yml", "--job-id", "fixed-id"], 0);
    std::fs::remove_file(p.path().join("seen.txt")).unwrap();
    let out = run_expect(&p, &["run", "wf.yml", "--job-id", "fixed-id"], 2);
    assert!(stderr(&out).contains("fixed-id"), "{}", stderr(&out));
    assert!(
        !p.path().join("seen.txt").exists(),
        "the second run must not run items"
    );
    assert_eq!(p.jobs(), ["fixed-id"]);
    assert_eq!(p.status("fixed-id")["state"], "completed");
}

#[test]
fn empty_input_completes_with_0() {
    let p = Project::new();
    p.file("items.json", "[]");
    p.file(
        "wf.yml",
        "name: e\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\nreduce:\n  - shell: \"echo ${map.total} > total.txt\"\n",
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("total.txt").trim(), "0");
}

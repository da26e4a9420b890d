//! `status --json` for completed, failed and killed jobs, the status table, `--json` NDJSON
//! events, `--dry-run`, `--set` and `--job-id`.
mod common;
#[path = "common/extra.rs"]
mod extra;
use std::time::Duration;

use common::*;
use extra::*;

fn assert_counts(
    st: &serde_json::Value,
    state: &str,
    total: u64,
    ok: u64,
    failed: u64,
    pending: u64,
    dlq: u64,
) {
    assert_eq!(st["state"], state, "{st}");
    assert_eq!(st["total"], total, "{st}");
    assert_eq!(st["successful"], ok, "{st}");
    assert_eq!(st["failed"], failed, "{st}");
    assert_eq!(st["pending"], pending, "{st}");
    assert_eq!(st["dlq"], dlq, "{st}");
}

#[test]
fn status_json_of_completed_job() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"},{"id":"c"}]"#);
    p.file(
        "wf.yml",
        "name: done\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n",
    );
    run_expect(&p, &["run", "wf.yml", "--job-id", "st-ok"], 0);
    let st = p.status("st-ok");
    assert_eq!(st["job_id"], "st-ok");
    assert_counts(&st, "completed", 3, 3, 0, 0, 0);
}

#[test]
fn status_json_of_failed_job() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"},{"id":"c"}]"#);
    p.file(
        "wf.yml",
        "name: fail\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"test ${item_id} = a\"\n",
    );
    run_expect(&p, &["run", "wf.yml", "--job-id", "st-fail"], 1);
    let st = p.status("st-fail");
    assert_eq!(st["job_id"], "st-fail");
    assert_counts(&st, "failed", 3, 1, 2, 0, 2);
}

#[test]
fn status_json_after_kill_9_is_interrupted() {
    let p = Project::new();
    p.file(
        "items.json",
        r#"[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"},{"id":"e"}]"#,
    );
    p.file(
        "wf.yml",
        "name: killed\nmap:\n  input: items.json\n  max_parallel: 2\n  agent_template:\n    - shell: \"if [ ${item_id} = a ]; then exit 0; fi; echo $$ > pid-${item_id}; touch started-${item_id}; exec sleep 30\"\n",
    );
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("runner"))
        .current_dir(p.path())
        .env("RUNNER_STATE_DIR", p.state_dir())
        .args(["run", "wf.yml", "--job-id", "st-kill", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until items are running (and item a, the first, has finished)
    wait_until(Duration::from_secs(8), "two items running", || {
        std::fs::read_dir(p.path())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("started-"))
                    .count()
                    >= 2
            })
            .unwrap_or(false)
    });
    let pid = child.id() as i32;
    nix_kill9(pid);
    let status = child.wait().unwrap();
    assert!(!status.success());
    // the items' processes die with the runner (parent-death signal)
    for id in ["b", "c", "d", "e"] {
        if p.path().join(format!("started-{id}")).exists() {
            let child_pid = read_pid(&p, &format!("pid-{id}"));
            wait_until(
                Duration::from_secs(5),
                "item process to die with the runner",
                || !pid_alive(child_pid),
            );
        }
    }
    let st = p.status("st-kill");
    assert_eq!(st["job_id"], "st-kill");
    assert_eq!(st["state"], "interrupted", "{st}");
    assert_eq!(st["total"], 5, "{st}");
    assert_eq!(st["successful"], 1, "item a finished before the kill: {st}");
    assert_eq!(st["failed"], 0, "{st}");
    assert_eq!(st["dlq"], 0, "{st}");
    assert_eq!(st["pending"], 4, "{st}");
    // the table also loads it
    let out = run_expect(&p, &["status"], 0);
    assert!(
        stdout(&out).contains("st-kill") && stdout(&out).contains("interrupted"),
        "{}",
        stdout(&out)
    );
    // and resume accepts the state (the remaining items now fail fast)
    p.file(
        "wf.yml",
        "name: killed\nmap:\n  input: items.json\n  max_parallel: 2\n  agent_template:\n    - shell: \"true\"\n",
    );
    let out = p.run(&["resume", "st-kill", "--force"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_counts(&p.status("st-kill"), "completed", 5, 5, 0, 0, 0);
}

fn nix_kill9(pid: i32) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -9 {pid} failed");
}

#[test]
fn status_table_lists_jobs() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: tbl\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n",
    );
    p.file(
        "bad.yml",
        "name: tblbad\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"false\"\n",
    );
    run_expect(&p, &["run", "wf.yml", "--job-id", "tbl-one"], 0);
    run_expect(&p, &["run", "bad.yml", "--job-id", "tbl-two"], 1);
    let out = run_expect(&p, &["status"], 0);
    let text = stdout(&out);
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row {id}: {text}"))
            .to_owned()
    };
    let one = row("tbl-one");
    assert!(
        one.contains("tbl ") && one.contains("completed") && one.contains("1/0/1"),
        "{one}"
    );
    let two = row("tbl-two");
    assert!(
        two.contains("tblbad") && two.contains("failed") && two.contains("0/1/1"),
        "{two}"
    );
    let out = run_expect(&p, &["status", "--json"], 0);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["job_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"tbl-one") && ids.contains(&"tbl-two"),
        "{ids:?}"
    );
}

#[test]
fn ndjson_events_frame_the_run() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"},{"id":"c"}]"#);
    p.file(
        "wf.yml",
        "name: nd\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"test ${item_id} != c\"\nreduce:\n  - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json", "--job-id", "nd-1"], 1);
    let ev = events(&out);
    assert_eq!(ev.first().unwrap()["event"], "job_started");
    assert_eq!(ev[0]["job_id"], "nd-1");
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "job_finished", "{last}");
    assert_eq!(last["job_id"], "nd-1");
    assert_eq!(last["total"], 3);
    assert_eq!(last["successful"], 2);
    assert_eq!(last["failed"], 1);
    assert_eq!(last["dlq"], 1);
    assert_eq!(last["pending"], 0);
    assert_eq!(last["state"], "failed");
    assert_eq!(
        last["exit_code"], 1,
        "job_finished.exit_code should match the process exit"
    );
    let mut ids: Vec<String> = events_named(&out, "item_finished")
        .iter()
        .map(|e| e["item_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b", "c"], "one item_finished per item");
    let phases: Vec<String> = events_named(&out, "phase_finished")
        .iter()
        .map(|e| e["phase"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(phases, ["map", "reduce"]);
    // human output stays on stderr, never mixed into the NDJSON
    assert!(stderr(&out).contains("nd-1"));
}

#[test]
fn ndjson_exit_code_on_success() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: nd\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 0);
    let ev = events(&out);
    let id = ev[0]["job_id"].as_str().unwrap().to_owned();
    assert_eq!(p.only_job(), id, "job_started carries the real job id");
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "job_finished");
    assert_eq!(last["state"], "completed");
    assert_eq!(last["exit_code"], 0);
}

#[test]
fn job_id_is_printed_first_on_stderr() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: first\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--job-id", "first-id"], 0);
    let first = stderr(&out).lines().next().unwrap_or("").to_owned();
    assert!(first.contains("first-id"), "{first}");
}

#[test]
fn dry_run_prints_items_and_commands_and_writes_no_state() {
    let p = Project::new();
    p.file(
        "items.json",
        r#"[{"id":"a","f":"x y"},{"id":"b","f":"z"},{"id":"c","f":"w"}]"#,
    );
    p.file(
        "wf.yml",
        "name: dry\nmap:\n  input: items.json\n  filter: 'item.id != \"c\"'\n  agent_template:\n    - shell: \"echo ${item.f} > out-${item_id}.txt\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--dry-run"], 0);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains("echo 'x y' > out-'a'.txt") || all.contains("echo 'x y' > out-a.txt"),
        "{all}"
    );
    assert!(all.contains("echo z > out-b.txt"), "{all}");
    assert!(!all.contains("echo w"), "filtered item shown: {all}");
    assert!(!p.state_dir().exists(), "dry run wrote state");
    assert!(!p.path().join("out-a.txt").exists(), "dry run ran a step");
}

#[test]
fn set_overrides_workflow_env() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: set\nenv:\n  COLOR: red\n  SIZE: small\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo $COLOR ${env.COLOR} $SIZE $EXTRA > env.txt\"\n",
    );
    run_expect(&p, &["run", "wf.yml"], 0);
    assert_eq!(p.read("env.txt").trim(), "red red small");
    run_expect(
        &p,
        &["run", "wf.yml", "--set", "COLOR=blue", "--set", "EXTRA=a=b"],
        0,
    );
    assert_eq!(p.read("env.txt").trim(), "blue blue small a=b");
}

#[test]
fn job_id_flag_names_the_job_and_existing_id_is_refused() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: jid\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ${job.id} >> jobs.txt\"\n",
    );
    run_expect(&p, &["run", "wf.yml", "--job-id", "my-job.1"], 0);
    assert_eq!(p.jobs(), ["my-job.1"]);
    assert_eq!(lines(&p, "jobs.txt"), ["my-job.1"]);
    let out = run_expect(&p, &["run", "wf.yml", "--job-id", "my-job.1", "--json"], 2);
    assert!(stderr(&out).contains("my-job.1"), "{}", stderr(&out));
    assert_eq!(
        lines(&p, "jobs.txt"),
        ["my-job.1"],
        "refused run ran nothing"
    );
    assert_eq!(
        p.status("my-job.1")["state"],
        "completed",
        "the old job is untouched"
    );
}

//! Timeouts kill the whole process group; retries follow the backoff policy; exhausted
//! retries land in the DLQ with every attempt.
mod common;
#[path = "common/extra.rs"]
mod extra;
use std::time::{Duration, Instant};

use common::*;
use extra::*;

fn assert_dead(pid: i32) {
    // The kill is TERM then KILL after a grace; the grandchild is reparented, so allow the
    // reaper a moment (this is polling, not synchronisation by sleep).
    wait_until(Duration::from_secs(3), &format!("pid {pid} to die"), || {
        !pid_alive(pid)
    });
}

#[test]
fn map_timeout_kills_background_grandchild() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"slow"}]"#);
    p.file(
        "wf.yml",
        r#"name: to
map:
  input: items.json
  timeout: 1s
  kill_grace: 500ms
  agent_template:
    - shell: "sleep 30 & echo $! > bg.pid; sleep 30"
    - shell: "echo no > step2.txt"
"#,
    );
    let start = Instant::now();
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "took {:?}",
        start.elapsed()
    );
    let fin = events_named(&out, "item_finished");
    assert_eq!(fin[0]["status"], "dlq");
    assert!(
        fin[0]["error"].as_str().unwrap().contains("timed out"),
        "{}",
        fin[0]
    );
    assert!(!p.path().join("step2.txt").exists());
    assert_dead(read_pid(&p, "bg.pid"));
    let list = p.run(&["dlq", "list", &p.only_job(), "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["item_id"], "slow");
    assert_eq!(list[0]["failure_class"], "timeout");
}

#[test]
fn step_timeout_kills_background_grandchild() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"slow"},{"id":"fast"}]"#);
    p.file(
        "wf.yml",
        r#"name: sto
map:
  input: items.json
  kill_grace: 500ms
  agent_template:
    - shell: "echo first-${item_id} >> first.txt"
    - shell: "if [ ${item_id} = slow ]; then sleep 30 & echo $! > bg.pid; sleep 30; fi"
      timeout: 1s
"#,
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    let fin = events_named(&out, "item_finished");
    let slow = fin.iter().find(|e| e["item_id"] == "slow").unwrap();
    let fast = fin.iter().find(|e| e["item_id"] == "fast").unwrap();
    assert_eq!(slow["status"], "dlq");
    assert!(
        slow["error"].as_str().unwrap().contains("timed out"),
        "{slow}"
    );
    assert!(slow["error"].as_str().unwrap().contains("step 2"), "{slow}");
    assert_eq!(fast["status"], "succeeded");
    assert_dead(read_pid(&p, "bg.pid"));
}

#[test]
fn setup_step_timeout_fails_the_job() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        r#"name: sut
setup:
  - shell: "sleep 30 & echo $! > bg.pid; sleep 30"
    timeout: 1s
map:
  input: items.json
  kill_grace: 500ms
  agent_template:
    - shell: "echo ran > ran.txt"
"#,
    );
    let start = Instant::now();
    run_expect(&p, &["run", "wf.yml"], 1);
    assert!(start.elapsed() < Duration::from_secs(9));
    assert!(!p.path().join("ran.txt").exists());
    assert_dead(read_pid(&p, "bg.pid"));
}

#[test]
fn process_ignoring_term_is_killed_after_grace() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"stubborn"}]"#);
    p.file(
        "wf.yml",
        r#"name: grace
map:
  input: items.json
  timeout: 1s
  kill_grace: 500ms
  agent_template:
    - shell: "sh -c 'trap \"\" TERM; echo $$ > bg.pid; while :; do sleep 0.1; done' & wait"
"#,
    );
    let start = Instant::now();
    run_expect(&p, &["run", "wf.yml"], 1);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "took {:?}",
        start.elapsed()
    );
    assert_dead(read_pid(&p, "bg.pid"));
}

const FLAKY: &str = "n=$(cat count-${item_id} 2>/dev/null || echo 0); n=$((n+1)); echo $n > count-${item_id}; date +%s%N >> times-${item_id}; test $n -ge 3";

#[test]
fn flaky_item_succeeds_on_third_attempt_with_fixed_backoff() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"flaky"}]"#);
    p.file(
        "wf.yml",
        &format!(
            "name: flaky\nmap:\n  input: items.json\n  retry: {{max_attempts: 3, backoff: fixed, initial_delay: 200ms}}\n  agent_template:\n    - shell: \"{FLAKY}\"\n"
        ),
    );
    let start = Instant::now();
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 0);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(380),
        "two 200ms delays, took {took:?}"
    );
    let fin = events_named(&out, "item_finished");
    assert_eq!(fin[0]["status"], "succeeded");
    assert_eq!(fin[0]["attempts"], 3);
    let retries = events_named(&out, "item_retrying");
    assert_eq!(retries.len(), 2, "{retries:?}");
    for r in &retries {
        assert_eq!(r["delay_ms"], 200, "{r}");
    }
    assert_eq!(p.read("count-flaky").trim(), "3");
    let t: Vec<u128> = lines(&p, "times-flaky")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(t.len(), 3);
    for w in t.windows(2) {
        assert!(
            w[1] - w[0] >= 180_000_000,
            "attempts {}ns apart",
            w[1] - w[0]
        );
    }
    let st = p.status(&p.only_job());
    assert_eq!(st["successful"], 1);
    assert_eq!(st["dlq"], 0);
}

#[test]
fn exponential_backoff_delays_grow() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"e"}]"#);
    p.file(
        "wf.yml",
        "name: exp\nmap:\n  input: items.json\n  retry: {max_attempts: 4, backoff: exponential, initial_delay: 50ms, max_delay: 10s, jitter: false}\n  agent_template:\n    - shell: \"date +%s%N >> times.txt; exit 1\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    let delays: Vec<u64> = events_named(&out, "item_retrying")
        .iter()
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [50, 100, 200]);
    let t: Vec<u128> = lines(&p, "times.txt")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(t.len(), 4);
    let gaps: Vec<u128> = t.windows(2).map(|w| (w[1] - w[0]) / 1_000_000).collect();
    assert!(
        gaps[0] >= 45 && gaps[1] >= 95 && gaps[2] >= 195,
        "gaps {gaps:?} ms"
    );
}

#[test]
fn linear_backoff_and_max_delay_cap() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"l"}]"#);
    p.file(
        "wf.yml",
        "name: lin\nmap:\n  input: items.json\n  retry: {max_attempts: 4, backoff: linear, initial_delay: 40ms, max_delay: 90ms, jitter: false}\n  agent_template:\n    - shell: \"exit 1\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    let delays: Vec<u64> = events_named(&out, "item_retrying")
        .iter()
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [40, 80, 90]);
}

#[test]
fn jitter_keeps_delays_within_bounds() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"j"}]"#);
    p.file(
        "wf.yml",
        "name: jit\nmap:\n  input: items.json\n  retry: {max_attempts: 4, backoff: fixed, initial_delay: 100ms, jitter: true}\n  agent_template:\n    - shell: \"exit 1\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    let delays: Vec<u64> = events_named(&out, "item_retrying")
        .iter()
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays.len(), 3);
    for d in delays {
        assert!(d <= 100, "jittered delay {d} exceeds the base delay");
    }
}

#[test]
fn retry_on_timeout_does_not_retry_exit_failure() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"x"}]"#);
    p.file(
        "wf.yml",
        "name: ron\nmap:\n  input: items.json\n  retry: {max_attempts: 3, initial_delay: 10ms, on: [timeout]}\n  agent_template:\n    - shell: \"echo try >> tries.txt; exit 4\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert_eq!(lines(&p, "tries.txt").len(), 1);
    assert!(events_named(&out, "item_retrying").is_empty());
    assert_eq!(events_named(&out, "item_finished")[0]["attempts"], 1);
}

#[test]
fn retry_on_timeout_retries_a_timeout() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"x"}]"#);
    p.file(
        "wf.yml",
        "name: ron\nmap:\n  input: items.json\n  timeout: 300ms\n  kill_grace: 100ms\n  retry: {max_attempts: 2, initial_delay: 10ms, on: [timeout]}\n  agent_template:\n    - shell: \"echo try >> tries.txt; sleep 20\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    assert_eq!(lines(&p, "tries.txt").len(), 2);
    assert_eq!(events_named(&out, "item_finished")[0]["attempts"], 2);
}

#[test]
fn retry_on_exit_code_only_retries_that_code() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"c3"},{"id":"c4"}]"#);
    p.file(
        "wf.yml",
        "name: rex\nmap:\n  input: items.json\n  retry: {max_attempts: 3, initial_delay: 10ms, on: [\"exit:3\"]}\n  agent_template:\n    - shell: \"echo t >> tries-${item_id}; if [ ${item_id} = c3 ]; then exit 3; else exit 4; fi\"\n",
    );
    run_expect(&p, &["run", "wf.yml"], 1);
    assert_eq!(lines(&p, "tries-c3").len(), 3);
    assert_eq!(lines(&p, "tries-c4").len(), 1);
}

#[test]
fn exhausted_retries_go_to_dlq_with_every_attempt() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"doomed"}]"#);
    p.file(
        "wf.yml",
        "name: ex\nmap:\n  input: items.json\n  retry: {max_attempts: 3, initial_delay: 10ms}\n  agent_template:\n    - shell: \"echo oops-${attempt} >&2; exit $((10 + ${attempt:raw}))\"\n",
    );
    let out = run_expect(&p, &["run", "wf.yml", "--json"], 1);
    let fin = events_named(&out, "item_finished");
    assert_eq!(fin[0]["status"], "dlq");
    assert_eq!(fin[0]["attempts"], 3);
    assert_eq!(fin[0]["exit_code"], 13);
    let job = p.only_job();
    let list = run_expect(&p, &["dlq", "list", &job, "--json"], 0);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["item_id"], "doomed");
    assert_eq!(list[0]["attempts"], 3);
    assert!(list[0].get("last_error").is_some(), "{list}");
    let show = run_expect(&p, &["dlq", "show", &job, "doomed"], 0);
    let text = format!("{}{}", stdout(&show), stderr(&show));
    for code in ["11", "12", "13"] {
        assert!(
            text.contains(code),
            "attempt with exit {code} missing from:\n{text}"
        );
    }
    for n in 1..=3 {
        assert!(
            text.contains(&format!("oops-{n}")),
            "stderr of attempt {n} missing:\n{text}"
        );
    }
}

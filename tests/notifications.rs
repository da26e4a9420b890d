//! Notifications and health (issue 13): webhooks against a loopback HTTP server started by
//! the test, a failing webhook that is retried and then only warned about, a command that
//! gets the event JSON, `stale` for items past `map.stuck_after`, and `runner health`.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/extra.rs"]
mod extra;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use crash::{spawn, wait_until};
use extra::run_expect;

/// A loopback HTTP server answering its first requests with `statuses` (a status of 0:
/// never answer), sending each request's body to the returned channel.
fn hook(statuses: Vec<u16>) -> (String, mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/hooks/secret-token",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for status in statuses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or_default());
            let mut stream = reader.into_inner();
            if status == 0 {
                held.push(stream); // never answered
                continue;
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        if !held.is_empty() {
            // Keep the unanswered connections open past the client's timeout.
            std::thread::sleep(Duration::from_secs(30));
        }
    });
    (url, rx)
}

fn recv(rx: &mpsc::Receiver<serde_json::Value>) -> serde_json::Value {
    rx.recv_timeout(Duration::from_secs(20))
        .expect("a webhook request")
}

#[test]
fn a_webhook_gets_the_dlq_and_failure_events_as_json_with_slack_text() {
    let (url, rx) = hook(vec![200, 200]);
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"}]"#);
    p.file(
        "wf.yml",
        &format!(
            "name: hooked\nnotify:\n  - {{ on: [failure, dlq], webhook: \"{url}\" }}\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"[ ${{item_id}} != b ]\"\n"
        ),
    );
    run_expect(&p, &["run", "wf.yml", "--job-id", "h1"], 1);
    let dlq = recv(&rx);
    assert_eq!(dlq["event"], "dlq", "{dlq}");
    assert_eq!(dlq["item_id"], "b");
    assert_eq!(dlq["job_id"], "h1");
    let failure = recv(&rx);
    assert_eq!(failure["event"], "failure", "{failure}");
    assert_eq!(failure["counts"]["dlq"], 1);
    let text = failure["text"].as_str().unwrap();
    assert!(text.contains("job h1 (hooked) failed"), "{text}");
    let records = p.read(".runner/jobs/h1/notifications.jsonl");
    assert_eq!(records.lines().count(), 2, "{records}");
    assert!(records.contains("\"ok\":true"), "{records}");
    // The secret part of the URL is never written down.
    assert!(!records.contains("secret-token"), "{records}");
}

#[test]
fn a_failing_webhook_is_retried_then_a_warning_and_a_record_not_a_job_failure() {
    let (url, rx) = hook(vec![500, 503, 500]);
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        &format!(
            "name: ok\nnotify:\n  - {{ on: [success], webhook: \"{url}\", retries: 2, backoff: 50ms, timeout: 2s }}\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n"
        ),
    );
    let out = run_expect(&p, &["run", "wf.yml", "--job-id", "w1"], 0);
    for _ in 0..3 {
        assert_eq!(recv(&rx)["event"], "success");
    }
    let err = stderr(&out);
    assert!(
        err.contains("warning: notification `success` to webhook")
            && err.contains("failed after 3 attempt(s)"),
        "{err}"
    );
    let rec: serde_json::Value =
        serde_json::from_str(p.read(".runner/jobs/w1/notifications.jsonl").trim()).unwrap();
    assert_eq!(rec["ok"], false);
    assert_eq!(rec["attempts"], 3);
    assert_eq!(p.status("w1")["state"], "completed");
}

#[test]
fn a_webhook_that_never_answers_does_not_hang_the_job() {
    let (url, _rx) = hook(vec![0, 0]);
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        &format!(
            "name: ok\nnotify:\n  - {{ on: [success], webhook: \"{url}\", retries: 1, backoff: 10ms, timeout: 300ms }}\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"true\"\n"
        ),
    );
    let t = Instant::now();
    let out = run_expect(&p, &["run", "wf.yml"], 0);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        stderr(&out).contains("timed out") || stderr(&out).contains("timeout"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_command_gets_the_event_on_stdin_and_as_variables() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"}]"#);
    p.file(
        "wf.yml",
        "name: cmd\nnotify:\n  - on: [success, timeout]\n    command: \"cat > event-${event.event}.json; echo ${event.job_id} ${event.counts.successful} > id-${event.event}.txt\"\nmap:\n  input: items.json\n  timeout: 300ms\n  retry: { max_attempts: 2, initial_delay: 10ms }\n  agent_template:\n    - shell: \"if [ ${item_id} = b ] && [ ! -f tried ]; then touch tried; sleep 5; fi\"\n",
    );
    run_expect(&p, &["run", "wf.yml", "--job-id", "c1"], 0);
    let ev: serde_json::Value = serde_json::from_str(&p.read("event-success.json")).unwrap();
    assert_eq!(ev["event"], "success");
    assert_eq!(ev["job_id"], "c1");
    assert_eq!(ev["workflow"], "cmd");
    assert_eq!(ev["counts"]["total"], 2);
    assert!(ev["text"].as_str().unwrap().contains("completed"));
    assert_eq!(p.read("id-success.txt").trim(), "c1 2");
    let t: serde_json::Value = serde_json::from_str(&p.read("event-timeout.json")).unwrap();
    assert_eq!(t["item_id"], "b");
    assert_eq!(t["attempt"], 1);
    assert_eq!(
        p.read("id-timeout.txt").trim(),
        "c1",
        "absent fields are empty"
    );
}

#[test]
fn a_stuck_item_is_notified_and_makes_health_fail_until_it_ends() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"slow"}]"#);
    p.file(
        "wf.yml",
        "name: stuck\nnotify:\n  - { on: [stale], command: \"cat > stale.json\" }\nmap:\n  input: items.json\n  stuck_after: 300ms\n  agent_template:\n    - shell: \"while [ ! -f go ]; do sleep 0.05; done\"\n",
    );
    run_expect(&p, &["health"], 0);
    let mut bg = spawn(&p, &["run", "wf.yml", "--job-id", "s1", "--json"]);
    wait_until("the stale notification", Duration::from_secs(20), || {
        p.read("stale.json").contains("}")
    });
    let ev: serde_json::Value = serde_json::from_str(&p.read("stale.json")).unwrap();
    assert_eq!(ev["event"], "stale");
    assert_eq!(ev["item_id"], "slow");
    assert!(ev["running_ms"].as_u64().unwrap() >= 300);
    let out = run_expect(&p, &["health", "--json"], 1);
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["healthy"], false);
    assert_eq!(h["stuck_items"][0]["item_id"], "slow", "{h}");
    assert_eq!(h["stuck_items"][0]["job_id"], "s1");
    p.file("go", "");
    assert_eq!(
        bg.wait_code(Duration::from_secs(20)),
        Some(0),
        "{}",
        bg.stderr()
    );
    assert!(
        bg.stdout().contains("\"event\":\"item_stuck\""),
        "{}",
        bg.stdout()
    );
    run_expect(&p, &["health"], 0);
}

#[test]
fn health_reports_error_rates_and_stale_jobs() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"},{"id":"c"}]"#);
    p.file(
        "wf.yml",
        "name: flaky\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"[ ${item_id} = a ]\"\n",
    );
    run_expect(&p, &["run", "wf.yml", "--job-id", "f1"], 1);
    let out = run_expect(&p, &["health", "--json"], 1);
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["error_rates"][0]["workflow"], "flaky", "{h}");
    assert_eq!(h["error_rates"][0]["failed"], 2);
    assert_eq!(h["error_rates"][0]["finished"], 3);
    let err = stderr(&run_expect(&p, &["health"], 1));
    assert!(err.contains("workflow flaky: 2 of 3 items failed"), "{err}");
    run_expect(&p, &["health", "--max-error-rate", "0.7"], 0);

    // A live lock whose heartbeat stopped: stale.
    let lock = p.job_dir("f1").join("lock");
    std::fs::write(
        &lock,
        r#"{"pid":4242,"host":"h","command":"runner run","started_at":"2020-01-01T00:00:00Z","heartbeat_at":"2020-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let f = std::fs::File::open(&lock).unwrap();
    f.lock().unwrap();
    let out = run_expect(&p, &["health", "--json", "--max-error-rate", "1"], 1);
    let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["stale_jobs"][0]["job_id"], "f1", "{h}");
    assert_eq!(h["stale_jobs"][0]["pid"], 4242);
    drop(f);
    run_expect(&p, &["health", "--max-error-rate", "1"], 0);
}

#[test]
fn a_pipeline_notifies_its_failure_naming_the_failed_jobs() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "bad.yml",
        "name: bad\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"false\"\n",
    );
    p.file(
        "p.yml",
        "name: pipe\nnotify:\n  - { on: [failure], command: \"cat > failed.json\" }\njobs:\n  one: { workflow: bad.yml }\n",
    );
    run_expect(&p, &["run", "p.yml", "--job-id", "pp"], 1);
    let ev: serde_json::Value = serde_json::from_str(&p.read("failed.json")).unwrap();
    assert_eq!(ev["kind"], "pipeline");
    assert_eq!(ev["failed_nodes"][0], "one");
    // A pipeline does not raise item events: said at validation.
    p.file(
        "p2.yml",
        "name: pipe\nnotify:\n  - { on: [dlq], command: \"true\" }\njobs:\n  one: { workflow: bad.yml }\n",
    );
    let err = stderr(&run_expect(&p, &["validate", "p2.yml"], 2));
    assert!(err.contains("p2.yml:3:") && err.contains("dlq"), "{err}");
}

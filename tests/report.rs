//! `runner report` (issue 14): a small job, a failed job with DLQ entries and a
//! 10,000-item job, as HTML and as JSON; and the pages drawn by a real Chromium.
//!
//! The small and failed jobs are real runs. The 10,000-item job is written with the
//! library's own state writers (journal, items, DLQ) so the test stays fast: running 10,000
//! shells takes a minute on a busy 2-core machine, and the report only reads those files.
//!
//! The browser tests run when `RUNNER_REQUIRE_CHROMIUM=1` (set by `.ci/run`, which
//! installs Debian's `chromium` when it is missing): then a missing or broken Chromium
//! fails them. Without it they are `ignored`.

mod common;
#[path = "common/extra.rs"]
mod extra;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use common::*;
use extra::*;
use runner::items::Item;
use runner::state::atomic::write_checksummed;
use runner::state::dlq::{self, DlqEntry};
use runner::state::items_file;
use runner::state::job::JobMeta;
use runner::state::journal::JournalWriter;
use runner::state::layout::StateDir;
use runner::state::records::{Attempt, Failure, ItemStatus, JobState, Ran, Record, Usage};
use runner::state::time::Timestamp;

/// A finished small job: 6 items, 2 at a time, a setup and a reduce step.
fn small_job() -> &'static (Project, String) {
    static JOB: OnceLock<(Project, String)> = OnceLock::new();
    JOB.get_or_init(|| {
        let p = Project::new();
        p.file(
            "wf.yml",
            r#"name: small
setup:
  - shell: 'true'
map:
  input: { command: "seq 1 6" }
  id: 'item-${item}'
  max_parallel: 2
  agent_template:
    - shell: 'sleep 0.1'
reduce:
  - shell: 'true'
"#,
        );
        run_expect(&p, &["run", "wf.yml"], 0);
        let job = p.only_job();
        (p, job)
    })
}

/// A failed job: one item retried and failing for good, one whose id is markup.
fn failed_job() -> &'static (Project, String) {
    static JOB: OnceLock<(Project, String)> = OnceLock::new();
    JOB.get_or_init(|| {
        let p = Project::new();
        p.file(
            "items.json",
            r#"[{"id":"ok"},{"id":"broken"},{"id":"<b>x</b>"}]"#,
        );
        p.file(
            "wf.yml",
            r#"name: failing
map:
  input: items.json
  id: '${item.id}'
  max_parallel: 3
  retry: { max_attempts: 2, initial_delay: 0s }
  agent_template:
    - shell: |
        case ${item.id} in
          broken) echo "broken input, line 7" >&2; exit 3 ;;
          ok) true ;;
          *) echo "tag <oops>" >&2; exit 4 ;;
        esac
"#,
        );
        run_expect(&p, &["run", "wf.yml"], 1);
        let job = p.only_job();
        (p, job)
    })
}

const BIG: usize = 10_000;
const BIG_LANES: usize = 8;

/// A 10,000-item job as a run of it records it (8 slots, 10 ms items, every 100th item
/// failing twice), written with the library's state writers.
fn big_job() -> &'static (Project, String) {
    static JOB: OnceLock<(Project, String)> = OnceLock::new();
    JOB.get_or_init(|| {
        let p = Project::new();
        let job = "big-10k".to_owned();
        write_big_job(&p.state_dir(), &job);
        (p, job)
    })
}

fn write_big_job(state: &Path, job: &str) {
    let dir = StateDir::new(state).create_job(job).expect("job dir");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let at = |ms: u64| Timestamp::from(t0 + Duration::from_millis(ms));
    let meta = JobMeta {
        job_id: job.to_owned(),
        workflow_name: "big".into(),
        workflow_path: state.join("big.yml"),
        workflow_dir: state.to_path_buf(),
        fingerprint: "x".into(),
        created_at: at(0),
        overrides: Vec::new(),
        max_parallel: Some(BIG_LANES),
    };
    write_checksummed(&dir.meta(), &meta).expect("meta");
    let items: Vec<Arc<Item>> = (0..BIG)
        .map(|i| {
            Arc::new(Item {
                id: format!("item-{i}"),
                value: serde_json::json!(i),
            })
        })
        .collect();
    let hash = items_file::write(&dir.items(), &items).expect("items");
    let j = JournalWriter::<Record>::open(&dir.journal()).expect("journal");
    let rec = |r: Record| {
        j.append(r).expect("append");
    };
    rec(Record::RunStarted {
        run: 1,
        command: "run".into(),
        pid: 1,
        at: at(0),
    });
    rec(Record::MapStarted {
        total: BIG,
        items_hash: hash,
    });
    let usage = |i: usize| Usage {
        peak_rss_kb: 2_000 + (i as u64 * 37) % 50_000,
        cpu_ms: 1 + (i as u64 * 13) % 40,
    };
    let slot_ms = 12;
    for i in 0..BIG {
        let start = (i / BIG_LANES) as u64 * slot_ms * 3;
        let failing = i % 100 == 0;
        let attempts = if failing { 2 } else { 1 };
        for a in 0..attempts {
            let s = start + a * slot_ms;
            if failing {
                rec(Record::Attempt {
                    idx: i,
                    attempt: attempt_rec(a as u32 + 1, at(s), usage(i)),
                });
            } else {
                rec(Record::ItemDone {
                    idx: i,
                    status: ItemStatus::Succeeded,
                    attempts: 1,
                    duration_ms: 10,
                    exit_code: None,
                    captured: Default::default(),
                    ran: Some(Ran::new(at(s), 10, Some(usage(i)))),
                });
            }
        }
        if failing {
            rec(Record::ItemDone {
                idx: i,
                status: ItemStatus::Dlq,
                attempts: 2,
                duration_ms: 22,
                exit_code: Some(2),
                captured: Default::default(),
                ran: None,
            });
            dlq::append(
                &dir.dlq(),
                &DlqEntry {
                    item_id: format!("item-{i}"),
                    item: serde_json::json!(i),
                    attempts: vec![attempt_rec(2, at(start + slot_ms), usage(i))],
                    first_failure_at: at(start),
                    last_failure_at: at(start),
                },
            )
            .expect("dlq");
        }
    }
    let end = (BIG / BIG_LANES) as u64 * slot_ms * 3;
    rec(Record::RunEnded {
        run: 1,
        state: JobState::Failed,
        at: at(end),
    });
    j.flush().expect("flush");
}

/// A failed attempt of the big job.
fn attempt_rec(attempt: u32, at: Timestamp, usage: Usage) -> Attempt {
    Attempt {
        attempt,
        started_at: at,
        duration_ms: 10,
        failure: Some(Failure::Exit { code: 2, step: 0 }),
        stderr_tail: "exit 2".into(),
        usage: Some(usage),
    }
}

/// `runner report JOB --json`.
fn report_json(p: &Project, job: &str) -> serde_json::Value {
    let out = run_expect(p, &["report", job, "--json"], 0);
    serde_json::from_slice(&out.stdout).expect("report JSON")
}

/// `runner report JOB -o FILE`: the HTML text and where it is.
fn report_html(p: &Project, job: &str) -> (String, PathBuf) {
    let path = p.path().join(format!("{job}.html"));
    let out = run_expect(p, &["report", job, "-o", path.to_str().unwrap()], 0);
    assert!(stderr(&out).contains("wrote"), "{}", stderr(&out));
    (std::fs::read_to_string(&path).expect("report file"), path)
}

/// The page loads nothing: no URL other than the SVG namespace-free markup we write.
fn assert_self_contained(html: &str) {
    for needle in [
        "http://", "https://", "src=", "href=", "@import", "url(http",
    ] {
        assert!(!html.contains(needle), "the page refers to {needle:?}");
    }
    assert!(html.contains("default-src 'none'"), "a CSP forbids loading");
}

#[test]
fn small_job_report_draws_every_attempt_in_its_lanes() {
    let (p, job) = small_job();
    let r = report_json(p, job);
    assert_eq!(r["format_version"], 1);
    assert_eq!(r["state"], "completed");
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["summary"]["total"], 6);
    assert_eq!(r["summary"]["attempts"], 6);
    let t = &r["timeline"];
    assert_eq!(t["lanes"], 2, "max_parallel 2 gives 2 lanes: {t}");
    assert!(t.get("aggregated").is_none());
    let bars = t["bars"].as_array().unwrap();
    assert_eq!(bars.len(), 6);
    for b in bars {
        assert_eq!(b["outcome"], "ok");
        assert!(b["ms"].as_u64().unwrap() >= 100, "{b}");
        assert!(b["peak_rss_kb"].as_u64().unwrap() > 0 && b.get("cpu_ms").is_some());
    }
    // No two bars of a lane overlap.
    for lane in 0..2 {
        let mut spans: Vec<(u64, u64)> = bars
            .iter()
            .filter(|b| b["lane"] == lane)
            .map(|b| {
                let s = b["start_ms"].as_u64().unwrap();
                (s, s + b["ms"].as_u64().unwrap())
            })
            .collect();
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");
    }
    let steps: Vec<&str> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["setup", "reduce"]);
    assert_eq!(
        r["histograms"]["duration_ms"]["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>(),
        6
    );
    assert_eq!(r["slowest"].as_array().unwrap().len(), 6);
    assert_eq!(r["dlq"]["entries"], 0);

    let (html, _) = report_html(p, job);
    assert_self_contained(&html);
    assert!(html.starts_with("<!doctype html>"));
    assert_eq!(html.matches("class=\"o-ok\" data-k").count(), 6);
    assert!(html.contains("item-3 · attempt 1 · "));
    assert!(html.contains("setup step 1"));
    assert!(html.contains("The DLQ is empty."));
}

#[test]
fn failed_job_report_shows_retries_classes_and_stderr_tails() {
    let (p, job) = failed_job();
    let r = report_json(p, job);
    assert_eq!(r["state"], "failed");
    assert_eq!(r["exit_code"], 1);
    assert_eq!(r["summary"]["attempts"], 5);
    assert_eq!(r["summary"]["retries"], 2);
    let bars = r["timeline"]["bars"].as_array().unwrap();
    let outcomes = |id: &str| -> Vec<String> {
        let mut v: Vec<(u64, String)> = bars
            .iter()
            .filter(|b| b["item_id"] == id)
            .map(|b| {
                (
                    b["attempt"].as_u64().unwrap(),
                    b["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, o)| o).collect()
    };
    assert_eq!(outcomes("broken"), ["retried", "failed"]);
    assert_eq!(outcomes("ok"), ["ok"]);
    let d = &r["dlq"];
    assert_eq!(d["entries"], 2);
    let classes = d["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 1);
    assert_eq!(classes[0]["class"], "exit");
    assert_eq!(classes[0]["count"], 2);
    let tails: Vec<&str> = classes[0]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stderr_tail"].as_str().unwrap())
        .collect();
    assert!(tails.contains(&"broken input, line 7"), "{tails:?}");

    let (html, _) = report_html(p, job);
    assert_self_contained(&html);
    assert!(html.contains("broken input, line 7"));
    // Ids and output are text, never markup.
    assert!(!html.contains("<b>x</b>") && !html.contains("<oops>"));
    assert!(html.contains("&lt;b&gt;x&lt;/b&gt;") && html.contains("tag &lt;oops&gt;"));
    assert!(html.contains("class=\"o-retried\""));
}

#[test]
fn a_ten_thousand_item_report_is_aggregated_and_says_so() {
    let (p, job) = big_job();
    let started = std::time::Instant::now();
    let r = report_json(p, job);
    let t = &r["timeline"];
    assert_eq!(t["lanes"], BIG_LANES as u64);
    let agg = &t["aggregated"];
    assert!(agg.is_object(), "10,000 attempts are folded: {agg}");
    assert!(t["bars"].as_array().unwrap().is_empty());
    let cells = t["cells"].as_array().unwrap();
    let started_attempts: u64 = cells
        .iter()
        .map(|c| {
            ["ok", "retried", "timeout", "limit", "failed"]
                .iter()
                .map(|k| c[*k].as_u64().unwrap())
                .sum::<u64>()
        })
        .sum();
    assert_eq!(started_attempts, (BIG + BIG / 100) as u64);
    assert_eq!(r["summary"]["dlq"], 100);
    assert_eq!(r["dlq"]["classes"][0]["count"], 100);
    assert_eq!(
        r["dlq"]["classes"][0]["examples"].as_array().unwrap().len(),
        5
    );
    assert_eq!(r["slowest"].as_array().unwrap().len(), 10);
    assert_eq!(r["heaviest"].as_array().unwrap().len(), 10);
    let (html, path) = report_html(p, job);
    assert_self_contained(&html);
    assert!(html.contains("<b>Aggregated:</b> 10100 attempts"));
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 3_000_000, "the page stays small: {size} bytes");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "two reports of 10,000 items took {:?}",
        started.elapsed()
    );
}

/// A pipeline: `prep` completes, `score` (needs prep) puts an item in its DLQ, `publish`
/// (needs score) is skipped.
fn pipeline_job() -> &'static (Project, String) {
    static JOB: OnceLock<(Project, String)> = OnceLock::new();
    JOB.get_or_init(|| {
        let p = Project::new();
        let wf = |name: &str, shell: &str| {
            p.file(
                &format!("{name}.yml"),
                &format!(
                    "name: {name}\nmap:\n  input: {{ command: \"seq 1 3\" }}\n  max_parallel: 2\n  agent_template:\n    - shell: '{shell}'\n"
                ),
            );
        };
        wf("prep", "true");
        wf("score", "[ ${item} != 2 ] || { echo score-broke >&2; exit 5; }");
        wf("publish", "true");
        p.file(
            "nightly.pipeline.yml",
            "name: nightly\njobs:\n  prep: { workflow: prep.yml }\n  score: { workflow: score.yml, needs: [prep] }\n  publish: { workflow: publish.yml, needs: [score] }\n",
        );
        run_expect(&p, &["run", "nightly.pipeline.yml", "--job-id", "pl"], 1);
        (p, "pl".to_owned())
    })
}

#[test]
fn a_pipeline_report_has_one_row_per_node_then_each_job() {
    let (p, id) = pipeline_job();
    let r = report_json(p, id);
    assert_eq!(r["kind"], "pipeline");
    assert_eq!(r["pipeline"], "nightly");
    assert_eq!(r["state"], "failed");
    assert_eq!(r["exit_code"], 1);
    let nodes = r["nodes"].as_array().unwrap();
    let rows: Vec<(&str, &str, &str)> = nodes
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap(),
                n["job_id"].as_str().unwrap(),
                n["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("prep", "pl.prep", "completed"),
            ("score", "pl.score", "failed"),
            ("publish", "pl.publish", "skipped"),
        ]
    );
    assert_eq!(nodes[1]["dlq"], 1);
    assert_eq!(nodes[1]["attempts"], 3);
    assert_eq!(nodes[1]["needs"][0], "prep");
    // prep ran before score, on the pipeline's time axis; publish never ran.
    let start = |i: usize| nodes[i]["start_ms"].as_u64().unwrap();
    assert!(
        start(0) + nodes[0]["ms"].as_u64().unwrap() <= start(1),
        "{nodes:?}"
    );
    assert!(nodes[2]["start_ms"].is_null());
    let jobs: Vec<&str> = r["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["pl.prep", "pl.score"]);
    assert_eq!(
        r["jobs"][1]["dlq"]["classes"][0]["examples"][0]["stderr_tail"],
        "score-broke"
    );

    let (html, _) = report_html(p, id);
    assert_self_contained(&html);
    assert!(html.contains("<h1>Pipeline nightly</h1>"));
    assert_eq!(
        html.matches("class=\"badge nd-").count(),
        3,
        "one row per node"
    );
    assert!(html.contains("did not run"));
    assert!(html.contains("<h2>Job prep</h2>") && html.contains("<h2>Job score</h2>"));
    assert!(html.contains("score-broke"));
}

/// A long job's journal drops its old segments; the report still draws every attempt.
#[test]
fn the_report_keeps_every_attempt_after_journal_segments_are_dropped() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: long\nmap:\n  input: { command: \"seq 1 60\" }\n  max_parallel: 4\n  agent_template:\n    - shell: 'true'\n",
    );
    let out = p
        .cmd()
        .env("RUNNER_JOURNAL_SEGMENT_BYTES", "2000")
        .args(["run", "wf.yml"])
        .output()
        .expect("run runner");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let job = p.only_job();
    let dir = p.job_dir(&job);
    assert!(
        !dir.join("journal.0.log").exists() && !dir.join("journal.1.log").exists(),
        "old segments were dropped"
    );
    let r = report_json(&p, &job);
    assert_eq!(r["summary"]["attempts"], 60);
    assert_eq!(r["timeline"]["bars"].as_array().unwrap().len(), 60);
    assert_eq!(r["timeline"]["runs"].as_array().unwrap().len(), 1);
}

#[test]
fn a_finished_jobs_timeline_is_sealed_and_a_later_run_appends_to_it() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"}]"#);
    p.file(
        "wf.yml",
        "name: seal\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'test -f ok-${item.id}'\n",
    );
    p.file("ok-a", "");
    run_expect(&p, &["run", "wf.yml"], 1);
    let job = p.only_job();
    let timeline = p.job_dir(&job).join("timeline.bin");
    let head = |path: &Path| std::fs::read(path).expect("timeline")[..16].to_vec();
    assert_eq!(
        head(&timeline),
        b"runner tl lz4 1\n",
        "sealed when the job failed"
    );
    assert_eq!(report_json(&p, &job)["summary"]["attempts"], 2);
    // `dlq retry` unseals it, appends the new attempt, and seals it again.
    p.file("ok-b", "");
    run_expect(&p, &["dlq", "retry", &job], 0);
    assert_eq!(head(&timeline), b"runner tl lz4 1\n");
    let r = report_json(&p, &job);
    assert_eq!(r["summary"]["attempts"], 3);
    assert_eq!(r["timeline"]["runs"].as_array().unwrap().len(), 2);
}

#[test]
fn report_of_an_unknown_job_is_a_usage_error() {
    let p = Project::new();
    let out = p.run(&["report", "nope"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("unknown job id"), "{}", stderr(&out));
}

// ---------------------------------------------------------------- in a real browser

/// The Chromium binary (`CHROMIUM`, else `chromium` on PATH).
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// What Chromium made of a page: its screenshot and its console lines.
struct Rendered {
    png: Vec<u8>,
    console: Vec<String>,
}

/// Headless Chromium as root with a fresh profile in `profile`, logging to stderr.
fn chromium_cmd(profile: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2400",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn render(html: &Path) -> Rendered {
    let tmp = tempfile::tempdir().expect("tempdir");
    let shot = tmp.path().join("shot.png");
    let out = chromium_cmd(&tmp.path().join("profile"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "RUNNER_REQUIRE_CHROMIUM=1 but {} cannot run: {e}",
                chromium()
            )
        });
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "Chromium wrote no screenshot ({e}); exit {:?}, stderr:\n{log}",
            out.status
        )
    });
    Rendered {
        png,
        console: log
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(String::from)
            .collect(),
    }
}

/// Pixels that are clearly green (the succeeded bars and cells).
fn green_pixels(png: &[u8]) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let step = info.color_type.samples();
    assert!(step >= 3, "colour screenshot");
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|px| {
            let (r, g, b) = (px[0] as i32, px[1] as i32, px[2] as i32);
            g > r + 40 && g > b + 20
        })
        .count()
}

fn assert_draws(p: &Project, job: &str, min_green: usize) {
    let (_, path) = report_html(p, job);
    let r = render(&path);
    assert!(
        r.png.len() > 10_000,
        "a near-empty screenshot: {} bytes",
        r.png.len()
    );
    let green = green_pixels(&r.png);
    assert!(
        green >= min_green,
        "{green} green pixels: the timeline did not draw"
    );
    assert!(
        r.console.is_empty(),
        "console messages (errors, blocked loads):\n{}",
        r.console.join("\n")
    );
}

#[test]
#[cfg_attr(
    not(runner_require_chromium),
    ignore = "needs Chromium: RUNNER_REQUIRE_CHROMIUM=1 (set by .ci/run)"
)]
fn chromium_draws_the_small_job() {
    let (p, job) = small_job();
    assert_draws(p, job, 500);
    // The page's script ran to its end.
    let (_, path) = report_html(p, job);
    let tmp = tempfile::tempdir().unwrap();
    let out = chromium_cmd(tmp.path())
        .arg("--dump-dom")
        .arg(format!("file://{}", path.display()))
        .output()
        .expect("chromium --dump-dom");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("data-drawn=\"1\""),
        "the script did not finish"
    );
}

#[test]
#[cfg_attr(
    not(runner_require_chromium),
    ignore = "needs Chromium: RUNNER_REQUIRE_CHROMIUM=1 (set by .ci/run)"
)]
fn chromium_draws_the_failed_job_with_its_dlq() {
    let (p, job) = failed_job();
    assert_draws(p, job, 100);
}

#[test]
#[cfg_attr(
    not(runner_require_chromium),
    ignore = "needs Chromium: RUNNER_REQUIRE_CHROMIUM=1 (set by .ci/run)"
)]
fn chromium_draws_the_ten_thousand_item_job() {
    let (p, job) = big_job();
    assert_draws(p, job, 5_000);
}

#[test]
#[cfg_attr(
    not(runner_require_chromium),
    ignore = "needs Chromium: RUNNER_REQUIRE_CHROMIUM=1 (set by .ci/run)"
)]
fn chromium_draws_the_pipeline() {
    let (p, id) = pipeline_job();
    assert_draws(p, id, 300);
}

//! A journal cut at any byte (a torn last write) is accepted: `status` loads and `resume`
//! completes, re-running only items whose success was not recorded before the cut. A damaged
//! record in the middle is reported as corruption, never ignored and never a panic.
//!
//! Offsets come from a seeded RNG (`RUNNER_TORN_SEED=<n>` to replay).

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use crash::*;

const ITEMS: usize = 40;

/// Items append their id to `$EXEC_LOG`; items above 30 wait for the file `$GO`.
fn project() -> Project {
    let p = Project::new();
    p.file("items.json", &numbered_items(ITEMS));
    p.file(
        "wf.yml",
        r#"name: torn
map:
  input: items.json
  max_parallel: 4
  agent_template:
    - shell: |
        echo ${item_id} >> "$EXEC_LOG"
        if [ ${item_id} -gt 30 ]; then while [ ! -f "$GO" ]; do sleep 0.05; done; fi
reduce:
  - shell: "echo ${map.successful}/${map.total} > \"$EXEC_LOG.summary\""
"#,
    );
    p.file("go", "");
    p
}

fn env<'a>(exec_log: &'a str, go: &'a str) -> [(&'a str, &'a str); 2] {
    [("EXEC_LOG", exec_log), ("GO", go)]
}

/// A completed job's state dir.
fn completed_base(p: &Project) -> PathBuf {
    let state = p.path().join("base-completed");
    let log = p.path().join("base-completed.log");
    let go = p.path().join("go");
    let out = run_with(
        p,
        &state,
        &["run", "wf.yml", "--job-id", "j"],
        &env(log.to_str().unwrap(), go.to_str().unwrap()),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    state
}

/// An interrupted job's state dir: items 1-30 recorded, 31-40 in flight at a SIGKILL.
fn interrupted_base(p: &Project) -> PathBuf {
    let state = p.path().join("base-interrupted");
    let log = p.path().join("base-interrupted.log");
    let never = p.path().join("never");
    let mut bg = spawn_with(
        p,
        &state,
        &["run", "wf.yml", "--job-id", "j"],
        &env(log.to_str().unwrap(), never.to_str().unwrap()),
    );
    let journal = state.join("jobs/j/journal.log");
    wait_until("items 1-30 to be recorded", Duration::from_secs(8), || {
        item_done_count(&journal) >= 30
    });
    bg.kill9();
    state
}

/// Ids (as strings) recorded successful in the complete lines of `journal` before `cut`.
fn recorded_before(journal_bytes: &[u8], cut: usize, dir: &Path) -> BTreeSet<String> {
    let tmp = dir.join("prefix.log");
    std::fs::write(&tmp, &journal_bytes[..cut]).unwrap();
    let recs = journal_records(&tmp);
    std::fs::remove_file(&tmp).unwrap();
    succeeded_records(&recs)
        .keys()
        .map(|i| (i + 1).to_string())
        .collect()
}

#[test]
fn truncated_journal_always_resumes() {
    let seed: u64 = std::env::var("RUNNER_TORN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7042);
    eprintln!("torn seed: {seed} (set RUNNER_TORN_SEED={seed} to replay)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let p = project();
    let bases = [completed_base(&p), interrupted_base(&p)];
    let go = p.path().join("go");
    let all: BTreeSet<String> = (1..=ITEMS).map(|i| i.to_string()).collect();

    for case in 0..30 {
        let base = &bases[case % 2];
        let journal_bytes = std::fs::read(base.join("jobs/j/journal.log")).unwrap();
        let cut = rng.usize(0..=journal_bytes.len());
        let drop_checkpoint = (case / 2) % 2 == 0;
        let what = format!(
            "case {case}: {} base, journal cut at {cut} of {}, checkpoint {}",
            if case % 2 == 0 {
                "completed"
            } else {
                "interrupted"
            },
            journal_bytes.len(),
            if drop_checkpoint { "deleted" } else { "kept" }
        );

        let dir = p.path().join(format!("case-{case}"));
        let state = dir.join("state");
        copy_dir(base, &state);
        let job = state.join("jobs/j");
        std::fs::OpenOptions::new()
            .write(true)
            .open(job.join("journal.log"))
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        if drop_checkpoint {
            std::fs::remove_file(job.join("checkpoint.bin")).unwrap();
        }
        let recorded = recorded_before(&journal_bytes, cut, &dir);

        let out = run_with(&p, &state, &["status", "j", "--json"], &[]);
        assert_eq!(code(&out), 0, "{what}: status: {}", stderr(&out));
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        if st["total"] == ITEMS {
            assert_eq!(st["successful"], recorded.len(), "{what}: {st}");
        }

        let log = dir.join("exec.log");
        let out = run_with(
            &p,
            &state,
            &["resume", "j"],
            &env(log.to_str().unwrap(), go.to_str().unwrap()),
        );
        let ran = line_counts(&std::fs::read_to_string(&log).unwrap_or_default());
        if recorded.len() == ITEMS && code(&out) == 0 && ran.is_empty() {
            // Every item was recorded: at most reduce is left (or the job is complete).
        } else {
            assert_eq!(code(&out), 0, "{what}: resume: {}", stderr(&out));
        }
        let expected: std::collections::BTreeMap<String, usize> = all
            .difference(&recorded)
            .map(|id| (id.clone(), 1))
            .collect();
        assert_eq!(
            ran, expected,
            "{what}: resume must run exactly the items not recorded before the cut"
        );

        let out = run_with(&p, &state, &["status", "j", "--json"], &[]);
        assert_eq!(code(&out), 0, "{what}: status: {}", stderr(&out));
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(st["state"], "completed", "{what}: {st}");
        assert_eq!(st["successful"], ITEMS, "{what}: {st}");
        let recs = journal_records(&job.join("journal.log"));
        let doubles: Vec<_> = succeeded_records(&recs)
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect();
        assert!(doubles.is_empty(), "{what}: recorded twice: {doubles:?}");
    }
}

/// The journal offset a job's checkpoint covers (0 when there is none): the `offset` of its
/// header line (these small jobs never rotate their journal, so it is segment 0).
fn checkpoint_offset(job: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(job.join("checkpoint.bin")) else {
        return 0;
    };
    let header = bytes
        .split(|&b| b == b'\n')
        .nth(1)
        .expect("checkpoint header");
    let v: serde_json::Value = serde_json::from_slice(header).expect("checkpoint header JSON");
    assert_eq!(v["segment"], 0, "{v}");
    v["offset"].as_u64().expect("offset")
}

/// A record that resume must replay (in the middle, not the last, and after the checkpoint's
/// offset, or with the checkpoint deleted) has a flipped byte: resume refuses with a message
/// naming journal.log and corruption, runs nothing and does not panic.
#[test]
fn flipped_byte_mid_journal_is_reported_as_corruption() {
    let p = project();
    let completed = completed_base(&p);
    let interrupted = interrupted_base(&p);
    for (case, (base, drop_checkpoint)) in [
        (&completed, true),
        (&interrupted, false),
        (&interrupted, true),
    ]
    .into_iter()
    .enumerate()
    {
        let state = p.path().join(format!("flipped-{case}"));
        copy_dir(base, &state);
        let job = state.join("jobs/j");
        if drop_checkpoint {
            std::fs::remove_file(job.join("checkpoint.bin")).unwrap();
        }
        let from = checkpoint_offset(&job) as usize;
        let journal = job.join("journal.log");
        let mut bytes = std::fs::read(&journal).unwrap();
        let starts: Vec<usize> = std::iter::once(0)
            .chain(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .filter(|&i| i >= from && i < bytes.len())
            .collect();
        assert!(
            starts.len() > 10,
            "case {case}: only {} lines to replay",
            starts.len()
        );
        let line = starts[starts.len() / 2];
        // A byte inside the JSON (after the `<crc> ` prefix) of a record in the middle.
        bytes[line + 12] ^= 0x01;
        std::fs::write(&journal, &bytes).unwrap();
        let log = p.path().join(format!("flipped-{case}.log"));
        let go = p.path().join("go");
        let out = run_with(
            &p,
            &state,
            &["resume", "j"],
            &env(log.to_str().unwrap(), go.to_str().unwrap()),
        );
        let err = stderr(&out);
        assert_ne!(
            code(&out),
            0,
            "case {case}: resume accepted a corrupt journal: {err}"
        );
        assert_ne!(code(&out), 101, "case {case}: resume panicked: {err}");
        assert!(!err.contains("panicked"), "case {case}: {err}");
        assert!(
            err.contains("journal.log") && err.to_lowercase().contains("corrupt"),
            "case {case}: the message must name journal.log and say it is corrupt: {err}"
        );
        assert!(
            !log.exists(),
            "case {case}: items ran on a corrupt journal: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert_eq!(
            std::fs::read(&journal).unwrap(),
            bytes,
            "case {case}: resume modified the corrupt journal"
        );
        let out = run_with(&p, &state, &["status", "j", "--json"], &[]);
        assert_ne!(
            code(&out),
            101,
            "case {case}: status panicked: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("panicked"),
            "case {case}: {}",
            stderr(&out)
        );
    }
}

//! The state layer alone at scale, without processes: append N item records through the
//! Recorder (journal group commit, segment rotation, checkpoints), then recover the state as
//! `status` and `resume` do, from a clean end and after a "crash" that left records past
//! the last checkpoint.
//!
//!     cargo bench --bench state_scale                 # 10,000,000 records
//!     ITEMS=1000000 cargo bench --bench state_scale
//!
//! Prints wall times, the job directory's size and this process's peak RSS.

use std::time::Instant;

use runner::engine::recorder::Recorder;
use runner::report::reporter::Fanout;
use runner::state::job::JobView;
use runner::state::layout::JobDir;
use runner::state::records::{ItemStatus, Ran, Record, Usage};
use runner::state::recover::recover;
use runner::state::time::Timestamp;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn dir_mib(path: &std::path::Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    bytes as f64 / (1 << 20) as f64
}

/// An item's end as a local run records it: with its start, duration and usage.
fn done(idx: usize, at: Timestamp) -> Record {
    let ms = (idx % 997) as u64;
    let usage = Usage {
        peak_rss_kb: 2048 + (idx % 4096) as u64,
        cpu_ms: ms / 2,
    };
    Record::ItemDone {
        idx,
        status: ItemStatus::Succeeded,
        attempts: 1,
        duration_ms: ms,
        exit_code: None,
        captured: serde_json::Map::new(),
        ran: Some(Ran::new(at, ms, Some(usage))),
    }
}

fn main() {
    let n: usize = std::env::var("ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = JobDir::at(tmp.path());
    println!("state layer at {n} items ({})", tmp.path().display());

    let t = Instant::now();
    let mut rec = Recorder::new(dir.clone(), JobView::default(), Box::new(Fanout::default()))
        .expect("recorder");
    rec.record(Record::MapStarted {
        total: n,
        items_hash: "bench".into(),
    })
    .expect("map started");
    let at = Timestamp::now();
    for idx in 0..n {
        rec.record(done(idx, at)).expect("record");
    }
    rec.checkpoint().expect("checkpoint");
    let append = t.elapsed();
    drop(rec);
    let size = dir_mib(tmp.path());
    println!(
        "append + rotate + checkpoint: {:.2} s ({:.0} records/s); job directory {size:.1} MiB; peak RSS {:.0} MiB",
        append.as_secs_f64(),
        n as f64 / append.as_secs_f64(),
        peak_rss_mib()
    );

    let t = Instant::now();
    let view = recover(&dir, false).expect("recover");
    println!(
        "recover (status) after a clean end: {:.3} s ({} succeeded)",
        t.elapsed().as_secs_f64(),
        view.counts.successful
    );

    // A crash after 1,000 more records past the last checkpoint: resume replays them.
    let mut rec = Recorder::new(dir.clone(), view, Box::new(Fanout::default())).expect("recorder");
    for idx in 0..1000 {
        rec.record(Record::ItemReset {
            idx,
            status: ItemStatus::Pending,
        })
        .expect("record");
    }
    rec.flush().expect("flush");
    drop(rec);
    let t = Instant::now();
    let view = recover(&dir, true).expect("recover");
    println!(
        "recover (resume) with 1,000 records past the checkpoint: {:.3} s ({} pending)",
        t.elapsed().as_secs_f64(),
        view.counts.pending
    );
    println!("peak RSS of the whole benchmark: {:.0} MiB", peak_rss_mib());
}

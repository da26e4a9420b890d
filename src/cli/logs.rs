//! `runner logs JOB [ITEM] [--follow]`

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::args::{Global, LogsArgs};
use crate::cli::exit::usage;
use crate::cli::job_open::open_job;
use crate::state::items_file;
use crate::state::layout::{JobDir, StateDir, item_file_stem};
use crate::state::lock::is_held;

/// A log file and what it is, in display order.
struct Source {
    title: String,
    path: PathBuf,
    offset: u64,
}

pub fn logs(g: &Global, a: &LogsArgs) -> anyhow::Result<i32> {
    let dir = open_job(&StateDir::new(&g.state_dir), &a.job)?;
    if let Some(item) = &a.item {
        let known = items_file::read(&dir.items())
            .map(|v| v.iter().any(|i| &i.id == item))
            .unwrap_or(false);
        if !known {
            return Err(usage(format!("job {} has no item {item:?}", a.job)));
        }
    }
    let mut sources: Vec<Source> = Vec::new();
    let mut out = std::io::stdout().lock();
    let mut printed_any = false;
    loop {
        // Whether the job still runs is looked at before reading, so output written just
        // before it ended is printed by this pass, not lost.
        let live = a.follow && is_held(&dir.lock());
        for s in discover(&dir, a.item.as_deref()) {
            if !sources.iter().any(|k| k.path == s.path) {
                sources.push(s);
            }
        }
        for s in &mut sources {
            match print_new(s, &mut out) {
                Ok(true) => printed_any = true,
                Ok(false) => {}
                Err(_) => return Ok(0), // closed pipe: stop quietly
            }
        }
        if !live {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if !printed_any {
        crate::cli::out::errln!(
            "runner: no output recorded{}",
            a.item
                .as_ref()
                .map(|i| format!(" for item {i}"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

/// The log files that exist now, in order: setup steps, reduce steps (or one item's
/// attempts), stdout before stderr.
fn discover(dir: &JobDir, item: Option<&str>) -> Vec<Source> {
    let (base, prefixes): (PathBuf, Vec<&str>) = match item {
        Some(id) => (
            dir.logs_dir().join("items").join(item_file_stem(id)),
            vec![""],
        ),
        None => (dir.logs_dir(), vec!["setup-", "reduce-"]),
    };
    let mut found: Vec<(usize, u64, u8, PathBuf, String)> = Vec::new();
    let Ok(rd) = std::fs::read_dir(&base) else {
        return Vec::new();
    };
    for e in rd.filter_map(|e| e.ok()) {
        let path = e.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let stream = match ext {
            "out" => 0,
            "err" => 1,
            _ => continue,
        };
        for (pi, prefix) in prefixes.iter().enumerate() {
            if let Some(n) = stem
                .strip_prefix(prefix)
                .and_then(|n| n.parse::<u64>().ok())
            {
                let what = match (item, *prefix) {
                    (Some(_), _) => format!("attempt {n}"),
                    (None, "setup-") => format!("setup step {n}"),
                    _ => format!("reduce step {n}"),
                };
                let title = format!("{what} {}", if stream == 0 { "stdout" } else { "stderr" });
                found.push((pi, n, stream, path.clone(), title));
            }
        }
    }
    found.sort_by_key(|f| (f.0, f.1, f.2));
    found
        .into_iter()
        .map(|(_, _, _, path, title)| Source {
            title,
            path,
            offset: 0,
        })
        .collect()
}

/// Print what was appended to `s` since last time; Ok(true) if anything was printed.
fn print_new(s: &mut Source, out: &mut impl Write) -> std::io::Result<bool> {
    let Ok(mut f) = std::fs::File::open(&s.path) else {
        return Ok(false);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len <= s.offset {
        return Ok(false);
    }
    if s.offset == 0 {
        writeln!(out, "==> {} ({}) <==", s.title, display(&s.path))?;
    }
    f.seek(SeekFrom::Start(s.offset))?;
    let mut buf = Vec::new();
    f.take(len - s.offset).read_to_end(&mut buf)?;
    s.offset = len;
    out.write_all(&buf)?;
    out.flush()?;
    Ok(true)
}

fn display(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

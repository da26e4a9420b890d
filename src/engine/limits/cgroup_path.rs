//! Where this process's cgroup v2 directory is (std only: build.rs uses it too, to tell
//! whether the cgroup tests can run here).

use std::path::{Path, PathBuf};

/// The cgroup v2 path in `/proc/self/cgroup` (the `0::PATH` line).
pub fn v2_path(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_owned())
}

/// The root and mount point of the first cgroup2 mount in `/proc/self/mountinfo`.
pub fn v2_mount(mountinfo: &str) -> Option<(String, String)> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let f: Vec<&str> = left.split_whitespace().collect();
        Some((f.get(3)?.to_string(), f.get(4)?.to_string()))
    })
}

/// The directory of this process's cgroup v2.
pub fn own_cgroup_dir() -> Result<PathBuf, String> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let path = v2_path(&cgroup).ok_or("this process is in no cgroup v2 hierarchy")?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let (root, mount) = v2_mount(&mounts).ok_or("no cgroup v2 file system is mounted")?;
    let rel = path.strip_prefix(root.as_str()).unwrap_or(&path);
    Ok(Path::new(&mount).join(rel.trim_start_matches('/')))
}

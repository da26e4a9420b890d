//! Task sizing: how many items each array task runs, how many tasks run at once, how many
//! items the coordinator takes on at a time, and Slurm's time limit of a task.
//!
//! `map.max_parallel` keeps meaning "items in flight at once": a task runs
//! `parallel_per_task` items at once, so the array throttle is `max_parallel / parallel`
//! (rounded up). Unless `slurm.items_per_task` is set, a task gets about a minute of work
//! from the mean item duration observed so far (this run's outcomes, else the durations
//! earlier runs recorded), never so many that fewer tasks than the throttle would run, and
//! never more than `array_size` tasks (1,000) per array. With nothing observed yet, the
//! first submission is a probe of one round (`parallel` items per task, `max_parallel` in
//! all), and nothing more is submitted until its first outcome comes in.

use std::time::Duration;

use crate::workflow::model::SlurmOptions;

/// The work a task aims at, when `slurm.time_limit` does not ask for less.
pub const TASK_TARGET: Duration = Duration::from_secs(60);

/// Mean of item durations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durations {
    count: u64,
    total_ms: u64,
}

impl Durations {
    pub fn add(&mut self, ms: u64) {
        self.count += 1;
        self.total_ms = self.total_ms.saturating_add(ms);
    }

    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_millis(self.total_ms / self.count))
    }
}

impl FromIterator<u64> for Durations {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut d = Durations::default();
        for ms in iter {
            d.add(ms);
        }
        d
    }
}

#[derive(Debug, Clone)]
pub struct Sizing {
    fixed: Option<usize>,
    parallel: usize,
    max_parallel: usize,
    max_tasks: usize,
    target: Duration,
    /// Attempts that ended in this run.
    observed: Durations,
    /// Items that succeeded in earlier runs of the job.
    recorded: Durations,
}

impl Sizing {
    pub fn new(opts: &SlurmOptions, max_parallel: usize, recorded: Durations) -> Self {
        let target = match opts.time_limit {
            Some(limit) => TASK_TARGET.min(limit / 2),
            None => TASK_TARGET,
        };
        Sizing {
            fixed: opts.items_per_task,
            parallel: opts.parallel(),
            max_parallel: max_parallel.max(1),
            max_tasks: opts.array_size.max(1),
            target: target.max(Duration::from_secs(1)),
            observed: Durations::default(),
            recorded,
        }
    }

    /// An attempt of `ms` milliseconds ended.
    pub fn observe(&mut self, ms: u64) {
        self.observed.add(ms);
    }

    /// Most tasks in one array.
    pub fn max_tasks(&self) -> usize {
        self.max_tasks
    }

    /// Items a task runs at once.
    pub fn parallel(&self) -> usize {
        self.parallel
    }

    /// Tasks of one array running at once (`--array=...%throttle`).
    pub fn throttle(&self) -> usize {
        self.max_parallel.div_ceil(self.parallel).max(1)
    }

    fn mean(&self) -> Option<Duration> {
        self.observed.mean().or(self.recorded.mean())
    }

    /// Nothing is known about item durations yet: the next submission is a probe.
    pub fn probing(&self) -> bool {
        self.fixed.is_none() && self.mean().is_none()
    }

    /// Items per task that make a task run about [`Self::target`].
    fn by_time(&self) -> usize {
        match self.mean() {
            // At least 1 ms: `true` items are recorded as 0 ms.
            Some(mean) => {
                let ms = mean.as_millis().max(1);
                ((self.target.as_millis() * self.parallel as u128 / ms) as usize).max(1)
            }
            None => self.parallel,
        }
    }

    /// How many more items to take on now, with `in_flight` items submitted and not ended.
    /// A full array's worth once Slurm is about to run out of queued tasks (no more items in
    /// flight than run at once), else none, so that each `sbatch` submits a large array.
    pub fn room(&self, in_flight: usize) -> usize {
        if self.probing() {
            return if in_flight == 0 { self.max_parallel } else { 0 };
        }
        if in_flight > self.max_parallel {
            return 0;
        }
        self.max_tasks * self.fixed.unwrap_or_else(|| self.by_time())
    }

    /// Items per task for a submission of `items` items.
    pub fn per_task(&self, items: usize) -> usize {
        if let Some(n) = self.fixed {
            return n.max(1);
        }
        if self.probing() {
            return self.parallel;
        }
        let fewest = items.div_ceil(self.max_tasks);
        let spread = items.div_ceil(self.throttle());
        fewest.max(self.by_time().min(spread)).max(1)
    }

    /// Slurm's time limit of a task of `items` items: `slurm.time_limit`, else enough for
    /// each round of `parallel` items to use all of `map.timeout` and the kill grace, plus
    /// a minute; `None` (the partition's default) without either.
    pub fn time_limit(
        &self,
        opts: &SlurmOptions,
        timeout: Option<Duration>,
        kill_grace: Duration,
        items: usize,
    ) -> Option<Duration> {
        if let Some(t) = opts.time_limit {
            return Some(t);
        }
        let rounds = items.div_ceil(self.parallel).max(1) as u32;
        Some((timeout? + kill_grace) * rounds + Duration::from_secs(60))
    }
}

/// The tasks of a submission: `items` in tasks of `per_task`, and each of `alone` in a task
/// of its own, as far as that keeps the array within `max_tasks` tasks (the rest of
/// `alone` share tasks). `per_task` must fit all of them in `max_tasks` tasks.
pub fn tasks<T>(
    mut items: Vec<T>,
    mut alone: Vec<T>,
    per_task: usize,
    max_tasks: usize,
) -> Vec<Vec<T>> {
    let per_task = per_task.max(1);
    while !alone.is_empty() && items.len().div_ceil(per_task) + alone.len() > max_tasks {
        items.extend(alone.pop());
    }
    let mut tasks = split(items, per_task);
    tasks.extend(alone.into_iter().map(|t| vec![t]));
    tasks
}

/// Cut `n` items into consecutive tasks of `per_task` items (the last may be smaller).
pub fn split<T>(items: Vec<T>, per_task: usize) -> Vec<Vec<T>> {
    let per_task = per_task.max(1);
    let mut tasks = Vec::with_capacity(items.len().div_ceil(per_task));
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        tasks.push(it.by_ref().take(per_task).collect());
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(parallel: usize) -> SlurmOptions {
        SlurmOptions {
            parallel_per_task: Some(parallel),
            ..SlurmOptions::default()
        }
    }

    #[test]
    fn the_throttle_keeps_max_parallel_items_in_flight() {
        let s = Sizing::new(&opts(4), 16, Durations::default());
        assert_eq!(s.throttle(), 4);
        let s = Sizing::new(&opts(4), 18, Durations::default());
        assert_eq!(s.throttle(), 5);
        let s = Sizing::new(&opts(8), 2, Durations::default());
        assert_eq!(s.throttle(), 1);
    }

    #[test]
    fn nothing_observed_means_one_probe_round_then_waiting() {
        let mut s = Sizing::new(&opts(4), 16, Durations::default());
        assert!(s.probing());
        assert_eq!(s.room(0), 16);
        assert_eq!(s.per_task(16), 4, "4 tasks of 4: one round");
        assert_eq!(s.room(16), 0, "wait for the probe's first outcome");
        assert_eq!(s.room(1), 0);
        s.observe(30);
        assert!(!s.probing());
        assert!(s.room(15) > 10_000);
    }

    #[test]
    fn tasks_run_about_a_minute_but_every_slot_gets_work() {
        let mut s = Sizing::new(&opts(1), 50, Durations::default());
        s.observe(10_000); // 10 s items: 6 per task
        assert_eq!(s.per_task(6_000), 6);
        assert_eq!(s.room(0), 6_000, "1,000 tasks of 6");
        // Few items left: spread over the 50 slots rather than 6 to a task.
        assert_eq!(s.per_task(100), 2);
        assert_eq!(s.per_task(10), 1);

        // 3 ms items, 4 at a time in 4 tasks: 10,000 items go in 4 tasks (never fewer
        // tasks than run at once), not in one task of a minute's work.
        let mut s = Sizing::new(&opts(4), 16, Durations::default());
        s.observe(3);
        assert_eq!(s.per_task(9_984), 2_496);
    }

    #[test]
    fn never_more_than_array_size_tasks() {
        let mut s = Sizing::new(&opts(1), 5_000, Durations::default());
        s.observe(60_000); // a minute each: 1 per task by time
        assert_eq!(s.per_task(1_000), 1);
        assert_eq!(s.per_task(2_500), 3, "at most 1,000 tasks");
        assert!(split((0..2_500).collect(), 3).len() <= 1_000);
    }

    #[test]
    fn recorded_durations_of_earlier_runs_skip_the_probe() {
        let recorded: Durations = [2_000, 4_000].into_iter().collect();
        let s = Sizing::new(&opts(2), 8, recorded);
        assert!(!s.probing());
        assert_eq!(
            s.per_task(100_000),
            100,
            "2 at once, 3 s each, about 60 s: 40; but >= 100 for 1,000 tasks"
        );
        assert_eq!(
            s.per_task(100),
            25,
            "100 items over 8 / 2 = 4 slots, at most 40"
        );
        assert_eq!(s.per_task(1_000), 40);
    }

    #[test]
    fn a_fixed_size_and_time_limits() {
        let o = SlurmOptions {
            items_per_task: Some(7),
            parallel_per_task: Some(2),
            ..SlurmOptions::default()
        };
        let s = Sizing::new(&o, 4, Durations::default());
        assert!(!s.probing());
        assert_eq!(s.per_task(3), 7);
        assert_eq!(s.room(5), 0);
        assert_eq!(s.room(4), 7_000);
        let t = |timeout| s.time_limit(&o, timeout, Duration::from_secs(5), 7);
        assert_eq!(t(None), None);
        // 4 rounds of (30 s + 5 s) + 1 min.
        assert_eq!(
            t(Some(Duration::from_secs(30))),
            Some(Duration::from_secs(200))
        );
        let o = SlurmOptions {
            time_limit: Some(Duration::from_secs(600)),
            ..o
        };
        assert_eq!(
            s.time_limit(&o, Some(Duration::from_secs(30)), Duration::ZERO, 7),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn a_short_time_limit_makes_smaller_tasks() {
        let o = SlurmOptions {
            time_limit: Some(Duration::from_secs(20)),
            ..opts(1)
        };
        let mut s = Sizing::new(&o, 1, Durations::default());
        s.observe(1_000);
        assert_eq!(s.per_task(1_000), 10, "10 s of work: half the limit");
    }

    #[test]
    fn items_run_alone_only_while_the_array_stays_within_its_size() {
        assert_eq!(
            tasks(vec![1, 2, 3], vec![8, 9], 2, 10),
            vec![vec![1, 2], vec![3], vec![8], vec![9]]
        );
        // 3 tasks at most: 9 goes back into the shared tasks.
        assert_eq!(
            tasks(vec![1, 2, 3], vec![8, 9], 2, 3),
            vec![vec![1, 2], vec![3, 9], vec![8]]
        );
        assert_eq!(
            tasks(vec![1, 2], vec![8, 9], 2, 2),
            vec![vec![1, 2], vec![9, 8]]
        );
    }

    #[test]
    fn split_keeps_order() {
        assert_eq!(
            split(vec![1, 2, 3, 4, 5], 2),
            vec![vec![1, 2], vec![3, 4], vec![5]]
        );
        assert!(split(Vec::<u8>::new(), 3).is_empty());
    }
}

//! `--junit FILE`: a JUnit XML report for CI test reporters (GitLab, Jenkins, GitHub
//! actions that read JUnit). One testsuite named after the workflow with one testcase per
//! item finished in this run; a failed item is a `<failure>` whose message is the error and
//! whose text (and `<system-err>`) is the stderr tail. Failed setup/reduce steps get a
//! testcase of their own in a `<workflow>.setup` / `<workflow>.reduce` testsuite. The file
//! is written atomically when the run ends.

use std::path::PathBuf;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::report::event::Event;
use crate::report::reporter::{Reporter, warn_report_failed, write_report_file};
use crate::state::records::{ItemStatus, Phase};

pub struct Junit {
    path: PathBuf,
    workflow: String,
    job_id: String,
    items: Vec<TestCase>,
    steps: Vec<(Phase, TestCase)>,
    total: Duration,
}

impl Junit {
    pub fn new(path: PathBuf) -> Self {
        Junit {
            path,
            workflow: "runner".into(),
            job_id: String::new(),
            items: Vec::new(),
            steps: Vec::new(),
            total: Duration::ZERO,
        }
    }

    /// The XML document for what was reported so far.
    pub fn to_xml(&self) -> Result<String, quick_junit::SerializeError> {
        let mut report = Report::new(format!("runner {}", self.workflow));
        report.set_time(self.total);
        let mut suite = TestSuite::new(self.workflow.clone());
        if !self.job_id.is_empty() {
            suite.add_property(("job_id", self.job_id.as_str()));
        }
        suite.add_test_cases(self.items.iter().cloned());
        report.add_test_suite(suite);
        for phase in [Phase::Setup, Phase::Reduce] {
            let cases: Vec<TestCase> = self
                .steps
                .iter()
                .filter(|(p, _)| *p == phase)
                .map(|(_, c)| c.clone())
                .collect();
            if !cases.is_empty() {
                let mut suite = TestSuite::new(format!("{}.{}", self.workflow, phase_name(phase)));
                suite.add_test_cases(cases);
                report.add_test_suite(suite);
            }
        }
        report.to_string()
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Setup => "setup",
        Phase::Map => "map",
        Phase::Reduce => "reduce",
    }
}

fn failure(message: &str, kind: &str, text: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(message);
    status.set_type(kind);
    if !text.is_empty() {
        status.set_description(text);
    }
    status
}

impl Reporter for Junit {
    fn report(&mut self, event: &Event) {
        match event {
            Event::JobStarted {
                job_id, workflow, ..
            } => {
                self.workflow = workflow.clone();
                self.job_id = job_id.clone();
            }
            Event::ItemFinished {
                item_id,
                status,
                attempts,
                duration_ms,
                exit_code,
                error,
                failure_class,
                stderr_tail,
                usage,
            } => {
                let case_status = match status {
                    ItemStatus::Succeeded => TestCaseStatus::success(),
                    ItemStatus::Dlq | ItemStatus::Failed => {
                        let kind = match (exit_code, failure_class) {
                            (Some(c), _) => format!("exit {c}"),
                            (None, Some(class)) => (*class).to_owned(),
                            (None, None) => "failure".into(),
                        };
                        let dest = if *status == ItemStatus::Dlq {
                            " (in the DLQ)"
                        } else {
                            ""
                        };
                        let message = format!(
                            "{} after {attempts} attempt{}{dest}",
                            error.as_deref().unwrap_or("failed"),
                            if *attempts == 1 { "" } else { "s" }
                        );
                        failure(&message, &kind, stderr_tail)
                    }
                    ItemStatus::Pending | ItemStatus::Purged => TestCaseStatus::skipped(),
                };
                let mut case = TestCase::new(item_id.clone(), case_status);
                case.set_classname(self.workflow.clone());
                case.set_time(Duration::from_millis(*duration_ms));
                if !stderr_tail.is_empty() {
                    case.set_system_err(stderr_tail.clone());
                }
                if let Some(u) = usage {
                    case.add_property(("peak_rss_kb", u.peak_rss_kb.to_string().as_str()));
                    case.add_property(("cpu_ms", u.cpu_ms.to_string().as_str()));
                }
                self.items.push(case);
            }
            Event::StepFinished {
                phase,
                index,
                command,
                ok,
                duration_ms,
                error,
            } if *phase != Phase::Map => {
                let status = if *ok {
                    TestCaseStatus::success()
                } else {
                    failure(error.as_deref().unwrap_or("failed"), "step", command)
                };
                let mut case =
                    TestCase::new(format!("{} step {}", phase_name(*phase), index + 1), status);
                case.set_classname(format!("{}.{}", self.workflow, phase_name(*phase)));
                case.set_time(Duration::from_millis(*duration_ms));
                self.steps.push((*phase, case));
            }
            Event::JobFinished { duration_ms, .. } => {
                self.total = Duration::from_millis(*duration_ms);
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        let result = self.to_xml().map_err(|e| e.to_string()).and_then(|xml| {
            write_report_file(&self.path, xml.as_bytes()).map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            warn_report_failed("JUnit report", &self.path, &e);
        }
    }
}

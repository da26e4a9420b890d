//! Prodigy's validation result: the JSON a `validate:` command prints (or writes to its
//! `result_file`), and the `${validation.*}` values its `on_incomplete` handlers see.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A validation result, in Prodigy's format (its field names, required fields and enums).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValidationResult {
    /// 0 to 100.
    pub completion_percentage: f64,
    pub status: Status,
    #[serde(default)]
    pub implemented: Vec<String>,
    #[serde(default)]
    pub missing: Vec<String>,
    #[serde(default)]
    pub gaps: BTreeMap<String, Gap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Complete,
    Incomplete,
    Failed,
    Skipped,
}

/// One gap of an incomplete result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_fix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl ValidationResult {
    /// 100%: what commands that succeed without a JSON result mean (as in Prodigy).
    pub fn complete() -> Self {
        ValidationResult {
            completion_percentage: 100.0,
            status: Status::Complete,
            implemented: Vec::new(),
            missing: Vec::new(),
            gaps: BTreeMap::new(),
        }
    }

    /// 0%, the reason as the one missing entry (as in Prodigy).
    pub fn failed(reason: String) -> Self {
        ValidationResult {
            completion_percentage: 0.0,
            status: Status::Failed,
            missing: vec![reason],
            ..Self::complete()
        }
    }

    /// The result in `text`, or why it is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let r: ValidationResult = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !r.completion_percentage.is_finite() {
            return Err("completion_percentage is not a number".into());
        }
        Ok(r)
    }

    pub fn meets(&self, threshold: f64) -> bool {
        self.completion_percentage >= threshold
    }

    /// `${validation}`: Prodigy's `completion`, `status`, `missing`, `missing_count`,
    /// `implemented` and `gaps`.
    pub fn vars(&self) -> Value {
        let c = self.completion_percentage;
        let completion = if c.fract() == 0.0 && c.abs() < 1e15 {
            Value::from(c as i64)
        } else {
            Value::from(c)
        };
        serde_json::json!({
            "completion": completion,
            "status": self.status,
            "missing": self.missing,
            "missing_count": self.missing.len(),
            "implemented": self.implemented,
            "gaps": self.gaps,
        })
    }

    /// `75% complete`, `87.5% complete`.
    pub fn summary(&self) -> String {
        format!("{}% complete", self.vars()["completion"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prodigys_format_parses_with_its_defaults() {
        let r = ValidationResult::parse(
            r#"{"completion_percentage": 75, "status": "incomplete",
                "missing": ["tests"], "implemented": ["parser"],
                "gaps": {"auth": {"description": "no auth", "severity": "high",
                                  "location": "src/a.rs:3"}}}"#,
        )
        .unwrap();
        assert_eq!(r.completion_percentage, 75.0);
        assert_eq!(r.status, Status::Incomplete);
        assert!(!r.meets(100.0) && r.meets(75.0));
        let v = r.vars();
        assert_eq!(v["completion"], 75);
        assert_eq!(v["missing_count"], 1);
        assert_eq!(v["status"], "incomplete");
        assert_eq!(
            v["gaps"].to_string(),
            r#"{"auth":{"description":"no auth","location":"src/a.rs:3","severity":"high"}}"#
        );
        let minimal =
            ValidationResult::parse(r#"{"completion_percentage": 87.5, "status": "complete"}"#)
                .unwrap();
        assert!(minimal.missing.is_empty() && minimal.gaps.is_empty());
        assert_eq!(minimal.summary(), "87.5% complete");
    }

    #[test]
    fn what_is_not_a_result_is_an_error() {
        for bad in [
            "not json",
            "",
            r#"{"completion_percentage": 50}"#,
            r#"{"completion_percentage": "50", "status": "incomplete"}"#,
            r#"{"completion_percentage": 50, "status": "partial"}"#,
            r#"{"completion_percentage": 50, "status": "failed", "gaps": {"a": {"description": "x"}}}"#,
            "[1, 2]",
        ] {
            assert!(ValidationResult::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn failed_and_complete_are_prodigys() {
        let f = ValidationResult::failed("exit 3".into());
        assert_eq!(f.vars()["completion"], 0);
        assert_eq!(f.vars()["missing"], serde_json::json!(["exit 3"]));
        assert_eq!(f.vars()["status"], "failed");
        assert!(ValidationResult::complete().meets(100.0));
    }
}

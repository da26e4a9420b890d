//! The context of validating one workflow file ([`Ctx`]) and the value checks every part
//! uses: templates, Prodigy-only keys, configuration values, durations.

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use crate::workflow::error::WorkflowError;
use crate::workflow::model::{EnvSetting, SettingKey};
use crate::workflow::raw::{DurationValue, ProdigyOnly, Scalar};
use crate::workflow::settings::duration_text;
use crate::workflow::template::env_text::EnvText;
use crate::workflow::template::scope::Scope;
use crate::workflow::template::{Syntax, Template, TemplateError};

/// What validation of one file carries: the file (for messages), the configuration values
/// that wait for the job's environment, and the errors found so far (validation goes on
/// after an error, so that all of them are reported at once).
pub(super) struct Ctx<'a> {
    pub path: &'a Path,
    /// Configuration values naming environment variables, set when the job starts.
    pub settings: RefCell<Vec<EnvSetting>>,
    errors: RefCell<Vec<WorkflowError>>,
}

impl<'a> Ctx<'a> {
    pub fn new(path: &'a Path) -> Self {
        Ctx {
            path,
            settings: RefCell::new(Vec::new()),
            errors: RefCell::new(Vec::new()),
        }
    }

    /// Record the error of `r` and go on: `None` then.
    pub fn keep<T>(&self, r: Result<T, WorkflowError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.report(e);
                None
            }
        }
    }

    pub fn report(&self, e: WorkflowError) {
        self.errors.borrow_mut().push(e);
    }

    /// Every error found, in file order (line, then column), as one error; `None` when
    /// there was none.
    pub fn failed(&self) -> Option<WorkflowError> {
        let mut errors = std::mem::take(&mut *self.errors.borrow_mut());
        errors.sort_by_key(|e| e.position());
        errors.dedup_by(|a, b| a.to_string() == b.to_string());
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(WorkflowError::Many(errors)),
        }
    }

    /// A configuration value: `Some(text)` when it is plain text, `None` when it names
    /// environment variables (then it is recorded, to be set once the job's environment is
    /// known).
    pub fn setting(
        &self,
        key: SettingKey,
        name: &'static str,
        text: &str,
        loc: Location,
    ) -> Result<Option<String>, WorkflowError> {
        let parsed = EnvText::parse(text).map_err(|e| self.err(loc, format!("{name}: {e}")))?;
        if !parsed.has_vars() {
            return Ok(Some(text.to_owned()));
        }
        self.settings.borrow_mut().push(EnvSetting {
            key,
            name,
            text: parsed,
            line: loc.line() as usize,
            column: loc.column() as usize,
        });
        Ok(None)
    }

    /// A count (`offset`, `max_items`): a number or an environment variable.
    pub fn count_setting(
        &self,
        key: SettingKey,
        name: &'static str,
        v: Option<&Spanned<Scalar>>,
    ) -> Result<Option<usize>, WorkflowError> {
        let Some(v) = v else { return Ok(None) };
        match self.setting(key, name, &v.value.0, v.referenced)? {
            Some(t) => t.trim().parse::<usize>().map(Some).map_err(|_| {
                self.err(
                    v.referenced,
                    format!("{name} must be a number or an environment variable such as \"${{N}}\", not {t:?}"),
                )
            }),
            None => Ok(None),
        }
    }

    pub fn err(&self, loc: Location, msg: impl Into<String>) -> WorkflowError {
        WorkflowError::at(self.path, loc, msg)
    }

    /// A template of a shell command.
    pub fn template(&self, s: &Spanned<String>, scope: &Scope) -> Result<Template, WorkflowError> {
        self.template_str(&s.value, s.referenced, scope)
    }

    /// A template of text no shell reads (a Claude command, a file's path or content, a
    /// directory, an environment value): see [`Syntax::plain`].
    pub fn plain_template(
        &self,
        s: &Spanned<String>,
        scope: &Scope,
    ) -> Result<Template, WorkflowError> {
        self.parse_template(&s.value, s.referenced, scope, true)
    }

    /// [`Ctx::template`] of a string at `loc`.
    pub fn template_str(
        &self,
        text: &str,
        loc: Location,
        scope: &Scope,
    ) -> Result<Template, WorkflowError> {
        self.parse_template(text, loc, scope, false)
    }

    /// [`Ctx::template_str`], or [`Ctx::plain_template`] when `plain`.
    pub fn parse_template(
        &self,
        text: &str,
        loc: Location,
        scope: &Scope,
        plain: bool,
    ) -> Result<Template, WorkflowError> {
        let at = |message: String| WorkflowError::At {
            path: self.path.to_path_buf(),
            line: loc.line() as usize,
            column: loc.column() as usize,
            message,
        };
        let t = Template::parse_with(
            text,
            &|root| scope.knows(root),
            Syntax {
                defaults: true,
                plain,
            },
        )
        .map_err(|e| {
            let shell = match &e {
                TemplateError::UnknownVariable { name, .. } if name == "shell" => {
                    scope.shell_hint().map(|h| format!("; {h}"))
                }
                TemplateError::UnknownVariable { name, .. } if name == "validation" => {
                    scope.validation_hint().map(|h| format!("; {h}"))
                }
                _ => None,
            };
            at(format!("{e}{}{}", shell.unwrap_or_default(), scope.hint()))
        })?;
        for ph in t.placeholders().filter(|p| p.default.is_none()) {
            scope.check(&ph.var).map_err(at)?;
        }
        Ok(t)
    }

    /// Report each Prodigy-only key given: `(key, value, what to do instead)`.
    pub fn prodigy_only_keys(&self, keys: &[(&str, &ProdigyOnly, &str)]) {
        for (key, v, why) in keys {
            self.keep(self.prodigy_only(key, v, why));
        }
    }

    pub fn prodigy_only(&self, key: &str, v: &ProdigyOnly, why: &str) -> Result<(), WorkflowError> {
        match v {
            Some(s) => Err(self.err(
                s.referenced,
                format!("`{key}` is a Prodigy-only key and runner does not support it: {why}"),
            )),
            None => Ok(()),
        }
    }
}

pub(super) fn duration(cx: &Ctx, d: &Spanned<DurationValue>) -> Result<Duration, WorkflowError> {
    match &d.value {
        DurationValue::Seconds(s) if s.is_finite() && *s >= 0.0 => Ok(Duration::from_secs_f64(*s)),
        DurationValue::Seconds(s) => Err(cx.err(
            d.referenced,
            format!("invalid duration {s}: must be a non-negative number of seconds"),
        )),
        DurationValue::Text(t) => duration_text(t).map_err(|e| cx.err(d.referenced, e)),
    }
}

/// A duration that may name environment variables (`None` then: set when the job starts).
pub(super) fn duration_setting(
    cx: &Ctx,
    key: SettingKey,
    name: &'static str,
    d: &Spanned<DurationValue>,
) -> Result<Option<Duration>, WorkflowError> {
    if let DurationValue::Text(t) = &d.value
        && cx.setting(key, name, t, d.referenced)?.is_none()
    {
        return Ok(None);
    }
    duration(cx, d).map(Some)
}

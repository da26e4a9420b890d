//! Notifications (`notify:` in a workflow or pipeline): a command that gets the event as JSON
//! on stdin and `${event.*}` variables, or a webhook that receives it as a POST (with a
//! Slack-compatible `text` field). A notification that fails is a warning and a record in
//! the job (`notifications.jsonl`), never a job failure and never a hang.

pub mod deliver;
pub mod message;
pub mod notifier;
pub mod raw;
pub mod spec;

//! Colony's evaluation logic as pure functions: the spec of `POST /v1/evaluations` and
//! its strict validation, prompt templates, the run plan, scoring one case into a
//! result record, aggregation, pairwise comparison of providers and export. No I/O,
//! no clock, no network: the Evaluation actor calls providers and measures time, and
//! hands the outputs here.
//!
//! ```
//! use colony_eval::{score_case, validate, ProviderOutput, SpecLimits};
//!
//! let body = serde_json::json!({
//!     "providers": [{"id": "echo", "kind": "builtin", "model": "echo"}],
//!     "prompt": "{{answer}}",
//!     "cases": [{"vars": {"answer": "Paris"}, "reference": "Paris"}],
//!     "scorers": [{"type": "exact_match"}]
//! });
//! let spec = validate(&body, &SpecLimits::default()).unwrap();
//! let text = spec.render(0).unwrap().echo_text();
//! let out = ProviderOutput { text, ..ProviderOutput::default() };
//! let result = score_case(&spec, 0, "echo", 0, Ok(out), None).unwrap();
//! assert!(result.passed);
//! ```
//!
//! # Layout
//! - [`spec`]: the spec's serde types (providers, prompt or messages, cases, scorers,
//!   run settings) and their defaults
//! - [`limits`]: configured upper bounds on a spec
//! - [`validate`](mod@validate): strict validation with JSON-pointer errors, building
//!   the scorers
//! - [`validated`]: the [`ValidatedSpec`] and prompt rendering
//! - [`template`]: `{{var}}` templates
//! - [`plan`]: the ordered work items and their stable keys
//! - [`builtin`]: the `echo` and `mock` providers' answers, deterministic per attempt
//! - [`ledger`]: records each work item's result exactly once
//! - [`result`]: the per-case result record and [`score_case`]
//! - [`aggregate`](mod@aggregate): per provider × scorer statistics and per provider totals
//! - [`compare`](mod@compare): every pair of providers under every scorer
//! - [`export`]: JSON Lines and CSV
//! - [`error`]: why a spec is rejected or a request about it fails

pub mod aggregate;
pub mod builtin;
pub mod compare;
pub mod error;
pub mod export;
pub mod ledger;
pub mod limits;
pub mod plan;
pub mod result;
pub mod spec;
pub mod template;
pub mod validate;
pub mod validated;

pub use aggregate::{aggregate, Aggregate, ProviderTotals, ScorerStats};
pub use builtin::{builtin_reply, BuiltinReply};
pub use compare::{compare, Comparison, Statistic, OVERALL};
pub use error::{EvalError, SpecError, SpecErrors};
pub use export::{csv_field, csv_header, csv_rows, from_jsonl, to_csv, to_jsonl, ExportError};
pub use ledger::{Ledger, LedgerError};
pub use limits::SpecLimits;
pub use plan::{BadWorkKey, Plan, WorkItem, WorkKey};
pub use result::{score_case, CaseResult, Price, ProviderOutput, ScoreRecord, Usage};
pub use spec::{CaseSpec, EvalSpec, MessageSpec, ProviderKind, ProviderParams, ProviderSpec, Role};
pub use template::{Template, TemplateError};
pub use validate::validate;
pub use validated::{Message, NamedScorer, PromptTemplate, RenderedPrompt, ValidatedSpec};

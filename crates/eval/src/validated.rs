//! A spec that passed [`crate::validate`]: the parsed spec, its built scorers with
//! their result names, and its parsed prompt templates.

use colony_scorers::Scorer;
use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::spec::{CaseSpec, EvalSpec, ProviderSpec, Role};
use crate::template::Template;

/// A built scorer and the name its values are recorded under.
#[derive(Debug, Clone)]
pub struct NamedScorer {
    /// `type`, with `#k` appended for the k-th scorer of the same type (`bleu#2`).
    pub name: String,
    /// The scorer's `type` (`bleu`, `regex`, ...).
    pub kind: String,
    /// The ready-to-run scorer.
    pub scorer: Scorer,
}

/// The parsed prompt: one text template or chat message templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptTemplate {
    /// From `prompt`.
    Text(Template),
    /// From `messages`.
    Messages(Vec<(Role, Template)>),
}

/// One rendered chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// The rendered content.
    pub content: String,
}

/// A prompt rendered for one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum RenderedPrompt {
    /// A single user message.
    Text(String),
    /// A chat conversation.
    Messages(Vec<Message>),
}

impl RenderedPrompt {
    /// The chat messages to send (a text prompt is one user message).
    pub fn to_messages(&self) -> Vec<Message> {
        match self {
            RenderedPrompt::Text(t) => vec![Message {
                role: Role::User,
                content: t.clone(),
            }],
            RenderedPrompt::Messages(m) => m.clone(),
        }
    }

    /// What the builtin `echo` model answers: the text prompt, or the messages'
    /// contents joined with `\n`.
    pub fn echo_text(&self) -> String {
        match self {
            RenderedPrompt::Text(t) => t.clone(),
            RenderedPrompt::Messages(m) => m
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// A validated evaluation spec, ready to plan, render and score.
#[derive(Debug, Clone)]
pub struct ValidatedSpec {
    pub(crate) spec: EvalSpec,
    pub(crate) scorers: Vec<NamedScorer>,
    pub(crate) prompt: PromptTemplate,
}

impl ValidatedSpec {
    /// The parsed spec.
    pub fn spec(&self) -> &EvalSpec {
        &self.spec
    }

    /// The built scorers in spec order.
    pub fn scorers(&self) -> &[NamedScorer] {
        &self.scorers
    }

    /// The scorer names in spec order (the result and export column names).
    pub fn scorer_names(&self) -> Vec<&str> {
        self.scorers.iter().map(|s| s.name.as_str()).collect()
    }

    /// The parsed prompt templates.
    pub fn prompt(&self) -> &PromptTemplate {
        &self.prompt
    }

    /// The providers in spec order.
    pub fn providers(&self) -> &[ProviderSpec] {
        &self.spec.providers
    }

    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Result<&ProviderSpec, EvalError> {
        self.spec
            .providers
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| EvalError::UnknownProvider(id.to_string()))
    }

    /// The case at `index`.
    pub fn case(&self, index: usize) -> Result<&CaseSpec, EvalError> {
        self.spec
            .cases
            .get(index)
            .ok_or(EvalError::UnknownCase(index))
    }

    /// The prompt rendered with case `index`'s vars.
    pub fn render(&self, index: usize) -> Result<RenderedPrompt, EvalError> {
        let vars = &self.case(index)?.vars;
        Ok(match &self.prompt {
            PromptTemplate::Text(t) => RenderedPrompt::Text(t.render(vars)?),
            PromptTemplate::Messages(ms) => RenderedPrompt::Messages(
                ms.iter()
                    .map(|(role, t)| {
                        Ok(Message {
                            role: *role,
                            content: t.render(vars)?,
                        })
                    })
                    .collect::<Result<_, EvalError>>()?,
            ),
        })
    }

    /// Case `index`'s precomputed output for `provider_id` (score-only mode), if any.
    pub fn precomputed_output(
        &self,
        index: usize,
        provider_id: &str,
    ) -> Result<Option<&str>, EvalError> {
        self.provider(provider_id)?;
        Ok(self.case(index)?.output_for(provider_id))
    }
}

//! Private survey tallies: the research behind Concord also asks institutions *why* they
//! share or do not (`../shared/context/`: "common reasons why organizations are sharing", and
//! not sharing). A node can hold its institution's answers to the community survey and
//! contribute them to the `survey-sharing-motivations` template; only the totals per answer
//! are released, never one institution's answers.
//!
//! The survey is part of the catalogue (every party must agree on its cells): two
//! multiple-choice questions (reasons to share, reasons not to) and three five-point Likert
//! scales. Each question also has a "not answered" cell, so every institution counts exactly
//! once per question (per selected choice for multiple choice).
//!
//! The answers file (TOML) — a node refuses to start on a malformed one, naming the file and
//! the line:
//!
//! ```toml
//! survey = "sharing-motivations"
//! version = 1
//!
//! [answers]
//! reasons-to-share = ["reciprocity", "improved-detection"]
//! reasons-not-to-share = ["legal-restrictions"]
//! trust-in-community = 4            # 1 (not at all) … 5 (fully)
//! value-of-received-intelligence = 3
//! ease-of-sharing = 2
//! ```
//!
//! A question left out counts as "not answered".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SURVEY: &str = "sharing-motivations";
pub const SURVEY_VERSION: u32 = 1;

/// How a question is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Any number of the choices.
    Choices(&'static [&'static str]),
    /// One level of a five-point scale, 1 to 5.
    Likert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    pub id: &'static str,
    pub text: &'static str,
    pub kind: Kind,
}

/// The survey's questions, in cell order.
pub const QUESTIONS: &[Question] = &[
    Question {
        id: "reasons-to-share",
        text: "Why does your institution share threat intelligence?",
        kind: Kind::Choices(&[
            "reciprocity",
            "improved-detection",
            "faster-response",
            "reputation",
            "community-membership",
            "legal-obligation",
            "other",
        ]),
    },
    Question {
        id: "reasons-not-to-share",
        text: "What keeps your institution from sharing (more)?",
        kind: Kind::Choices(&[
            "legal-restrictions",
            "confidentiality-of-sources",
            "lack-of-trust",
            "reputation-risk",
            "lack-of-resources",
            "no-perceived-benefit",
            "data-quality-concerns",
            "other",
        ]),
    },
    Question {
        id: "trust-in-community",
        text: "How much do you trust the community you share with? (1 not at all … 5 fully)",
        kind: Kind::Likert,
    },
    Question {
        id: "value-of-received-intelligence",
        text: "How useful is the intelligence you receive? (1 useless … 5 essential)",
        kind: Kind::Likert,
    },
    Question {
        id: "ease-of-sharing",
        text: "How easy is sharing with your tools? (1 very hard … 5 very easy)",
        kind: Kind::Likert,
    },
];

const NOT_ANSWERED: &str = "(not answered)";
const LIKERT: [&str; 5] = ["1", "2", "3", "4", "5"];

fn answers_of(q: &Question) -> Vec<&'static str> {
    let mut labels: Vec<&str> = match q.kind {
        Kind::Choices(choices) => choices.to_vec(),
        Kind::Likert => LIKERT.to_vec(),
    };
    labels.push(NOT_ANSWERED);
    labels
}

/// The tally's cells, `question: answer`, in order.
pub fn labels() -> Vec<String> {
    QUESTIONS
        .iter()
        .flat_map(|q| {
            answers_of(q)
                .into_iter()
                .map(move |a| format!("{}: {a}", q.id))
        })
        .collect()
}

/// One institution's answers, as cells of [`labels`] (0 or 1 each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SurveyAnswers {
    pub cells: Vec<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{}:{line}: {message}", path.display())]
pub struct SurveyError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    survey: toml::Spanned<String>,
    version: toml::Spanned<u32>,
    #[serde(default)]
    answers: BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>>,
}

/// Reads and checks an answers file.
pub fn load(path: &Path) -> Result<SurveyAnswers, SurveyError> {
    let text = std::fs::read_to_string(path).map_err(|e| SurveyError {
        path: path.into(),
        line: 0,
        message: e.to_string(),
    })?;
    parse(&text).map_err(|(offset, message)| SurveyError {
        path: path.into(),
        line: text[..offset.min(text.len())].matches('\n').count() + 1,
        message,
    })
}

/// Parses answers; an error carries the byte offset it is about.
pub fn parse(text: &str) -> Result<SurveyAnswers, (usize, String)> {
    let file: File = toml::from_str(text).map_err(|e| {
        (
            e.span().map_or(0, |s| s.start),
            e.message().trim().to_owned(),
        )
    })?;
    if file.survey.get_ref() != SURVEY {
        return Err((
            file.survey.span().start,
            format!(
                "answers to survey {:?}; this catalogue has {SURVEY:?}",
                file.survey.get_ref()
            ),
        ));
    }
    if *file.version.get_ref() != SURVEY_VERSION {
        return Err((
            file.version.span().start,
            format!(
                "version {} of the survey; this catalogue has version {SURVEY_VERSION}",
                file.version.get_ref()
            ),
        ));
    }
    let mut cells = Vec::new();
    let mut given: BTreeMap<&str, (&toml::Spanned<String>, &toml::Spanned<toml::Value>)> = file
        .answers
        .iter()
        .map(|(k, v)| (k.get_ref().as_str(), (k, v)))
        .collect();
    for q in QUESTIONS {
        let labels = answers_of(q);
        let mut row = vec![0u64; labels.len()];
        match given.remove(q.id) {
            None => *row.last_mut().expect("a not-answered cell") = 1,
            Some((_, value)) => {
                let at = value.span().start;
                let bad = |message: String| (at, message);
                match (q.kind, value.get_ref()) {
                    (Kind::Choices(choices), toml::Value::Array(items)) => {
                        if items.is_empty() {
                            *row.last_mut().expect("a not-answered cell") = 1;
                        }
                        for item in items {
                            let choice = item
                                .as_str()
                                .ok_or_else(|| bad(format!("{}: choices are strings", q.id)))?;
                            let i = choices.iter().position(|c| *c == choice).ok_or_else(|| {
                                bad(format!(
                                    "{}: {choice:?} is not one of {}",
                                    q.id,
                                    choices.join(", ")
                                ))
                            })?;
                            if row[i] == 1 {
                                return Err(bad(format!("{}: {choice:?} given twice", q.id)));
                            }
                            row[i] = 1;
                        }
                    }
                    (Kind::Likert, toml::Value::Integer(level)) if (1..=5).contains(level) => {
                        row[*level as usize - 1] = 1;
                    }
                    (Kind::Choices(_), _) => {
                        return Err(bad(format!("{}: a list of choices", q.id)));
                    }
                    (Kind::Likert, _) => {
                        return Err(bad(format!("{}: a level from 1 to 5", q.id)));
                    }
                }
            }
        }
        cells.extend(row);
    }
    if let Some((key, _)) = given.into_values().next() {
        return Err((
            key.span().start,
            format!(
                "{:?} is not a question of the survey ({})",
                key.get_ref(),
                QUESTIONS
                    .iter()
                    .map(|q| q.id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(SurveyAnswers { cells })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"survey = "sharing-motivations"
version = 1

[answers]
reasons-to-share = ["reciprocity", "improved-detection"]
reasons-not-to-share = []
trust-in-community = 4
ease-of-sharing = 2
"#;

    #[test]
    fn answers_become_one_cell_per_choice_and_level() {
        let answers = parse(GOOD).unwrap();
        let labels = labels();
        assert_eq!(answers.cells.len(), labels.len());
        let set: Vec<&str> = labels
            .iter()
            .zip(&answers.cells)
            .filter(|(_, &v)| v == 1)
            .map(|(l, _)| l.as_str())
            .collect();
        assert_eq!(
            set,
            [
                "reasons-to-share: reciprocity",
                "reasons-to-share: improved-detection",
                "reasons-not-to-share: (not answered)",
                "trust-in-community: 4",
                "value-of-received-intelligence: (not answered)",
                "ease-of-sharing: 2",
            ]
        );
    }

    #[test]
    fn a_malformed_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (GOOD.replace("= 4", "= 7"), 7, "a level from 1 to 5"),
            (
                GOOD.replace("\"reciprocity\"", "\"fun\""),
                5,
                "\"fun\" is not one of",
            ),
            (GOOD.replace("ease-of-sharing", "ease"), 8, "not a question"),
            (GOOD.replace("version = 1", "version = 2"), 2, "version 2"),
            (GOOD.replace("= 4", "= [4"), 8, "expected"),
            (
                GOOD.replace("\"improved-detection\"", "\"reciprocity\""),
                5,
                "given twice",
            ),
        ];
        for (text, line, message) in cases {
            let path = dir.path().join("survey.toml");
            std::fs::write(&path, &text).unwrap();
            let err = load(&path).unwrap_err();
            assert_eq!(err.line, line, "{err}");
            assert!(err.message.contains(message), "{err}");
            assert!(err
                .to_string()
                .starts_with(&format!("{}:{line}:", path.display())));
        }
    }
}

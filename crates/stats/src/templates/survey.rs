//! The private survey tally: each institution's answers to the community's questions on why it
//! shares or not (`crate::survey`), released only as totals per answer.

use super::{table, Cells, Definition, Profile, Tally, SMALL_COUNTS};
use crate::catalogue::{TemplateError, TemplateInfo};
use crate::layout::{Chart, Dimension, Window};
use crate::misp::Event;

/// Totals per answer of the community survey.
pub struct SurveySharingMotivations;

impl Definition for SurveySharingMotivations {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "survey-sharing-motivations",
                version: 1,
                question: "Why do institutions share or not, and how do they rate trust, value and tools? (survey tally: institutions per answer)",
                definition: "Each institution counts once per answer it gave: 1 in each chosen reason, 1 in its level of each rating, or 1 in \"not answered\". No MISP data is read.",
                fields: "the node's survey answers file (`[data] survey`)",
            },
            parameter_sets: SMALL_COUNTS,
            // One institution's whole questionnaire moves several cells; the tally's protection is
            // the minimum number of institutions.
            privacy_unit: None,
            chart: Chart::Bars {
                dimension: 0,
                top: None,
            },
            counts: "institutions",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        table(
            vec![Dimension {
                name: "question: answer",
                labels: crate::survey::labels(),
            }],
            1,
        )
    }
    /// The institution's answers, not its events: a tally covers no events.
    fn tally(&self, tally: &mut Tally, _events: &[Event]) -> Result<(), TemplateError> {
        let survey = tally
            .institution
            .survey
            .as_ref()
            .ok_or(TemplateError::NeedsSurvey {
                template: self.profile().info.id,
            })?;
        tally.values.copy_from_slice(&survey.cells);
        Ok(())
    }
}

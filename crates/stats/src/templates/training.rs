//! The training templates (issue 19, docs/learning.md): one per [`Label`], each a round of
//! federated gradient descent on logistic regression. An institution's input is not a count of
//! its events but its fixed-point gradient at the round's public model
//! ([`crate::learning::LocalGradient`]), computed by [`crate::Template::compute_training`] from
//! the model the query carries; the cells are those of [`crate::learning::layout`]: the samples,
//! the loss and one sum per coefficient, offset to be non-negative.

use super::{Cells, Definition, Profile, Tally};
use crate::catalogue::{TemplateError, TemplateInfo};
use crate::layout::{Chart, Window};
use crate::learning::{layout, Design, Label};
use crate::misp::Event;

/// A round of training a model of one label.
pub struct Train(pub Label);

impl Definition for Train {
    fn profile(&self) -> Profile {
        let (id, question, definition) = match self.0 {
            Label::ToIds => (
                "train-to-ids",
                "Which attributes do institutions flag for detection (to_ids)? One round of training a logistic- or linear-regression model of it across the institutions.",
                "One sample per attribute with a to_ids field, of the events dated in the window; its features are docs/learning.md's, less to-ids. Each institution computes, at the round's public model, Σ round(scale·r·x_j) over its samples (r = σ(w·x) − y, or w·x − y clipped to [−1, 1] for linear regression), the scaled loss and the sample count; only the sum over the institutions is released, and the researcher steps the model.",
            ),
            Label::FalsePositive => (
                "train-false-positive",
                "Which attributes turn out to be false positives (a sighting of type 1)? One round of training a logistic- or linear-regression model of it across the institutions.",
                "One sample per attribute of the events dated in the window, every feature of docs/learning.md; label 1 with a false-positive sighting. Each institution computes, at the round's public model, Σ round(scale·r·x_j) over its samples (r = σ(w·x) − y, or w·x − y clipped to [−1, 1] for linear regression), the scaled loss and the sample count; only the sum over the institutions is released, and the researcher steps the model.",
            ),
            Label::SharedBeyondCommunity => (
                "train-shared-beyond-community",
                "Which events get shared beyond their community (distribution 2 or 3)? One round of training a logistic- or linear-regression model of it, per attribute, across the institutions.",
                "One sample per attribute of the events dated in the window that carry a distribution (0–4); its features are docs/learning.md's, less the four distribution:*. Each institution computes, at the round's public model, Σ round(scale·r·x_j) over its samples (r = σ(w·x) − y, or w·x − y clipped to [−1, 1] for linear regression), the scaled loss and the sample count; only the sum over the institutions is released, and the researcher steps the model.",
            ),
        };
        Profile {
            info: TemplateInfo {
                id,
                version: 1,
                question,
                definition,
                fields: "event `date`, `distribution`, `threat_level_id`, `publish_timestamp`, tags and galaxies; attributes' `type`, `value` (as an indicator, never kept), `category`, `to_ids`, tags, `first_seen`, sightings, and object membership",
            },
            parameter_sets: super::LARGE_COUNTS,
            // per-round DP is not built yet: a DP query of a training template is refused
            privacy_unit: None,
            chart: Chart::Bars {
                dimension: 0,
                top: None,
            },
            counts: "samples",
            needs_organisation: false,
        }
    }

    fn cells(&self, _window: &Window) -> Cells {
        let layout = layout(&Design::new(self.0));
        Cells {
            dimensions: layout.dimensions,
            cell_bound: layout.cell_bound,
            summary: layout.summary,
        }
    }

    fn tally(&self, _tally: &mut Tally, _events: &[Event]) -> Result<(), TemplateError> {
        Err(TemplateError::NeedsModel {
            template: self.profile().info.id,
        })
    }
}

//! Features and labels for learning across institutions, and the training both ends of a
//! federated run compute (issue 19; docs/learning.md).
//!
//! **Samples.** One sample per attribute (event-level and inside objects) of an event dated in
//! the window: its features, a fixed vector of values in `[0, 1]` that every node derives the
//! same way from its own MISP data ([`FEATURES`]), and a 0/1 [`Label`]. A label decides which
//! attributes are samples (one without the label's field is none) and which features are left
//! out because they would give the label away ([`Design`]).
//!
//! **Training.** Logistic regression (or linear regression of the label, [`Objective`]) by
//! full-batch gradient descent on the mean loss (SPINDLE, Froelicher et al., PETS 2021, §4,
//! trains generalised linear models the same way). In a federated round every institution
//! computes, at the public model `w`, the gradient of its samples' loss in fixed point — each
//! sample's `r·x_j`, with the residual `r = σ(w·x) − y` (or the clipped `w·x − y`) in
//! `[−1, 1]`, rounded to a multiple of `1/scale` ([`LocalGradient`]) — and only the sum over
//! the institutions is released; the researcher steps `w ← w − η·G/M` with `M` the samples in
//! all ([`Model::step`]). [`train_pooled`] is the same descent on the pooled samples in `f64`:
//! what a researcher would compute holding everyone's data. The two differ by the rounding
//! alone, at most [`TrainConfig::divergence_bound`] per coefficient (docs/learning.md derives
//! it: `T·η·√d / (2·scale)` for `η` up to `8/d`, logistic, or `2/d`, linear).
//!
//! This module knows nothing of encryption: a node encodes a [`LocalGradient`] as a statistic
//! (`concord-query`), exactly as it encodes a table.

use crate::layout::{Dimension, Layout, SummaryCell};
use crate::misp::{Attribute, Event};
use crate::templates::timing::publish_delay_days;
use crate::vocabulary::{distribution, pap_level, threat_level, tlp_level, PAP_LEVELS};
use crate::Window;

/// One feature: its name (the model's coefficient names) and how it is derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub definition: &'static str,
}

const fn feature(name: &'static str, definition: &'static str) -> Feature {
    Feature { name, definition }
}

/// Every feature, in coefficient order. Each is in `[0, 1]`: indicators of a category or a
/// flag, and three numbers scaled by a logarithm.
pub const FEATURES: &[Feature] = &[
    feature("bias", "1 for every sample (the intercept)"),
    feature("type:domain", "the value is a domain or hostname (also of domain|ip, hostname|port)"),
    feature("type:ip", "the value is an IP address or CIDR (also of domain|ip, ip-*|port)"),
    feature("type:url", "the value is a URL, URI or link"),
    feature("type:hash", "the value is a file hash (md5, sha1, sha256, sha512, imphash, authentihash; also of filename|hash)"),
    feature("type:email", "the value is an e-mail address"),
    feature("type:other", "the value is no indicator (file name, free text, registry key, …)"),
    feature("category:network", "MISP category Network activity"),
    feature("category:payload-delivery", "MISP category Payload delivery"),
    feature("category:external-analysis", "MISP category External analysis"),
    feature("category:artifacts", "MISP category Artifacts dropped or Payload installation"),
    feature("category:other", "any other MISP category"),
    feature("to-ids", "the attribute's to_ids flag is set"),
    feature("in-object", "the attribute belongs to a MISP object"),
    feature("attribute-tagged", "the attribute carries at least one tag"),
    feature("first-seen", "the attribute has a first_seen time"),
    feature("sighted", "the attribute has at least one sighting (type 0)"),
    feature("tlp:clear", "the event's most restrictive TLP tag is clear (or white)"),
    feature("tlp:green", "the event's most restrictive TLP tag is green"),
    feature("tlp:amber", "the event's most restrictive TLP tag is amber or amber+strict"),
    feature("tlp:red", "the event's most restrictive TLP tag is red"),
    feature("pap-tagged", "the event carries a PAP tag"),
    feature("galaxy", "the event has at least one galaxy cluster"),
    feature("distribution:organisation", "event distribution 0 (this organisation only)"),
    feature("distribution:community", "event distribution 1 (this community only)"),
    feature("distribution:beyond", "event distribution 2 or 3 (connected communities, all)"),
    feature("distribution:sharing-group", "event distribution 4 (a sharing group)"),
    feature("threat:high", "event threat level high"),
    feature("threat:medium", "event threat level medium"),
    feature("threat:low", "event threat level low"),
    feature("published", "the event has a publish time"),
    feature("publish-delay", "ln(1 + days from the event date to its publication, clipped to [0, 3650]) / ln(3651); 0 unpublished"),
    feature("event-size", "ln(1 + the event's attributes) / ln(100001), clipped to 1"),
];

/// The index of the feature named `name` in [`FEATURES`].
fn index(name: &str) -> usize {
    FEATURES
        .iter()
        .position(|f| f.name == name)
        .unwrap_or_else(|| panic!("no feature {name}"))
}

/// What a model predicts of an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Label {
    /// The attribute is flagged for detection (`to_ids`): which indicators an institution
    /// deems actionable. Samples: attributes with a `to_ids` field.
    ToIds,
    /// The attribute has a false-positive sighting (type 1). Samples: every attribute.
    FalsePositive,
    /// The attribute's event is shared beyond the community (distribution 2 or 3). Samples:
    /// attributes of events with an event-level distribution (0–4; feeds strip it).
    SharedBeyondCommunity,
}

/// Every label, in a fixed order.
pub const LABELS: &[Label] = &[
    Label::ToIds,
    Label::FalsePositive,
    Label::SharedBeyondCommunity,
];

impl Label {
    pub fn id(&self) -> &'static str {
        match self {
            Self::ToIds => "to-ids",
            Self::FalsePositive => "false-positive",
            Self::SharedBeyondCommunity => "shared-beyond-community",
        }
    }

    pub fn by_id(id: &str) -> Option<Self> {
        LABELS.iter().copied().find(|l| l.id() == id)
    }

    /// What the label means, and which attributes are its samples.
    pub fn definition(&self) -> &'static str {
        match self {
            Self::ToIds => "1 when the attribute's to_ids flag is set; samples: attributes with a to_ids field",
            Self::FalsePositive => "1 when the attribute has a sighting of type 1 (false positive); samples: every attribute",
            Self::SharedBeyondCommunity => "1 when the event's distribution is 2 or 3 (connected communities, all communities); samples: attributes of events with a distribution of 0 to 4",
        }
    }

    /// The features left out of a model of this label: those that state it.
    pub fn excluded(&self) -> &'static [&'static str] {
        match self {
            Self::ToIds => &["to-ids"],
            Self::FalsePositive => &[],
            Self::SharedBeyondCommunity => &[
                "distribution:organisation",
                "distribution:community",
                "distribution:beyond",
                "distribution:sharing-group",
            ],
        }
    }

    /// The label of one attribute of `event`; `None` where the attribute is no sample.
    fn of(&self, event: &Event, attribute: &Attribute) -> Option<bool> {
        match self {
            Self::ToIds => attribute.to_ids,
            Self::FalsePositive => Some(attribute.sightings.iter().any(|s| s.kind == Some(1))),
            Self::SharedBeyondCommunity => match event.distribution {
                Some(d @ 0..=4) => Some(d == 2 || d == 3),
                _ => None,
            },
        }
    }
}

/// One sample: the features of the label's [`Design`] and the label.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub x: Vec<f64>,
    pub y: bool,
}

/// The features a model of one label uses: [`FEATURES`] less those the label excludes.
#[derive(Clone, Debug, PartialEq)]
pub struct Design {
    pub label: Label,
    /// Indices into [`FEATURES`], in order.
    pub features: Vec<usize>,
}

impl Design {
    pub fn new(label: Label) -> Self {
        let excluded: Vec<usize> = label.excluded().iter().map(|n| index(n)).collect();
        Self {
            label,
            features: (0..FEATURES.len())
                .filter(|i| !excluded.contains(i))
                .collect(),
        }
    }

    /// The number of coefficients, `d`.
    pub fn dimension(&self) -> usize {
        self.features.len()
    }

    /// The coefficient names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.features.iter().map(|&i| FEATURES[i].name).collect()
    }

    /// The samples of `events` dated in `window`: one per attribute that has the label.
    pub fn samples(&self, events: &[Event], window: &Window) -> Vec<Sample> {
        let mut out = Vec::new();
        for event in events {
            if event
                .date
                .as_ref()
                .and_then(|d| window.position(d))
                .is_none()
            {
                continue;
            }
            let context = EventFeatures::of(event);
            let in_object = event.attributes.iter().map(|a| (a, false)).chain(
                event
                    .objects
                    .iter()
                    .flat_map(|o| o.attributes.iter().map(|a| (a, true))),
            );
            for (attribute, in_object) in in_object {
                let Some(y) = self.label.of(event, attribute) else {
                    continue;
                };
                let all = features(&context, attribute, in_object);
                out.push(Sample {
                    x: self.features.iter().map(|&i| all[i]).collect(),
                    y,
                });
            }
        }
        out
    }
}

/// What an event gives each of its attributes' features.
struct EventFeatures {
    values: Vec<(usize, f64)>,
}

impl EventFeatures {
    fn of(event: &Event) -> Self {
        let mut values = Vec::new();
        let mut set = |name: &str, v: f64| values.push((index(name), v));
        match tlp_level(event) {
            0 => set("tlp:clear", 1.0),
            1 => set("tlp:green", 1.0),
            2 | 3 => set("tlp:amber", 1.0),
            4 => set("tlp:red", 1.0),
            _ => {}
        }
        if pap_level(event) != PAP_LEVELS.len() - 1 {
            set("pap-tagged", 1.0);
        }
        if !event.galaxy_clusters().is_empty() {
            set("galaxy", 1.0);
        }
        match distribution(event) {
            0 => set("distribution:organisation", 1.0),
            1 => set("distribution:community", 1.0),
            2 | 3 => set("distribution:beyond", 1.0),
            4 => set("distribution:sharing-group", 1.0),
            _ => {}
        }
        match threat_level(event) {
            0 => set("threat:high", 1.0),
            1 => set("threat:medium", 1.0),
            2 => set("threat:low", 1.0),
            _ => {}
        }
        if let Some(days) = publish_delay_days(event) {
            set("published", 1.0);
            let days = days.clamp(0, 3650) as f64;
            set("publish-delay", days.ln_1p() / 3650f64.ln_1p());
        }
        let size = event.all_attributes().count() as f64;
        set("event-size", (size.ln_1p() / 100_000f64.ln_1p()).min(1.0));
        Self { values }
    }
}

/// Every feature of one attribute, in [`FEATURES`] order.
fn features(event: &EventFeatures, attribute: &Attribute, in_object: bool) -> Vec<f64> {
    let mut x = vec![0.0; FEATURES.len()];
    x[index("bias")] = 1.0;
    let kind = match attribute
        .indicators
        .first()
        .map(|i| crate::indicators::GROUPS[i.group as usize])
    {
        Some("domain") => "type:domain",
        Some("ip") => "type:ip",
        Some("url") => "type:url",
        Some("email") => "type:email",
        Some(_) => "type:hash",
        None => "type:other",
    };
    x[index(kind)] = 1.0;
    let category = match attribute.category.as_str() {
        "Network activity" => "category:network",
        "Payload delivery" => "category:payload-delivery",
        "External analysis" => "category:external-analysis",
        "Artifacts dropped" | "Payload installation" => "category:artifacts",
        _ => "category:other",
    };
    x[index(category)] = 1.0;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    x[index("to-ids")] = flag(attribute.to_ids == Some(true));
    x[index("in-object")] = flag(in_object);
    x[index("attribute-tagged")] = flag(!attribute.tags.is_empty());
    x[index("first-seen")] = flag(attribute.first_seen.is_some());
    x[index("sighted")] = flag(attribute.sightings.iter().any(|s| s.kind == Some(0)));
    for &(i, v) in &event.values {
        x[i] = v;
    }
    x
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn dot(w: &[f64], x: &[f64]) -> f64 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

/// What a model predicts and which loss the descent minimises. Both keep every sample's
/// gradient term `r·x_j` in `[−1, 1]`, so the fixed point, the cells and the bound are shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Logistic regression: `p = σ(w·x)`, the log-loss; residual `σ(w·x) − y ∈ (−1, 1)`.
    #[default]
    Logistic,
    /// Linear regression of the 0/1 label (a linear probability model): the prediction `w·x`,
    /// the squared error with each residual clipped to `[−1, 1]` — the Huber loss with `δ = 1`,
    /// least squares wherever `|w·x − y| ≤ 1` (from `w = 0`, every residual starts there).
    Linear,
}

/// Every objective, in a fixed order.
pub const OBJECTIVES: &[Objective] = &[Objective::Logistic, Objective::Linear];

impl Objective {
    pub fn id(&self) -> &'static str {
        match self {
            Self::Logistic => "logistic",
            Self::Linear => "linear",
        }
    }

    /// `logistic` or `linear`; the empty id is the default, logistic.
    pub fn by_id(id: &str) -> Option<Self> {
        match id {
            "" => Some(Self::Logistic),
            _ => OBJECTIVES.iter().copied().find(|o| o.id() == id),
        }
    }

    /// The residual of one sample, `∂loss/∂(w·x)`: in `[−1, 1]`.
    fn residual(&self, z: f64, y: bool) -> f64 {
        let y = f64::from(u8::from(y));
        match self {
            Self::Logistic => sigmoid(z) - y,
            Self::Linear => (z - y).clamp(-1.0, 1.0),
        }
    }

    /// The loss of one sample at `z = w·x`, computed without overflow.
    fn loss(&self, z: f64, y: bool) -> f64 {
        match self {
            Self::Logistic => {
                // −log σ(z) = softplus(−z); −log(1 − σ(z)) = softplus(z)
                let softplus = |t: f64| t.max(0.0) + (-t.abs()).exp().ln_1p();
                softplus(if y { -z } else { z })
            }
            Self::Linear => {
                let r = (z - f64::from(u8::from(y))).abs();
                if r <= 1.0 {
                    r * r / 2.0
                } else {
                    r - 0.5
                }
            }
        }
    }

    /// The model's prediction for `z = w·x`: a probability, or the linear score clipped to
    /// `[0, 1]`.
    pub fn predict(&self, z: f64) -> f64 {
        match self {
            Self::Logistic => sigmoid(z),
            Self::Linear => z.clamp(0.0, 1.0),
        }
    }

    /// `L/max‖x‖²` of the mean loss: `σ' ≤ 1/4` for the log-loss, `1` for the (Huber)
    /// squared error.
    fn curvature(&self) -> f64 {
        match self {
            Self::Logistic => 0.25,
            Self::Linear => 1.0,
        }
    }
}

/// How a model is trained: the same at every node and at the researcher.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Gradient steps (one federated round each).
    pub rounds: u32,
    /// The step size `η`, at most [`TrainConfig::max_learning_rate`].
    pub learning_rate: f64,
    /// A per-sample gradient coordinate is rounded to a multiple of `2^-scale_bits`.
    pub scale_bits: u32,
    /// Logistic (the default) or linear regression.
    #[serde(default)]
    pub objective: Objective,
}

/// Why a training configuration is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrainError {
    #[error("learning rate {rate}: between 0 and {max:.4} for {d} coefficients (8/d for logistic, 2/d for linear regression: larger steps may diverge, and the fixed-point bound no longer holds)")]
    LearningRate { rate: f64, max: f64, d: usize },
    #[error("{0} rounds: 1 to 1000")]
    Rounds(u32),
    #[error("scale of 2^{0}: 2^4 to 2^24")]
    Scale(u32),
    #[error("a model of {given} coefficients for a design of {expected}")]
    Dimension { given: usize, expected: usize },
    #[error("{0} samples: a round takes at most {MAX_SAMPLES} from one institution")]
    TooManySamples(u64),
    #[error("coefficient {index} of the model is {value}: a model's coefficients are finite, at most {MAX_COEFFICIENT} in magnitude")]
    Coefficient { index: usize, value: f64 },
    #[error("round {round} of {rounds}: rounds count from 0 and stay below their number")]
    Round { round: u32, rounds: u32 },
}

impl TrainConfig {
    /// The largest step of `objective` for `d` coefficients: the mean loss is convex and
    /// `L`-smooth with `L ≤ c·max‖x‖² ≤ c·d` (every feature in `[0, 1]`; `c = 1/4` for the
    /// log-loss, 1 for the squared error), and a gradient step of a convex `L`-smooth function
    /// is non-expansive for `η ≤ 2/L`: `8/d` and `2/d`.
    pub fn max_learning_rate(objective: Objective, d: usize) -> f64 {
        2.0 / (objective.curvature() * d as f64)
    }

    /// `rounds` rounds of logistic regression for `d` coefficients at the largest step the
    /// bound holds for and a scale of `2^16` (at 30 rounds and 33 coefficients: a federated
    /// model within 3.2·10⁻⁴ of the pooled one).
    pub fn standard(d: usize, rounds: u32) -> Self {
        Self {
            rounds,
            learning_rate: Self::max_learning_rate(Objective::Logistic, d),
            scale_bits: 16,
            objective: Objective::Logistic,
        }
    }

    /// Refuses a configuration outside the bounds the error analysis holds for.
    pub fn check(&self, d: usize) -> Result<(), TrainError> {
        let max = Self::max_learning_rate(self.objective, d);
        if !(self.learning_rate > 0.0 && self.learning_rate <= max) {
            return Err(TrainError::LearningRate {
                rate: self.learning_rate,
                max,
                d,
            });
        }
        if !(1..=1000).contains(&self.rounds) {
            return Err(TrainError::Rounds(self.rounds));
        }
        if !(4..=MAX_SCALE_BITS).contains(&self.scale_bits) {
            return Err(TrainError::Scale(self.scale_bits));
        }
        Ok(())
    }

    pub fn scale(&self) -> f64 {
        (1u64 << self.scale_bits) as f64
    }

    /// How far a federated model may be from the pooled one, per coefficient, after all rounds:
    /// each round's mean gradient is off by at most `1/(2·scale)` per coordinate (every
    /// sample's rounding at most that, averaged), so by `√d/(2·scale)` in L2; a step is
    /// non-expansive for `η` up to [`TrainConfig::max_learning_rate`], so the errors add up:
    /// `T·η·√d/(2·scale)`.
    pub fn divergence_bound(&self, d: usize) -> f64 {
        self.rounds as f64 * self.learning_rate * (d as f64).sqrt() / (2.0 * self.scale())
    }
}

/// The most samples one institution contributes to a round (its part of a round with more is
/// refused: the plaintext range of the sums is sized for it).
pub const MAX_SAMPLES: u64 = (1 << 24) - 1;

/// The largest fixed-point scale, `2^24` ([`TrainConfig::check`]): the cells' bounds hold it.
const MAX_SCALE_BITS: u32 = 24;

/// A mean log-loss term is clipped to this (in units of the loss) before it is scaled.
const MAX_LOSS: f64 = 64.0;

/// The cells of one round's aggregate for `design`: the table cell `samples`, then the summary
/// cells `loss` and one per coefficient, each the sum over samples of `q + scale` for the
/// sample's rounded term `q ∈ [−scale, scale]` — non-negative, so the limbs of a summary cell
/// hold it exactly — from which [`LocalGradient::from_cells`] takes the `M·scale` back off.
/// Under `ADD-8192-T33`, whose `t ≈ 2^33` holds the sum over about 500 institutions of
/// `MAX_SAMPLES` each (the query plan checks the number it is proposed to).
pub fn layout(design: &Design) -> Layout {
    let scale = 1u64 << MAX_SCALE_BITS;
    let mut summary = vec![SummaryCell {
        name: "loss",
        bound: MAX_LOSS as u64 * scale * MAX_SAMPLES,
    }];
    summary.extend(design.names().into_iter().map(|name| SummaryCell {
        name,
        bound: 2 * scale * MAX_SAMPLES,
    }));
    Layout {
        dimensions: vec![Dimension {
            name: "quantity",
            labels: vec!["samples".into()],
        }],
        cell_bound: MAX_SAMPLES,
        summary,
        parameter_set: crate::templates::LARGE_COUNTS[0],
        overlap: None,
    }
}

/// The largest coefficient magnitude a round's model may have (a model beyond it is no
/// descent from 0 with a bounded step, and σ saturates long before).
pub const MAX_COEFFICIENT: f64 = 1e6;

/// Refuses a round's model that is not `d` finite coefficients of at most [`MAX_COEFFICIENT`].
pub fn check_model(model: &[f64], d: usize) -> Result<(), TrainError> {
    if model.len() != d {
        return Err(TrainError::Dimension {
            given: model.len(),
            expected: d,
        });
    }
    match model
        .iter()
        .position(|w| !w.is_finite() || w.abs() > MAX_COEFFICIENT)
    {
        Some(index) => Err(TrainError::Coefficient {
            index,
            value: model[index],
        }),
        None => Ok(()),
    }
}

/// One institution's part of a round: the gradient of its samples' log-loss at the public
/// model, each sample's coordinate rounded to a multiple of `1/scale`, summed as integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalGradient {
    /// `Σ_samples round(scale · (σ(w·x) − y) · x_j)`, per coefficient; each term in
    /// `[−scale, scale]`.
    pub gradient: Vec<i64>,
    /// `Σ_samples round(scale · log-loss)`, each term clipped to `[0, 64·scale]`: what the
    /// researcher follows the descent by.
    pub loss: i64,
    /// The samples.
    pub samples: u64,
}

impl LocalGradient {
    /// The part of `samples` at `w`.
    pub fn compute(samples: &[Sample], w: &[f64], config: &TrainConfig) -> Self {
        let scale = config.scale();
        let mut gradient = vec![0i64; w.len()];
        let mut loss = 0i64;
        let objective = config.objective;
        for sample in samples {
            let z = dot(w, &sample.x);
            let error = objective.residual(z, sample.y);
            for (g, x) in gradient.iter_mut().zip(&sample.x) {
                *g += (scale * error * x).round() as i64;
            }
            loss += (scale * objective.loss(z, sample.y).min(MAX_LOSS)).round() as i64;
        }
        Self {
            gradient,
            loss,
            samples: samples.len() as u64,
        }
    }

    /// The part as the cells of [`layout`]: samples, loss, and each coordinate offset by
    /// `samples·scale` so that it is non-negative.
    pub fn values(&self, config: &TrainConfig) -> Result<Vec<u64>, TrainError> {
        if self.samples > MAX_SAMPLES {
            return Err(TrainError::TooManySamples(self.samples));
        }
        let offset = self.samples as i64 * config.scale() as i64;
        let mut out = vec![self.samples, self.loss as u64];
        out.extend(self.gradient.iter().map(|&g| (g + offset) as u64));
        Ok(out)
    }

    /// The (summed) part back from the cells of [`layout`], as decrypted.
    pub fn from_cells(cells: &[i128], config: &TrainConfig) -> Result<Self, TrainError> {
        let [samples, loss, gradient @ ..] = cells else {
            return Err(TrainError::Dimension {
                given: cells.len().saturating_sub(2),
                expected: 0,
            });
        };
        let offset = *samples * config.scale() as i128;
        Ok(Self {
            gradient: gradient.iter().map(|&g| (g - offset) as i64).collect(),
            loss: *loss as i64,
            samples: *samples as u64,
        })
    }

    /// Adds another institution's part: what the encrypted aggregate holds.
    pub fn add(&mut self, other: &LocalGradient) {
        for (a, b) in self.gradient.iter_mut().zip(&other.gradient) {
            *a += b;
        }
        self.loss += other.loss;
        self.samples += other.samples;
    }
}

/// A logistic-regression model of one label, and how it was trained.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Model {
    pub label: Label,
    /// The coefficient names, in order ([`Design::names`]).
    pub features: Vec<String>,
    pub coefficients: Vec<f64>,
    pub config: TrainConfig,
    /// The mean log-loss at each round's model (before its step), as the rounds released it.
    pub losses: Vec<f64>,
}

impl Model {
    /// The model before its first round: every coefficient 0.
    pub fn start(design: &Design, config: TrainConfig) -> Result<Self, TrainError> {
        config.check(design.dimension())?;
        Ok(Self {
            label: design.label,
            features: design.names().iter().map(|s| s.to_string()).collect(),
            coefficients: vec![0.0; design.dimension()],
            config,
            losses: Vec::new(),
        })
    }

    /// One gradient step from a round's released sum: `w ← w − η·G/(scale·M)`.
    pub fn step(&mut self, round: &LocalGradient) -> Result<(), TrainError> {
        if round.gradient.len() != self.coefficients.len() {
            return Err(TrainError::Dimension {
                given: round.gradient.len(),
                expected: self.coefficients.len(),
            });
        }
        let m = round.samples.max(1) as f64 * self.config.scale();
        for (w, g) in self.coefficients.iter_mut().zip(&round.gradient) {
            *w -= self.config.learning_rate * *g as f64 / m;
        }
        self.losses.push(round.loss as f64 / m);
        Ok(())
    }

    /// The predicted probability of the label for features `x` (a linear model's score,
    /// clipped to `[0, 1]`).
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.config.objective.predict(dot(&self.coefficients, x))
    }

    /// The objective's loss of one sample.
    fn loss(&self, sample: &Sample) -> f64 {
        self.config
            .objective
            .loss(dot(&self.coefficients, &sample.x), sample.y)
    }
}

/// Gradient descent on the pooled samples, in `f64`: the reference a federated run is held to.
pub fn train_pooled(
    design: &Design,
    samples: &[Sample],
    config: TrainConfig,
) -> Result<Model, TrainError> {
    let mut model = Model::start(design, config)?;
    let m = samples.len().max(1) as f64;
    for _ in 0..config.rounds {
        let mut gradient = vec![0.0; design.dimension()];
        let mut loss = 0.0;
        for sample in samples {
            let z = dot(&model.coefficients, &sample.x);
            let error = config.objective.residual(z, sample.y);
            for (g, x) in gradient.iter_mut().zip(&sample.x) {
                *g += error * x;
            }
            loss += config.objective.loss(z, sample.y);
        }
        for (w, g) in model.coefficients.iter_mut().zip(&gradient) {
            *w -= config.learning_rate * g / m;
        }
        model.losses.push(loss / m);
    }
    Ok(model)
}

/// The rounds of a federated run in the clear: each institution's [`LocalGradient`], summed
/// as the encrypted aggregate sums them, and the researcher's step. What the deployed run
/// releases round by round, and so what it must equal.
pub fn train_federated(
    design: &Design,
    institutions: &[&[Sample]],
    config: TrainConfig,
) -> Result<Model, TrainError> {
    let mut model = Model::start(design, config)?;
    for _ in 0..config.rounds {
        let mut sum = LocalGradient {
            gradient: vec![0; design.dimension()],
            loss: 0,
            samples: 0,
        };
        for samples in institutions {
            sum.add(&LocalGradient::compute(
                samples,
                &model.coefficients,
                &config,
            ));
        }
        model.step(&sum)?;
    }
    Ok(model)
}

/// How well a model predicts held-out samples.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub samples: usize,
    pub positives: usize,
    /// At the threshold 0.5.
    pub accuracy: f64,
    /// The area under the ROC curve (the probability that a random positive scores above a
    /// random negative, ties counting one half); `None` without both classes.
    pub auc: Option<f64>,
    /// The objective's mean loss (log-loss, or the clipped squared error).
    pub mean_loss: f64,
    /// The ROC curve: (false-positive rate, true-positive rate), from (0, 0) to (1, 1).
    pub roc: Vec<(f64, f64)>,
}

/// Evaluates `model` on `samples`.
pub fn evaluate(model: &Model, samples: &[Sample]) -> Evaluation {
    let mut scored: Vec<(f64, bool)> = samples.iter().map(|s| (model.predict(&s.x), s.y)).collect();
    let positives = scored.iter().filter(|(_, y)| *y).count();
    let negatives = scored.len() - positives;
    let correct = scored.iter().filter(|(p, y)| (*p >= 0.5) == *y).count();
    let mean_loss =
        samples.iter().map(|s| model.loss(s)).sum::<f64>() / samples.len().max(1) as f64;
    // by descending score; a run of ties is one step of the curve
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut roc = vec![(0.0, 0.0)];
    let (mut tp, mut fp, mut area) = (0usize, 0usize, 0.0);
    let mut i = 0;
    while i < scored.len() {
        let (tp0, fp0) = (tp, fp);
        let score = scored[i].0;
        while i < scored.len() && scored[i].0 == score {
            if scored[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        // the trapezoid under this step
        area += (fp - fp0) as f64 * (tp + tp0) as f64 / 2.0;
        if positives > 0 && negatives > 0 {
            roc.push((fp as f64 / negatives as f64, tp as f64 / positives as f64));
        }
    }
    Evaluation {
        samples: samples.len(),
        positives,
        accuracy: correct as f64 / samples.len().max(1) as f64,
        auc: (positives > 0 && negatives > 0).then(|| area / (positives as f64 * negatives as f64)),
        mean_loss,
        roc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(x: &[f64], y: bool) -> Sample {
        Sample { x: x.to_vec(), y }
    }

    #[test]
    fn every_label_leaves_out_what_states_it_and_the_features_are_named_once() {
        let mut names: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FEATURES.len());
        for label in LABELS {
            let design = Design::new(*label);
            assert_eq!(Label::by_id(label.id()), Some(*label));
            assert_eq!(design.dimension(), FEATURES.len() - label.excluded().len());
            for name in label.excluded() {
                assert!(!design.names().contains(name), "{name}");
            }
        }
    }

    #[test]
    fn auc_counts_ranked_pairs_and_ties_as_one_half() {
        let design = Design {
            label: Label::ToIds,
            features: vec![0],
        };
        let model = Model {
            label: Label::ToIds,
            features: vec!["bias".into()],
            coefficients: vec![1.0],
            config: TrainConfig {
                rounds: 1,
                learning_rate: 1.0,
                scale_bits: 8,
                objective: Objective::Logistic,
            },
            losses: vec![],
        };
        // scores σ(x): 0.9 > 0.7 > 0.5; positives at 0.9 and 0.5, a negative at 0.7
        let z = |p: f64| (p / (1.0 - p)).ln();
        let samples = [
            sample(&[z(0.9)], true),
            sample(&[z(0.7)], false),
            sample(&[z(0.5)], true),
        ];
        let e = evaluate(&model, &samples);
        assert_eq!(design.dimension(), 1);
        assert!((e.auc.unwrap() - 0.5).abs() < 1e-12, "{e:?}");
        assert_eq!(e.roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(e.roc.last(), Some(&(1.0, 1.0)));
        // all tied: one half
        let tied = [sample(&[0.0], true), sample(&[0.0], false)];
        assert!((evaluate(&model, &tied).auc.unwrap() - 0.5).abs() < 1e-12);
        // separable: 1
        let separated = [sample(&[3.0], true), sample(&[-3.0], false)];
        assert_eq!(evaluate(&model, &separated).auc, Some(1.0));
        assert_eq!(evaluate(&model, &separated).accuracy, 1.0);
        // one class only: no AUC
        assert_eq!(evaluate(&model, &[sample(&[1.0], true)]).auc, None);
    }

    #[test]
    fn parts_travel_as_cells_and_their_slot_sums_are_the_summed_part() {
        let design = Design::new(Label::ToIds);
        let layout = layout(&design);
        let config = TrainConfig {
            rounds: 1,
            learning_rate: 0.1,
            scale_bits: 24,
            objective: Objective::Logistic,
        };
        let d = design.dimension();
        // extreme parts: every term at −scale, at +scale, and a mix
        let scale = config.scale() as i64;
        let parts = [
            LocalGradient {
                gradient: vec![-scale * 1000; d],
                loss: 0,
                samples: 1000,
            },
            LocalGradient {
                gradient: vec![scale * 7; d],
                loss: 64 * scale * 7,
                samples: 7,
            },
            LocalGradient {
                gradient: (0..d as i64).map(|j| j - 3).collect(),
                loss: 5,
                samples: 3,
            },
        ];
        let mut slots = vec![0i64; layout.slots()];
        let mut sum = LocalGradient {
            gradient: vec![0; d],
            loss: 0,
            samples: 0,
        };
        for part in &parts {
            for (s, v) in slots
                .iter_mut()
                .zip(layout.to_slots(&part.values(&config).unwrap()))
            {
                *s += v;
            }
            sum.add(part);
        }
        let cells = layout.from_slots(&slots).unwrap();
        assert_eq!(LocalGradient::from_cells(&cells, &config).unwrap(), sum);
        let too_many = LocalGradient {
            gradient: vec![0; d],
            loss: 0,
            samples: MAX_SAMPLES + 1,
        };
        assert!(matches!(
            too_many.values(&config),
            Err(TrainError::TooManySamples(_))
        ));
    }

    #[test]
    fn a_federated_run_stays_within_the_bound_of_the_pooled_one() {
        // three institutions of a two-feature problem; the pooled run holds them all
        let design = Design {
            label: Label::ToIds,
            features: vec![0, 1],
        };
        let mut institutions: Vec<Vec<Sample>> = vec![Vec::new(); 3];
        for k in 0..300u32 {
            let v = f64::from(k % 17) / 16.0;
            institutions[(k % 3) as usize]
                .push(sample(&[1.0, v], (k * 7919) % 10 < (v * 10.0) as u32));
        }
        let pooled: Vec<Sample> = institutions.iter().flatten().cloned().collect();
        let parts: Vec<&[Sample]> = institutions.iter().map(Vec::as_slice).collect();
        for objective in OBJECTIVES {
            let config = TrainConfig {
                rounds: 40,
                learning_rate: TrainConfig::max_learning_rate(*objective, 2),
                scale_bits: 10,
                objective: *objective,
            };
            let reference = train_pooled(&design, &pooled, config).unwrap();
            let federated = train_federated(&design, &parts, config).unwrap();
            let bound = config.divergence_bound(design.dimension());
            for (a, b) in federated.coefficients.iter().zip(&reference.coefficients) {
                assert!(
                    (a - b).abs() <= bound,
                    "{objective:?}: {a} vs {b}, bound {bound}"
                );
            }
            // it learned: the loss went down
            assert!(reference.losses.last() < reference.losses.first());
            // too large a step, too few bits: refused
            let too_fast = TrainConfig {
                learning_rate: 1.01 * config.learning_rate,
                ..config
            };
            assert!(matches!(
                Model::start(&design, too_fast),
                Err(TrainError::LearningRate { .. })
            ));
            let coarse = TrainConfig {
                scale_bits: 2,
                ..config
            };
            assert_eq!(Model::start(&design, coarse), Err(TrainError::Scale(2)));
        }
        // linear regression's residual is clipped: a sample far off moves the gradient by 1
        assert_eq!(Objective::Linear.residual(5.0, false), 1.0);
        assert_eq!(Objective::Linear.residual(0.25, true), -0.75);
        assert_eq!(Objective::Linear.loss(3.0, false), 2.5);
        assert_eq!(Objective::by_id(""), Some(Objective::Logistic));
        assert_eq!(Objective::by_id("linear"), Some(Objective::Linear));
        assert_eq!(Objective::by_id("poisson"), None);
    }
}

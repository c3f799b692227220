//! What an institution's node computes before anything is encrypted (DESIGN.md §3): MISP data
//! read from disk ([`source`], [`misp`]) and the versioned statistics catalogue ([`catalogue`]),
//! whose templates ([`templates`], one file per family) turn events into a vector of bounded
//! integer cells laid out by [`layout`].
//!
//! This crate knows nothing of encryption or networks: a node encodes a [`catalogue::Statistic`]'s
//! slots into plaintexts (`concord-bfv`), and the researcher's client decodes aggregated slots
//! back into cells with the same [`catalogue::Layout`].

pub mod catalogue;
pub mod describe_types;
pub mod generator;
pub mod indicators;
pub mod layout;
pub mod learning;
pub mod misp;
pub mod overlap;
pub mod page;
pub mod source;
pub mod survey;
pub mod templates;
pub mod vocabulary;

pub use catalogue::{
    Chart, Institution, Layout, PrivacyUnit, Statistic, Template, TemplateError, Window, YearMonth,
    TEMPLATES,
};
pub use misp::{event_from_value, event_values, parse_events, Event, EventError};
pub use source::{
    load, load_exports, load_feed, test_data_dir, DataSet, FileError, FileProblem, LoadReport,
    SourceError,
};

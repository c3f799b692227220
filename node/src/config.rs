//! The node's configuration file (TOML). Every key, with its default, is in
//! `docs/configuration.md` (checked against this code by `concord-testbed`'s tests). Example:
//!
//! ```toml
//! listen = "127.0.0.1:7401"
//! keys_dir = "/var/lib/concord/keys"        # key shares (one owner-only file per parameter set)
//!                                           # and state.redb (agreements, released shares)
//! organisation_uuids = ["5cf66e53-b5f8-43e7-be9a-49880a3b4631"]  # this institution's Orgc uuid(s)
//! sector = "Finance"                        # optional: a sector of the MISP sector galaxy
//! organisation_type = "CSIRT"               # optional: CSIRT, ISAC, government agency, ...
//! audit_log = "/var/log/concord/audit.jsonl" # every decision, one JSON line (default keys_dir/audit.jsonl)
//!
//! [tls]
//! ca = "/etc/concord/ca.pem"
//! certificate = "/etc/concord/node.pem"
//! key = "/etc/concord/node.key"
//!
//! [data]
//! path = "/var/lib/misp/feed"               # a MISP feed directory or a directory of event exports,
//!                                           # or, instead of path, a MISP instance:
//! # [data.misp]
//! # url = "https://misp.example.org"
//! # api_key_file = "misp.key"              # owner-only; the key is never in this file
//! # ca = "misp-ca.pem"                     # optional: the MISP server's CA (default: system roots)
//! # pin_sha256 = "AB:CD:…"                 # or: its own certificate's SHA-256 (self-signed)
//! # from = "2016-01-01"                    # optional: events dated from (and `to`, until) this day
//! # page_size = 100                        # events per restSearch page
//! # timeout_s = 60                         # per request
//! # retries = 3                            # after timeouts, connection errors, 429 and 5xx
//! survey = "/etc/concord/survey.toml"       # optional: this institution's survey answers
//! refresh_s = 3600                          # optional: read the data again every hour
//!                                           # (absent: once, at start)
//!
//! [policy]
//! allowed_templates = ["events-by-month-tlp-distribution", "time-to-publish"]
//! min_institutions = 3
//! allow_public_results = false              # true: also help release results public to all (CKS)
//! allow_publication = false                 # true: also results the researcher publishes to MISP
//! allowed_researchers = ["alice"]           # researchers' certificate names; empty or absent: any
//! max_cells = 131072                        # the largest query (cells) this node takes part in
//! max_ciphertexts = 64                      # the largest contribution (ciphertexts; an overlap
//!                                           # query's bins / N: its work grows with them)
//! require_signed_queries = true             # only queries signed by the researcher (default)
//! approval = "automatic"                    # or "manual": the operator approves each query
//!                                           # (concord-node approvals list|approve|deny)
//! approval_timeout_s = 86400                # a query waiting longer for the operator is refused
//! require_dp = false                        # true: only differentially private queries
//! max_epsilon = 1.0                         # the most ε one DP query may spend
//! epsilon_budget = 10.0                     # each researcher's total ε over this node's data
//! budget_delta = 1e-6                       #   (zCDP composition, converted at this δ)
//! max_proposals_per_hour = 120              # new queries one researcher may propose per hour
//! min_threshold = 2                         # threshold mode: the fewest parties that may release
//!                                           # a result together (all-party mode is always taken)
//!
//! # the coordinator this node serves: only a coordinator certificate of this name may call it
//! [coordinator]
//! name = "coordinator"                      # its certificate name (default "coordinator")
//! # optional: enrol with it at start (it may also list this node in its own configuration)
//! url = "https://coordinator.example:7400"
//! advertise = "https://node.example:7401"   # where it reaches this node
//!
//! # optional: the operator's HTTP endpoint (no authentication: loopback or a monitoring
//! # network only): /metrics (Prometheus), /ready, /budgets (`concord-node budgets`)
//! [operations]
//! listen = "127.0.0.1:9401"
//! ```

pub use concord_api::tls::TlsFiles;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub keys_dir: PathBuf,
    #[serde(default)]
    pub organisation_uuids: Vec<String>,
    /// The institution's sector (`concord-stats` `SECTORS`, the MISP sector galaxy), for the
    /// templates by sector; absent: counted as "not declared".
    pub sector: Option<String>,
    /// The kind of institution (`concord-stats` `ORGANISATION_TYPES`); absent: "not declared".
    pub organisation_type: Option<String>,
    pub tls: TlsFiles,
    pub data: DataSource,
    #[serde(default)]
    pub policy: Policy,
    pub coordinator: Option<CoordinatorLink>,
    /// Where the audit log goes (default `keys_dir/audit.jsonl`).
    pub audit_log: Option<PathBuf>,
    /// The operator's HTTP endpoint: Prometheus metrics, readiness, `/budgets`
    /// (`concord-api` `operations`); absent: none.
    pub operations: Option<concord_api::operations::OperationsConfig>,
}

/// The coordinator this node serves, and enrols with when `url` and `advertise` are given.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorLink {
    /// The coordinator certificate's name: the only coordinator certificate this node answers,
    /// and the TLS server name it dials.
    #[serde(default = "default_coordinator_name")]
    pub name: String,
    /// Where to enrol; absent: the coordinator lists this node in its own configuration.
    pub url: Option<String>,
    /// This node's address as the coordinator reaches it, `https://host:port`.
    pub advertise: Option<String>,
}

fn default_coordinator_name() -> String {
    "coordinator".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// A MISP feed directory (with `manifest.json`) or a directory of event exports.
    pub path: Option<PathBuf>,
    /// Or a MISP instance, read over its REST API when the node starts.
    pub misp: Option<concord_misp::MispApiConfig>,
    /// The institution's answers to the community survey (`concord-stats` `survey` format),
    /// for the survey tally; absent: the node takes no part in it.
    pub survey: Option<PathBuf>,
    /// Read the data again every this many seconds (a refresh that fails keeps the last good
    /// data); absent: read once, at start.
    pub refresh_s: Option<u64>,
}

/// What this node agrees to take part in.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Template ids this node computes; empty means every template of the catalogue.
    #[serde(default)]
    pub allowed_templates: Vec<String>,
    /// The fewest contributing institutions a query must have for this node to take part.
    #[serde(default = "default_min_institutions")]
    pub min_institutions: usize,
    /// Whether this node helps release results public to the community (joint decryption,
    /// CKS). Otherwise (the default) results go only to the submitting researcher's key (PCKS).
    #[serde(default)]
    pub allow_public_results: bool,
    /// Whether this node takes part in queries whose result the researcher will publish to
    /// the community's MISP instance (`concord query submit --publish`).
    #[serde(default)]
    pub allow_publication: bool,
    /// Researchers (certificate names) whose queries this node takes part in; empty: any.
    #[serde(default)]
    pub allowed_researchers: Vec<String>,
    /// The most cells a query may have.
    #[serde(default = "default_max_cells")]
    pub max_cells: usize,
    /// The most ciphertexts a contribution may span: what a query costs this node — to
    /// encrypt, and at release to re-sum every institution's and (overlap) to evaluate the
    /// circuit on — grows with them. An overlap query's bins set it (bins / N); a
    /// table's cells (65,536 cells of a large-counter template: 8).
    #[serde(default = "default_max_ciphertexts")]
    pub max_ciphertexts: usize,
    /// Take part only in queries signed by the submitting researcher's certificate key (the
    /// default): then no one but the researcher chooses the key a result is sealed to.
    #[serde(default = "yes")]
    pub require_signed_queries: bool,
    /// `"automatic"` (the default): a proposal the policy admits is agreed at once.
    /// `"manual"`: it waits for the node's operator (`concord-node approvals approve|deny`).
    #[serde(default)]
    pub approval: Approval,
    /// How long a proposal waits for the operator before the node refuses it (default a day).
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_s: u64,
    /// Take part only in differentially private queries.
    #[serde(default)]
    pub require_dp: bool,
    /// The most ε one DP query may spend (default 1).
    #[serde(default = "default_max_epsilon")]
    pub max_epsilon: f64,
    /// Each researcher's privacy budget over this node's data: the ε (at `budget_delta`) that
    /// all their DP queries together may spend, composed in zCDP (default 10 at 1e-6).
    #[serde(default = "default_epsilon_budget")]
    pub epsilon_budget: f64,
    #[serde(default = "default_budget_delta")]
    pub budget_delta: f64,
    /// Threshold mode: the smallest threshold `T` of a deployment this node takes part in (at
    /// least 2; default 2). Any `T` parties together hold the collective key, so this is how
    /// many colluding institutions this node's data withstands beyond `T − 1`.
    #[serde(default = "default_min_threshold")]
    pub min_threshold: u32,
    /// The most new queries one researcher may have proposed to this node in an hour (default
    /// 120): every proposal is stored and logged, so a flood is refused (`rate-limited`).
    #[serde(default = "default_max_proposals_per_hour")]
    pub max_proposals_per_hour: usize,
}

fn default_max_proposals_per_hour() -> usize {
    120
}

fn default_min_threshold() -> u32 {
    2
}

fn default_max_epsilon() -> f64 {
    1.0
}

fn default_epsilon_budget() -> f64 {
    10.0
}

fn default_budget_delta() -> f64 {
    1e-6
}

/// Who agrees to a proposal the policy admits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    #[default]
    Automatic,
    Manual,
}

fn default_approval_timeout() -> u64 {
    86_400
}

fn yes() -> bool {
    true
}

fn default_max_cells() -> usize {
    131_072
}

fn default_max_ciphertexts() -> usize {
    64
}

fn default_min_institutions() -> usize {
    3
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allowed_templates: Vec::new(),
            min_institutions: default_min_institutions(),
            allow_public_results: false,
            allow_publication: false,
            allowed_researchers: Vec::new(),
            max_cells: default_max_cells(),
            max_ciphertexts: default_max_ciphertexts(),
            require_signed_queries: true,
            approval: Approval::Automatic,
            approval_timeout_s: default_approval_timeout(),
            require_dp: false,
            max_epsilon: default_max_epsilon(),
            epsilon_budget: default_epsilon_budget(),
            budget_delta: default_budget_delta(),
            min_threshold: default_min_threshold(),
            max_proposals_per_hour: default_max_proposals_per_hour(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// The audit log's path: `audit_log`, or `keys_dir/audit.jsonl`.
    pub fn audit_log_path(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.keys_dir.join("audit.jsonl"))
    }

    /// The name of the only coordinator certificate this node answers (`[coordinator] name`,
    /// default "coordinator").
    pub fn coordinator_name(&self) -> String {
        self.coordinator
            .as_ref()
            .map_or_else(default_coordinator_name, |link| link.name.clone())
    }

    /// The operator's approvals store (`keys_dir/approvals.redb`).
    pub fn approvals_path(&self) -> PathBuf {
        self.keys_dir.join("approvals.redb")
    }

    /// Reads and checks a configuration file; relative paths are taken from its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message,
        };
        let mut config: Config = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        for template in &config.policy.allowed_templates {
            concord_stats::Template::by_id(template)
                .map_err(|e| invalid(format!("policy.allowed_templates: {e}")))?;
        }
        for (field, value, vocabulary) in [
            ("sector", &config.sector, concord_stats::catalogue::SECTORS),
            (
                "organisation_type",
                &config.organisation_type,
                concord_stats::catalogue::ORGANISATION_TYPES,
            ),
        ] {
            if let Some(value) = value {
                if !vocabulary
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(value.trim()))
                {
                    return Err(invalid(format!(
                        "{field} {value:?} is not one of: {}",
                        vocabulary.join(", ")
                    )));
                }
            }
        }
        if config.policy.min_institutions < 2 {
            return Err(invalid("policy.min_institutions must be at least 2: a single institution's statistic is never released".into()));
        }
        let p = &config.policy;
        if !(p.max_epsilon > 0.0
            && p.epsilon_budget > 0.0
            && p.budget_delta > 0.0
            && p.budget_delta < 1.0)
        {
            return Err(invalid("policy.max_epsilon and policy.epsilon_budget must be positive, policy.budget_delta in (0, 1)".into()));
        }
        if config.policy.min_threshold < 2 {
            return Err(invalid("policy.min_threshold must be at least 2: with a threshold of 1 every party holds the whole key".into()));
        }
        if let Some(link) = &config.coordinator {
            if link.url.is_some() != link.advertise.is_some() {
                return Err(invalid(
                    "coordinator.url and coordinator.advertise go together: where to enrol, and where the coordinator reaches this node".into(),
                ));
            }
            for (field, url) in [("url", &link.url), ("advertise", &link.advertise)] {
                if let Some(url) = url.as_ref().filter(|u| !u.starts_with("https://")) {
                    return Err(invalid(format!(
                        "coordinator.{field} must be an https:// address, not {url:?}"
                    )));
                }
            }
        }
        if config.data.path.is_some() == config.data.misp.is_some() {
            return Err(invalid(
                "[data] needs either path (a MISP feed or export directory) or [data.misp] (a MISP instance), not both".into(),
            ));
        }
        if config.data.refresh_s == Some(0) {
            return Err(invalid(
                "data.refresh_s must be at least 1 second (absent: the data is read once, at start)".into(),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        config.tls.resolve(base);
        let misp_files = config
            .data
            .misp
            .as_mut()
            .map(|m| std::iter::once(&mut m.api_key_file).chain(m.ca.as_mut()));
        for p in [&mut config.keys_dir]
            .into_iter()
            .chain(config.data.path.as_mut())
            .chain(misp_files.into_iter().flatten())
            .chain(config.audit_log.as_mut())
            .chain(config.data.survey.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }
}

//! Scenario files: a `PlanInput` in TOML. The only module that reads files,
//! used by the scenario tests and `baton simulate FILE`.

use std::path::{Path, PathBuf};

use crate::input::PlanInput;
use crate::plan::plan;
use crate::render::render;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario file {path} is not a valid plan input: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

/// Reads a scenario file into a plan input.
pub fn load_file(path: &Path) -> Result<PlanInput, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|source| ScenarioError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses scenario text (TOML) into a plan input.
pub fn parse(text: &str) -> Result<PlanInput, toml::de::Error> {
    toml::from_str(text)
}

/// Loads a scenario, plans it and renders the plan: `baton simulate FILE`.
pub fn simulate_file(path: &Path) -> Result<String, ScenarioError> {
    let input = load_file(path)?;
    Ok(render(&plan(&input)))
}

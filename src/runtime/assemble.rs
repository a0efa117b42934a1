//! The one way firelane's parts are put together — for the daemon, the
//! replay, what-if, the benchmark and the tests alike: the model loaded and
//! checked against its card, the configuration validated with the model's
//! threshold, the database and evidence store opened, and a pipeline
//! writing through them.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::alerts::AlertEvent;
use crate::config::{Config, ConfigError};
use crate::evidence::{EvidenceError, EvidenceStore};
use crate::pipeline::{Committer, Metrics, Pipeline, RecordContext};
use crate::store::{Store, StoreError};
use crate::vision::{Classifier, ModelError};

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
}

/// The opened parts. `pipeline` writes through `store` and `evidence`.
pub struct Assembled {
    pub config: Arc<Config>,
    pub classifier: Arc<Classifier>,
    pub store: Store,
    pub evidence: EvidenceStore,
    pub pipeline: Pipeline,
}

/// How to assemble: everything optional has a default.
#[derive(Default)]
pub struct Options {
    /// Keeps the data folder's files but overrides where they are
    /// (`--data-dir`): the one way to move a run's data.
    pub data_dir: Option<std::path::PathBuf>,
    /// A model already loaded (whatif runs two configs on one model).
    pub classifier: Option<Arc<Classifier>>,
    /// Where violation and zone-state events go after each commit.
    pub events: Option<mpsc::UnboundedSender<AlertEvent>>,
    /// Cluster mode: the leases every commit must hold.
    pub fence: Option<Arc<crate::store::Fence>>,
}

/// Loads the model named by `config` and re-validates the config with the
/// card's threshold as the default for zones that set none.
pub fn with_model(
    config: &Config,
    classifier: Option<Arc<Classifier>>,
) -> Result<(Config, Arc<Classifier>), AssembleError> {
    let classifier = match classifier {
        Some(c) => c,
        None => Arc::new(Classifier::load(config.model_path())?),
    };
    let config = config.with_threshold(classifier.threshold());
    Ok((config, classifier))
}

/// Opens everything `config` names and builds a pipeline on it.
pub async fn assemble(config: &Config, opts: Options) -> Result<Assembled, AssembleError> {
    let mut config = config.clone();
    if let Some(dir) = &opts.data_dir {
        config = config.with_data_dir(dir);
    }
    let (config, classifier) = with_model(&config, opts.classifier)?;
    let store = Store::open(&config.storage.database_url).await?;
    let evidence = EvidenceStore::open(&config.storage.evidence_dir)?;
    let committer = Committer {
        store: store.clone(),
        evidence: evidence.clone(),
        context: RecordContext {
            model_name: classifier.name().to_string(),
            model_sha256: classifier.sha256.clone(),
            config_sha256: config.sha256.clone(),
            sites: RecordContext::sites_of(&config),
        },
        outbox: None,
        events: opts.events,
        metrics: Arc::new(Metrics::default()),
        fence: opts.fence,
    };
    let pipeline = Pipeline::new(&config, classifier.clone(), committer);
    Ok(Assembled {
        config: Arc::new(config),
        classifier,
        store,
        evidence,
        pipeline,
    })
}

/// A data folder emptied for a fresh run (benchmarks).
pub fn clear_data_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

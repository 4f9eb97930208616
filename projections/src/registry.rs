//! The one list of read models and workers a process runs.

use std::sync::Arc;

use collab_domain::StreamCategory;

use crate::history::{History, HistoryConfig};
use crate::read_model::ReadModel;
use crate::worker::Worker;
use crate::{activity, comments, files, notifications, profiles, webhooks};
use crate::{audit, documents, workspaces};

/// A registered consumer of the log: a read model (folds into Postgres tables) or a
/// worker (side effects outside Postgres). Cheap to clone.
#[derive(Clone)]
pub enum Consumer {
    ReadModel(Arc<dyn ReadModel>),
    Worker(Arc<dyn Worker>),
}

impl Consumer {
    pub fn name(&self) -> &'static str {
        match self {
            Consumer::ReadModel(model) => model.name(),
            Consumer::Worker(worker) => worker.name(),
        }
    }

    pub fn categories(&self) -> &'static [StreamCategory] {
        match self {
            Consumer::ReadModel(model) => model.categories(),
            Consumer::Worker(worker) => worker.categories(),
        }
    }

    /// `read model` or `worker`, as status output and logs say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Consumer::ReadModel(_) => "read model",
            Consumer::Worker(_) => "worker",
        }
    }
}

/// The read models and workers of a deployment. [`Registry::standard`] is the list; tests
/// build their own with extra entries.
#[derive(Clone, Default)]
pub struct Registry {
    consumers: Vec<Consumer>,
}

impl Registry {
    /// Every read model and worker the product runs. Adding one is one line here.
    pub fn standard() -> Self {
        Self::standard_with(HistoryConfig::default())
    }

    /// [`Registry::standard`] with the history read model configured.
    pub fn standard_with(history: HistoryConfig) -> Self {
        Self::default()
            .read_model(workspaces::Workspaces)
            .read_model(documents::Documents)
            .read_model(audit::Audit::default())
            .read_model(History::new(history))
            .read_model(profiles::Profiles)
            .read_model(comments::Comments)
            .read_model(notifications::Notifications)
            .read_model(activity::Activity)
            .read_model(webhooks::Webhooks)
            .read_model(files::Files)
    }

    /// Adds a read model. Names must be unique.
    pub fn read_model(self, model: impl ReadModel) -> Self {
        self.with(Consumer::ReadModel(Arc::new(model)))
    }

    /// Adds a worker. Names must be unique.
    pub fn worker(self, worker: impl Worker) -> Self {
        self.with(Consumer::Worker(Arc::new(worker)))
    }

    fn with(mut self, consumer: Consumer) -> Self {
        assert!(
            self.find(consumer.name()).is_none(),
            "two consumers are named '{}'",
            consumer.name()
        );
        self.consumers.push(consumer);
        self
    }

    pub fn consumers(&self) -> &[Consumer] {
        &self.consumers
    }

    pub fn read_models(&self) -> impl Iterator<Item = &Arc<dyn ReadModel>> {
        self.consumers.iter().filter_map(|c| match c {
            Consumer::ReadModel(model) => Some(model),
            Consumer::Worker(_) => None,
        })
    }

    /// The read models every query's read-your-writes waits for.
    pub fn awaited_by_every_query(&self) -> Vec<Arc<dyn ReadModel>> {
        self.read_models()
            .filter(|m| m.awaited_by_every_query())
            .cloned()
            .collect()
    }

    /// One read model by name (for the routes that read it).
    pub fn read_model_named(&self, name: &str) -> Option<Arc<dyn ReadModel>> {
        self.read_models().find(|m| m.name() == name).cloned()
    }

    pub fn find(&self, name: &str) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.name() == name)
    }

    /// Every name, comma-separated (for messages).
    pub fn names(&self) -> String {
        self.consumers
            .iter()
            .map(Consumer::name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

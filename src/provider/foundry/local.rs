//! A model on Foundry Local as a [`crate::provider::Provider`]: the alias
//! resolved to the variant for the device, downloaded if asked, loaded
//! (timed, after unloading a warm copy so the load is cold), chatted with
//! over the OpenAI-compatible routes, and unloaded after, or loaded again
//! when the user had it loaded before.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;

use super::{
    CatalogEntry, Device, Foundry, FoundryError, SystemCli, discover, resolve, same_variant,
    service_pid,
};
use crate::provider::openai::{self, Target};
use crate::provider::{Measured, Progress, Request, Started, Stopped};
use crate::results::{FoundryVariant, TokenSource};
use crate::suite::{Endpoint, Model};

/// The Foundry Local service behind one suite endpoint, discovered and
/// connected on first use and shared by every model on it.
#[derive(Clone)]
pub struct Shared {
    name: String,
    base_url: Option<String>,
    load_timeout: Duration,
    service: Arc<OnceCell<Result<Foundry, String>>>,
}

impl Shared {
    pub fn new(name: &str, endpoint: &Endpoint) -> Shared {
        Shared {
            name: name.to_string(),
            base_url: endpoint.base_url.clone(),
            load_timeout: Duration::from_secs(u64::from(endpoint.load_timeout_s)),
            service: Arc::new(OnceCell::new()),
        }
    }

    /// The connected service, or why there is none (the same answer for
    /// every model of the run).
    async fn get(&self) -> Result<Foundry, String> {
        self.service
            .get_or_init(|| async {
                let env = |key: &str| std::env::var(key).ok();
                let cli = SystemCli::default();
                let connected = async {
                    let found = discover(self.base_url.as_deref(), &env, &cli).await?;
                    let service = Foundry::connect(&found).await?;
                    Ok::<_, FoundryError>(
                        service
                            .with_load_timeout(self.load_timeout)
                            .with_pid(service_pid(&found, &cli).await),
                    )
                };
                connected
                    .await
                    .map_err(|e| format!("endpoint `{}`: {e}", self.name))
            })
            .await
            .clone()
    }
}

/// One model (in one device variant) on Foundry Local.
pub struct Local {
    shared: Shared,
    model: String,
    alias: String,
    device: Option<Device>,
    download: bool,
    /// The endpoint's key and headers; the URL is the service's.
    target: Target,
    http: crate::provider::Timed,
    loaded: Option<Loaded>,
}

/// A variant dyno loaded.
struct Loaded {
    service: Foundry,
    entry: CatalogEntry,
    target: Target,
    /// It was loaded before dyno unloaded it for a cold load.
    was_loaded: bool,
}

impl Local {
    pub fn new(
        shared: Shared,
        model: &Model,
        probing: bool,
        device: Option<Device>,
        target: Target,
        http: crate::provider::Timed,
    ) -> Local {
        Local {
            shared,
            model: model.id.clone(),
            alias: model.api_model.clone(),
            device,
            download: model.download && !probing,
            target,
            http,
            loaded: None,
        }
    }

    async fn prepare(
        &self,
        progress: Progress<'_>,
    ) -> Result<(Foundry, CatalogEntry, bool, Duration), String> {
        let service = self.shared.get().await?;
        let catalog = service.catalog().await.map_err(|e| e.to_string())?;
        let entry =
            resolve(&catalog, &self.alias, self.device.as_ref()).map_err(|e| e.to_string())?;
        if let Ok(cached) = service.cached().await
            && !cached.iter().any(|c| same_variant(c, &entry.id))
        {
            if !self.download {
                return Err(format!(
                    "model `{}` (variant `{}`) is not cached; run `foundry model download {}` or set `download: true`",
                    self.model, entry.id, entry.id
                ));
            }
            let mut report = |pct: f64| progress(format!("downloading {pct:.0}%"));
            service
                .download(&entry.id, &mut report)
                .await
                .map_err(|e| e.to_string())?;
        }
        let was_loaded = service.is_loaded(&entry.id).await.unwrap_or(false);
        if was_loaded {
            // Unload a warm copy, so the timed load is a cold one.
            service.unload(&entry.id).await.map_err(|e| e.to_string())?;
        }
        progress(format!("loading `{}`", entry.id));
        let load = service.load(&entry.id).await.map_err(|e| e.to_string())?;
        Ok((service, entry, was_loaded, load))
    }
}

impl crate::provider::Provider for Local {
    fn start<'a>(
        &'a mut self,
        progress: Progress<'a>,
    ) -> BoxFuture<'a, Result<Started, crate::provider::ProviderError>> {
        async move {
            let (service, entry, was_loaded, load) = self
                .prepare(progress)
                .await
                .map_err(crate::provider::ProviderError::Start)?;
            let resolved = FoundryVariant {
                variant_id: entry.id.clone(),
                alias: entry.alias.clone(),
                device: entry.device.to_string(),
                execution_provider: entry.execution_provider.clone(),
                file_size_mb: entry.file_size_mb,
                license: entry.license.clone(),
                generation: service.generation().to_string(),
            };
            let target = Target {
                base_url: service.chat_base_url(),
                ..self.target.clone()
            };
            let ms = load.as_secs_f64() * 1000.0;
            let description = if was_loaded {
                format!(
                    "`{}` was loaded; unloaded, then loaded in {ms:.0} ms",
                    entry.id
                )
            } else {
                format!("loaded `{}` in {ms:.0} ms", entry.id)
            };
            self.loaded = Some(Loaded {
                service,
                entry,
                target,
                was_loaded,
            });
            Ok(Started {
                load: Some(load),
                // The service's process: its memory and CPU are sampled
                // like a managed server's (every model it holds included).
                pid: self.loaded.as_ref().and_then(|l| l.service.pid()),
                description,
                resolved: Some(resolved),
                ..Started::default()
            })
        }
        .boxed()
    }

    fn measure<'a>(&'a mut self, request: &'a Request) -> BoxFuture<'a, Measured> {
        async move {
            let Some(Loaded {
                service,
                entry,
                target,
                ..
            }) = &self.loaded
            else {
                return Measured::failed(
                    crate::results::ErrorKind::Connect,
                    "the model is not loaded",
                );
            };
            let mut m = openai::chat(&self.http.one, target, &entry.id, request).await;
            // Releases without streamed usage: the service's token-count
            // route comes before counting stream events.
            if m.error.is_none()
                && matches!(m.token_source, None | Some(TokenSource::Estimate))
                && let Some(tokens) = service.token_count(&entry.id, &m.text).await
            {
                m.output_tokens = Some(tokens);
                m.token_source = Some(TokenSource::Tokenize);
            }
            m
        }
        .boxed()
    }

    fn died(&mut self) -> Option<crate::provider::ProviderError> {
        None
    }

    fn sender(&self) -> Option<std::sync::Arc<dyn crate::provider::Concurrent>> {
        let loaded = self.loaded.as_ref()?;
        Some(std::sync::Arc::new(crate::provider::HttpSender::new(
            self.http.kept.clone(),
            loaded.target.clone(),
            Some(loaded.entry.id.clone()),
        )))
    }

    fn stop(&mut self) -> BoxFuture<'_, Stopped> {
        async move {
            let Some(Loaded {
                service,
                entry,
                was_loaded,
                ..
            }) = self.loaded.take()
            else {
                return Stopped::default();
            };
            if was_loaded {
                // The user had it loaded: it stays loaded.
                return Stopped {
                    description: Some("left loaded, as it was before".to_string()),
                    ..Stopped::default()
                };
            }
            match service.unload(&entry.id).await {
                Ok(()) => Stopped {
                    description: Some("unloaded".to_string()),
                    ..Stopped::default()
                },
                Err(err) => Stopped {
                    warning: Some(err.to_string()),
                    ..Stopped::default()
                },
            }
        }
        .boxed()
    }
}

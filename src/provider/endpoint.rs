//! A model behind an OpenAI-compatible endpoint that dyno neither starts
//! nor watches: requests go straight to it.

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::openai::{self, Target};
use super::{Measured, Progress, Request, Started, Stopped, Timed};

/// A plain endpoint as a [`super::Provider`].
pub(super) struct Endpoint {
    target: Target,
    http: Timed,
}

impl Endpoint {
    pub(super) fn new(target: Target, http: Timed) -> Endpoint {
        Endpoint { target, http }
    }
}

impl super::Provider for Endpoint {
    fn start<'a>(
        &'a mut self,
        _: Progress<'a>,
    ) -> BoxFuture<'a, Result<Started, super::ProviderError>> {
        async move {
            Ok(Started {
                version: openai::server_version(&self.http.one, &self.target).await,
                ..Started::default()
            })
        }
        .boxed()
    }

    fn measure<'a>(&'a mut self, request: &'a Request) -> BoxFuture<'a, Measured> {
        async move {
            let mut m = openai::chat(&self.http.one, &self.target, &request.model, request).await;
            openai::hint_foundry(&mut m);
            m
        }
        .boxed()
    }

    fn died(&mut self) -> Option<super::ProviderError> {
        None
    }

    fn sender(&self) -> Option<std::sync::Arc<dyn super::Concurrent>> {
        Some(std::sync::Arc::new(super::HttpSender::new(
            self.http.kept.clone(),
            self.target.clone(),
            None,
        )))
    }

    fn stop(&mut self) -> BoxFuture<'_, Stopped> {
        async { Stopped::default() }.boxed()
    }
}

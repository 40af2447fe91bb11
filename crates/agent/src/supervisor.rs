//! The supervisor owns the running service and swaps it for a new config (SIGHUP reload,
//! and remote config later): validate, drain the old pipelines (receivers stop, batches
//! flush, acknowledgements land, checkpoints commit), start the new; if the new one fails
//! to start, start the last good one again. Because the old pipelines commit exactly what
//! was delivered and the new ones resume from the same checkpoints, a swap loses and
//! repeats no line.

use crate::config::AgentConfig;
use crate::service::Service;
use crate::taps::Taps;
use std::sync::Arc;
use std::time::Duration;

pub struct Supervisor {
    service: Service,
    running: AgentConfig,
    drain_timeout: Duration,
    taps: Option<Arc<Taps>>,
}

impl Supervisor {
    pub async fn start(
        config: AgentConfig,
        drain_timeout: Duration,
        taps: Option<Arc<Taps>>,
    ) -> anyhow::Result<Supervisor> {
        let service = Service::start(&config, drain_timeout, taps.clone()).await?;
        Ok(Supervisor {
            service,
            running: config,
            drain_timeout,
            taps,
        })
    }

    /// Replaces the running pipelines with `config`'s. On failure the previous config is
    /// running again when this returns, and the error says why the new one was refused.
    pub async fn swap(&mut self, config: AgentConfig) -> Result<(), String> {
        let placeholder = Service::idle();
        let old = std::mem::replace(&mut self.service, placeholder);
        old.shutdown(self.drain_timeout).await;
        match Service::start(&config, self.drain_timeout, self.taps.clone()).await {
            Ok(service) => {
                self.service = service;
                self.running = config;
                Ok(())
            }
            Err(e) => {
                let reason = format!("{e:#}");
                match Service::start(&self.running, self.drain_timeout, self.taps.clone()).await {
                    Ok(service) => self.service = service,
                    Err(again) => {
                        // The last good config started before; failing now means the host
                        // changed under us (a port taken, a directory gone). Keep trying
                        // is the caller's job; report both.
                        return Err(format!(
                            "{reason}; restoring the previous config also failed: {again:#}"
                        ));
                    }
                }
                Err(reason)
            }
        }
    }

    /// The running service, for self-metrics and health.
    pub fn service(&self) -> &Service {
        &self.service
    }

    pub async fn shutdown(self) {
        self.service.shutdown(self.drain_timeout).await;
    }
}

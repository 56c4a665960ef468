//! The gRPC server: job and runner services behind their bearer-token interceptors, plus
//! `grpc.health.v1` and server reflection (v1 and v1alpha) on the same listener, and plain
//! HTTP/1.1 `GET /metrics` (Prometheus text) and `GET /healthz` there too, the web pages
//! ([`crate::web`]), and with `[[forges]]` the webhooks (`POST /webhooks/<name>`).
//! Background tasks sweep lapsed leases and deadlines and post commit statuses.

use std::future::Future;
use std::sync::Arc;

use airlock_proto::v1::job_service_server::JobServiceServer;
use airlock_proto::v1::runner_service_server::RunnerServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::api::jobs::JobApi;
use crate::api::runners::RunnerApi;
use crate::blobs::store::BlobStore;
use crate::clock::{Clock, IdGen, RandomIds, SystemClock};
use crate::config::{AuthConfig, ControllerConfig};
use crate::error::ControllerError;
use crate::provenance::signer::Signer;
use crate::scheduler::{Scheduler, SchedulerParts};

/// A controller with its state opened, ready to serve.
#[derive(Debug)]
pub struct Controller {
    scheduler: Arc<Scheduler>,
    auth: AuthConfig,
    runner_auth: crate::auth::runners::RunnerAuth,
    oidc: Option<crate::oidc::OidcHttp>,
    tls: Option<crate::tls::ServerTls>,
    forges: Arc<crate::forge::Forges>,
    signers: Arc<crate::auth::job_signatures::JobSigners>,
    web: crate::config::WebConfig,
    public_url: String,
}

impl Controller {
    /// Opens the controller's state with the system clock and random ids: validates the
    /// configuration, loads the signing key (refusing a group/world-accessible file), opens
    /// and migrates the database, and opens the blob store.
    pub async fn open(config: &ControllerConfig) -> Result<Self, ControllerError> {
        Self::open_with(config, Arc::new(SystemClock), Arc::new(RandomIds)).await
    }

    /// [`Controller::open`] with an injected clock and id generator (tests).
    pub async fn open_with(
        config: &ControllerConfig,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
    ) -> Result<Self, ControllerError> {
        config.validate()?;
        crate::tls::warn_about_transport(config);
        let tls = config
            .tls
            .as_ref()
            .map(crate::tls::ServerTls::load)
            .transpose()?;
        let signer = Signer::load(&config.signing)?;
        let admission = config
            .policy
            .as_ref()
            .map(crate::policy::Admission::load)
            .transpose()?;
        if let Some(admission) = &admission {
            tracing::info!(policy = ?admission, "admission policy loaded");
        }
        let signers = Arc::new(crate::auth::job_signatures::JobSigners::load(
            &config.job_signatures,
        )?);
        let forges = Arc::new(crate::forge::Forges::load(
            &config.forges,
            config.public_url(),
        )?);
        let url = crate::database::postgres_url(config)?;
        let (store, database) = crate::database::open_store(config, url.as_ref()).await?;
        let blobs = BlobStore::open(&config.blob_dir_path(), config.max_upload_bytes)?;
        let caches =
            crate::caches::CacheStorage::open(&config.caches, &store, &config.blob_dir_path())
                .await?;
        let store_backend = store.backend();
        tracing::info!(
            keys = %signer.describe(),
            database = %database,
            backend = store_backend,
            issuer = config.issuer(),
            "controller state opened"
        );
        let issuer = match &config.oidc {
            Some(oidc) => {
                if config.mode == crate::config::Mode::Local && !oidc.token_keys.exists() {
                    crate::oidc::OidcIssuer::init(oidc, config.issuer(), clock.as_ref())?;
                }
                let issuer = crate::oidc::OidcIssuer::open(
                    oidc,
                    config.issuer(),
                    clock.clone(),
                    ids.clone(),
                )?;
                issuer
                    .ensure_distinct_from(signer.published_keys().iter().map(|k| k.key.keyid()))?;
                tracing::info!(token_keys = %oidc.token_keys.display(), "build-token issuer opened");
                Some(issuer)
            }
            None => None,
        };
        // Registrations declared in [auth] (more are made with `airlock controller registration`).
        crate::auth::runners::sync_registrations(
            &store,
            &config.auth,
            crate::clock::unix_ms(clock.now()),
        )
        .await?;
        let runner_auth =
            crate::auth::runners::RunnerAuth::new(store.clone(), clock.clone(), &config.auth);
        let scheduler = Scheduler::new(SchedulerParts {
            store,
            blobs,
            signer,
            clock,
            ids,
            issuer: config.issuer().to_owned(),
            mode: config.mode,
            max_upload: config.max_upload_bytes,
            scheduling: config.scheduling,
            minter: issuer.as_ref().map(crate::oidc::OidcIssuer::minter),
            caches,
            admission,
        });
        Ok(Self {
            scheduler: Arc::new(scheduler),
            auth: config.auth.clone(),
            runner_auth,
            oidc: issuer.as_ref().map(crate::oidc::OidcIssuer::http),
            tls,
            forges,
            signers,
            web: config.web.clone(),
            public_url: config.public_url().to_owned(),
        })
    }

    /// Also serves the OIDC issuer's discovery document and JWKS (`/.well-known/...`).
    pub fn with_oidc(mut self, oidc: crate::oidc::OidcHttp) -> Self {
        self.oidc = Some(oidc);
        self
    }

    /// The job logic (for in-process callers and tests).
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// Serves gRPC on `listener` until `shutdown` resolves, then stops accepting, ends long
    /// polls and watches, lets in-flight calls finish, and closes the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ControllerError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<JobServiceServer<JobApi>>().await;
        health.set_serving::<RunnerServiceServer<RunnerApi>>().await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(airlock_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(airlock_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let jobs = JobServiceServer::with_interceptor(
            JobApi::new(Arc::clone(&self.scheduler), Arc::clone(&self.signers)),
            crate::auth::clients::ClientAuth::new(&self.auth),
        );
        // Runner calls authenticate inside RunnerApi (registration secret, runner token, job
        // token: they need the database, which an interceptor cannot await).
        // With `runner_client_ca`, a runner call must also come with a client certificate.
        let runners = RunnerServiceServer::with_interceptor(
            RunnerApi::new(Arc::clone(&self.scheduler), self.runner_auth.clone()),
            crate::tls::RunnerCertCheck::new(self.tls.as_ref()),
        );
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "controller listening");
        }
        let hub = Arc::clone(self.scheduler.hub());
        let signal = async move {
            shutdown.await;
            tracing::info!("controller shutting down");
            hub.shut_down();
        };
        let mut routes = tonic::service::Routes::builder();
        routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(jobs)
            .add_service(runners);
        let mut routes = routes.routes();
        let mut http = crate::api::http::routes(Arc::clone(&self.scheduler));
        if let Some(oidc) = &self.oidc {
            http = http.merge(oidc.clone().router());
        }
        if !self.forges.is_empty() {
            http = http.merge(crate::forge::webhook::routes(
                Arc::clone(&self.scheduler),
                Arc::clone(&self.forges),
            ));
        }
        http = http.merge(crate::web::routes(crate::web::WebParts {
            scheduler: Arc::clone(&self.scheduler),
            auth: crate::auth::clients::ClientAuth::new(&self.auth),
            config: self.web.clone(),
            public_url: self.public_url.clone(),
            tls: self.tls.is_some(),
        }));
        let grpc = std::mem::take(routes.axum_router_mut());
        *routes.axum_router_mut() = grpc.merge(http);
        let sweeper = tokio::spawn(crate::sweeper::run(Arc::clone(&self.scheduler)));
        // Statuses are owed even after a restart, so the reporter runs whenever forges exist.
        let reporter = (!self.forges.is_empty()).then(|| {
            tokio::spawn(crate::forge::reporter::run(
                Arc::clone(&self.scheduler),
                Arc::clone(&self.forges),
            ))
        });
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(routes);
        let served = match &self.tls {
            Some(tls) => {
                server
                    .serve_with_incoming_shutdown(tls.incoming(listener), signal)
                    .await
            }
            None => {
                server
                    .serve_with_incoming_shutdown(no_delay(listener), signal)
                    .await
            }
        };
        sweeper.abort();
        let _ = sweeper.await;
        if let Some(reporter) = reporter {
            reporter.abort();
            let _ = reporter.await;
        }
        self.scheduler.store().close().await;
        Ok(served?)
    }
}

/// Opens the controller described by `config` and serves it on `listener` (which the caller
/// bound, so it knows the address, e.g. of a `127.0.0.1:0` listener, from
/// [`TcpListener::local_addr`]) until `shutdown` resolves.
pub async fn serve(
    config: ControllerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    Controller::open(&config)
        .await?
        .serve(listener, shutdown)
        .await
}

/// The accepted connections of `listener`, with Nagle's algorithm off. gRPC writes small
/// frames and waits for answers: with Nagle on, the peer's delayed ACK stalls every other
/// round trip by ~40 ms (tonic sets TCP_NODELAY only on listeners it binds itself).
fn no_delay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.and_then(|stream| {
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    })
}

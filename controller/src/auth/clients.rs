//! Job-API clients: the bearer token's SHA-256 picks a configured client (`[[auth.clients]]`,
//! or `api_token_sha256` as the client `admin`), and the interceptor attaches that client's
//! name, role and allowed profiles to the request; `JobApi` authorizes each call with them.

use std::fmt;
use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::auth::digest::TokenDigest;
use crate::config::{AuthConfig, Role};

/// The name of the client that `api_token_sha256` (`admin.token`) authenticates.
pub const ADMIN_CLIENT: &str = "admin";

/// Which profiles a client may submit jobs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedProfiles {
    /// Every profile (an `admin` without a `profiles` list).
    Any,
    /// Only these.
    Only(Vec<String>),
}

impl AllowedProfiles {
    /// Whether `profile` is allowed.
    pub fn allows(&self, profile: &str) -> bool {
        match self {
            AllowedProfiles::Any => true,
            AllowedProfiles::Only(list) => list.iter().any(|p| p == profile),
        }
    }
}

impl fmt::Display for AllowedProfiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedProfiles::Any => f.write_str("any profile"),
            AllowedProfiles::Only(list) if list.is_empty() => f.write_str("no profile"),
            AllowedProfiles::Only(list) => {
                let quoted: Vec<String> = list.iter().map(|p| format!("`{p}`")).collect();
                f.write_str(&quoted.join(", "))
            }
        }
    }
}

/// The client a job-API request was authenticated as (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedClient {
    /// The configured name, for logs and errors.
    pub name: String,
    /// What the client may do.
    pub role: Role,
    /// The profiles it may submit to (its role's default set, or its narrower `profiles`).
    pub profiles: AllowedProfiles,
}

impl AuthenticatedClient {
    /// The client `name` with `role` and, if given, a narrower `profiles` list.
    pub fn new(name: &str, role: Role, profiles: Option<&[String]>) -> Self {
        let profiles = match (profiles, role.default_profiles()) {
            (Some(list), _) => AllowedProfiles::Only(list.to_vec()),
            (None, None) => AllowedProfiles::Any,
            (None, Some(defaults)) => {
                AllowedProfiles::Only(defaults.iter().map(|p| (*p).to_owned()).collect())
            }
        };
        Self {
            name: name.to_owned(),
            role,
            profiles,
        }
    }

    /// Fails with `PERMISSION_DENIED` unless the role may submit (and upload sources for) jobs.
    pub fn require_submit_role(&self, call: &str) -> Result<(), Status> {
        if self.role == Role::Read {
            return Err(Status::permission_denied(format!(
                "{call}: client `{}` has role `{}`, which may only read; it needs role \
                 submit-untrusted, submit-trusted, submit-release or admin",
                self.name,
                self.role.as_str()
            )));
        }
        Ok(())
    }

    /// Fails with `PERMISSION_DENIED` unless the client may submit a `profile` job.
    pub fn require_submit(&self, profile: &str) -> Result<(), Status> {
        self.require_submit_role("SubmitJob")?;
        if !self.profiles.allows(profile) {
            return Err(self.profile_denied("submit", profile));
        }
        Ok(())
    }

    /// Fails with `PERMISSION_DENIED` unless the client may cancel a `profile` job: `admin`
    /// always may, others only jobs of a profile they may submit to.
    pub fn require_cancel(&self, profile: &str) -> Result<(), Status> {
        if self.role == Role::Admin {
            return Ok(());
        }
        self.require_submit_role("CancelJob")?;
        if !self.profiles.allows(profile) {
            return Err(self.profile_denied("cancel", profile));
        }
        Ok(())
    }

    fn profile_denied(&self, action: &str, profile: &str) -> Status {
        Status::permission_denied(format!(
            "client `{}` (role `{}`) may not {action} a `{profile}` job; it may {action} jobs \
             of: {}",
            self.name,
            self.role.as_str(),
            self.profiles
        ))
    }
}

/// The client the interceptor attached to `request`; `UNAUTHENTICATED` if none did (the
/// service was mounted without [`ClientAuth`]: fail closed).
pub fn client_of<T>(request: &Request<T>) -> Result<Arc<AuthenticatedClient>, Status> {
    request
        .extensions()
        .get::<Arc<AuthenticatedClient>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the request carries no authenticated client"))
}

/// The tonic interceptor of the job service: maps the bearer token to its client.
#[derive(Clone)]
pub struct ClientAuth {
    clients: Arc<[(TokenDigest, Arc<AuthenticatedClient>)]>,
}

impl ClientAuth {
    /// The clients of `[auth]`: `api_token_sha256` as `admin`, then `[[auth.clients]]`.
    pub fn new(auth: &AuthConfig) -> Self {
        let admin = auth.api_token_sha256.map(|digest| {
            (
                digest,
                Arc::new(AuthenticatedClient::new(ADMIN_CLIENT, Role::Admin, None)),
            )
        });
        let clients = admin
            .into_iter()
            .chain(auth.clients.iter().map(|c| {
                (
                    c.token_sha256,
                    Arc::new(AuthenticatedClient::new(
                        &c.name,
                        c.role,
                        c.profiles.as_deref(),
                    )),
                )
            }))
            .collect();
        Self { clients }
    }

    /// The client whose token hashes like `token`. Every digest is compared, in constant
    /// time, so timing reveals neither which client matched nor how close a guess came.
    pub fn authenticate(&self, token: &str) -> Option<Arc<AuthenticatedClient>> {
        let digest = TokenDigest::of(token);
        let mut found = None;
        for (expected, client) in self.clients.iter() {
            if expected.ct_eq(&digest) && found.is_none() {
                found = Some(Arc::clone(client));
            }
        }
        found
    }

    /// The configured client named `name` (a web session names its client: it lasts only as
    /// long as the client stays configured, and carries the client's current role).
    pub fn client(&self, name: &str) -> Option<Arc<AuthenticatedClient>> {
        self.clients
            .iter()
            .find(|(_, client)| client.name == name)
            .map(|(_, client)| Arc::clone(client))
    }

    /// Authenticates `request` by its `authorization: Bearer <token>` metadata.
    pub fn check<T>(&self, request: &Request<T>) -> Result<Arc<AuthenticatedClient>, Status> {
        const HOW: &str = "send `authorization: Bearer <API token>` with admin.token or a \
                           client token configured under [[auth.clients]] in controller.toml";
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(format!(
                "missing bearer token; {HOW}"
            )));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            return Err(Status::unauthenticated(format!(
                "the `authorization` metadata is not `Bearer <token>`; {HOW}"
            )));
        };
        match self.authenticate(token) {
            Some(client) => Ok(client),
            None => {
                // Never log the token, nor its digest (a digest of a mistyped secret is close
                // to the secret in value).
                tracing::warn!("rejected a job API call with an unknown bearer token");
                Err(Status::unauthenticated(format!(
                    "the bearer token belongs to no configured client; {HOW}"
                )))
            }
        }
    }
}

impl Interceptor for ClientAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let client = self.check(&request)?;
        request.extensions_mut().insert(client);
        Ok(request)
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.clients.iter().map(|(_, c)| c.name.as_str()).collect();
        f.debug_struct("ClientAuth")
            .field("clients", &names)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientEntry;

    fn request_with(value: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(v) = value {
            r.metadata_mut().insert("authorization", v.parse().unwrap());
        }
        r
    }

    fn auth() -> ClientAuth {
        let mut config = AuthConfig::with_tokens("admin-secret", "runner-secret");
        config.clients = vec![
            ClientEntry {
                name: "reader".into(),
                token_sha256: TokenDigest::of("reader-secret"),
                role: Role::Read,
                profiles: None,
            },
            ClientEntry {
                name: "pr-bot".into(),
                token_sha256: TokenDigest::of("pr-secret"),
                role: Role::SubmitTrusted,
                profiles: Some(vec!["untrusted-pr".into()]),
            },
        ];
        ClientAuth::new(&config)
    }

    #[test]
    fn tokens_map_to_their_clients_and_unknown_ones_to_none() {
        let mut auth = auth();
        let admin = auth
            .call(request_with(Some("Bearer admin-secret")))
            .unwrap();
        let admin = client_of(&admin).unwrap();
        assert_eq!(
            (admin.name.as_str(), admin.role),
            (ADMIN_CLIENT, Role::Admin)
        );
        assert_eq!(admin.profiles, AllowedProfiles::Any);
        let reader = auth.authenticate("reader-secret").unwrap();
        assert_eq!(reader.role, Role::Read);
        assert_eq!(reader.profiles, AllowedProfiles::Only(Vec::new()));
        let bot = auth.authenticate("pr-secret").unwrap();
        assert_eq!(
            bot.profiles,
            AllowedProfiles::Only(vec!["untrusted-pr".into()])
        );
        assert!(auth.authenticate("runner-secret").is_none());
        assert_eq!(auth.client("pr-bot"), Some(bot));
        assert_eq!(auth.client("nobody"), None);
        for bad in [
            None,
            Some("Bearer nope-secret"),
            Some("admin-secret"),
            Some("Basic admin-secret"),
        ] {
            let err = auth.call(request_with(bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated);
            assert!(!err.message().contains("secret"), "{}", err.message());
        }
        assert!(!format!("{auth:?}").contains(&TokenDigest::of("pr-secret").hex()));
    }

    #[test]
    fn roles_bound_submit_and_cancel() {
        let auth = auth();
        let reader = auth.authenticate("reader-secret").unwrap();
        assert!(reader.require_submit_role("UploadSource").is_err());
        assert!(reader.require_cancel("untrusted-pr").is_err());
        let bot = auth.authenticate("pr-secret").unwrap();
        bot.require_submit("untrusted-pr").unwrap();
        let err = bot.require_submit("trusted").unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(
            err.message().contains("`pr-bot`")
                && err.message().contains("submit-trusted")
                && err.message().contains("`trusted`")
                && err.message().contains("`untrusted-pr`"),
            "{}",
            err.message()
        );
        assert!(bot.require_cancel("release").is_err());
        let admin = auth.authenticate("admin-secret").unwrap();
        admin.require_submit("anything").unwrap();
        admin.require_cancel("release").unwrap();
        assert!(client_of(&Request::new(())).is_err(), "no client: refused");
    }
}

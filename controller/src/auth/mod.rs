//! Who may call the controller: token digests ([`digest`]; only SHA-256s of secrets are
//! stored), the secrets it hands out ([`secret`]), job-API clients and their roles
//! ([`clients`]), signed job specs ([`job_signatures`]), runners' registration secrets, runner tokens and job tokens ([`runners`]),
//! and managing registrations from the command line ([`registrations`]).

pub mod clients;
pub mod digest;
pub mod job_signatures;
pub mod registrations;
pub mod runners;
pub mod secret;

//! Provenance in two stages: [`statement`] formats the SLSA v1 in-toto Statement of a
//! succeeded job (pure, golden-tested) and [`signer`] signs it with the profile's key into a
//! DSSE envelope and a Sigstore bundle; [`dependencies`] checks the lockfile packages a
//! runner reports before they are recorded; [`caches`] records the caches a job restored
//! and saved; [`images`] checks an image output's layout and names its manifest as a subject.

pub mod caches;
pub mod dependencies;
pub mod images;
pub mod sbom;
pub mod signer;
pub mod statement;
pub mod trace;

//! airlock control plane: job API, queue, store, blob store, provenance signer.

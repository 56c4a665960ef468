//! Walking and removing trees that a build (or a pull request) controls: never recursive,
//! never following a symlink, and bounded, so no tree can crash or hang the runner.

mod at;
pub mod chown;
pub mod read;
pub mod remove;

pub use chown::lchown_tree;
pub use read::read_beneath;
pub use remove::remove_tree;

/// Deepest directory nesting airlock reads in a build-controlled tree (outputs, source
/// packing). Deeper trees fail the job with this limit named; removal has no limit.
pub const MAX_DEPTH: usize = 256;

/// Most entries (files, directories, links) airlock reads in one build-controlled tree.
pub const MAX_ENTRIES: usize = 1_000_000;

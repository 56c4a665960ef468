//! Reproducible builds: two `airlock run`s of examples/hello, from two copies of the source
//! in different host directories and with separate AIRLOCK_HOMEs (so separate databases,
//! keys, workspaces and image caches), produce byte-identical outputs. The sandbox fixes what
//! would otherwise leak into them: SOURCE_DATE_EPOCH, TZ, the locale and the paths.

use crate::provenance_fixtures::*;

#[test]
#[ignore = "needs root and the base image: run scripts/test.sh"]
fn two_runs_of_hello_produce_the_same_output_digest() {
    let first = build_hello(None);
    let second = build_hello(None);
    assert_ne!(
        first.job, second.job,
        "the two sources live in different directories"
    );

    let digest = |b: &HelloBuild| {
        airlock_attest::hash_reader(std::fs::File::open(&b.artifact).unwrap())
            .unwrap()
            .0
    };
    assert_eq!(
        digest(&first),
        digest(&second),
        "hello differs between runs"
    );

    // The signed statements agree on the subject too, though they differ elsewhere (other
    // keys, invocation ids, times, source paths).
    let subjects = |b: &HelloBuild| statement_json(&read_envelope(&b.envelope))["subject"].clone();
    assert_eq!(subjects(&first), subjects(&second));
    assert_ne!(
        read_envelope(&first.envelope).signatures[0].keyid,
        read_envelope(&second.envelope).signatures[0].keyid,
        "separate homes have separate keys"
    );
    let subject = subjects(&first);
    assert_eq!(subject[0]["digest"]["sha256"], digest(&first).hex());
}

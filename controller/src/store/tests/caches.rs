//! Build caches: save and find (exact key, newest of the scope), isolation of scopes and
//! trust domains, concurrent saves of one scope and key, LRU eviction under a size cap.

use super::*;
use crate::caches::{Lookup, Scope, TrustDomain};

fn scope(domain: TrustDomain, name: &str) -> Scope {
    Scope {
        project: "git+https://git.example/app.git".into(),
        domain,
        name: name.into(),
    }
}

fn record(domain: TrustDomain, key: &[u8], archive: &[u8], size: u64, at: i64) -> CacheRecord {
    CacheRecord {
        scope: scope(domain, "target"),
        key: Sha256Digest::of(key),
        archive: Sha256Digest::of(archive),
        size,
        created_ms: at,
        used_ms: at,
    }
}

fn exact(domain: TrustDomain, key: &[u8]) -> Lookup {
    Lookup {
        scope: scope(domain, "target"),
        key: Some(Sha256Digest::of(key)),
    }
}

fn newest(domain: TrustDomain) -> Lookup {
    Lookup {
        scope: scope(domain, "target"),
        key: None,
    }
}

async fn caches_are_found_by_key_or_newest_and_never_across_domains(store: Store) {
    assert_eq!(
        store
            .save_cache(&record(TrustDomain::Trusted, b"k1", b"a1", 10, 100))
            .await
            .unwrap(),
        None
    );
    store
        .save_cache(&record(TrustDomain::Trusted, b"k2", b"a2", 10, 200))
        .await
        .unwrap();
    store
        .save_cache(&record(TrustDomain::Untrusted, b"k3", b"evil", 10, 300))
        .await
        .unwrap();

    let hit = store
        .find_cache(&exact(TrustDomain::Trusted, b"k1"), 400)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.archive, Sha256Digest::of(b"a1"));
    assert_eq!(hit.used_ms, 400);
    let newest_trusted = store
        .find_cache(&newest(TrustDomain::Trusted), 401)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        newest_trusted.archive,
        Sha256Digest::of(b"a2"),
        "the newest save, not the untrusted one"
    );
    // The untrusted domain's save is invisible to trusted lookups, exact or newest.
    assert!(
        store
            .find_cache(&exact(TrustDomain::Trusted, b"k3"), 402)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_cache(&newest(TrustDomain::Release), 402)
            .await
            .unwrap()
            .is_none()
    );
    let other_name = Lookup {
        scope: scope(TrustDomain::Trusted, "npm"),
        key: None,
    };
    assert!(store.find_cache(&other_name, 402).await.unwrap().is_none());
}

async fn concurrent_saves_of_one_scope_and_key_leave_one_cache(store: Store) {
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .save_cache(&record(
                    TrustDomain::Trusted,
                    b"k",
                    &[i],
                    10,
                    1000 + i64::from(i),
                ))
                .await
        }));
    }
    let mut replaced = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().is_some() {
            replaced += 1;
        }
    }
    assert_eq!(replaced, 7, "every save but the first replaced one");
    let hit = store
        .find_cache(&exact(TrustDomain::Trusted, b"k"), 2000)
        .await
        .unwrap()
        .unwrap();
    assert!((0..8u8).any(|i| hit.archive == Sha256Digest::of(&[i])));
    // Exactly one row: eviction to zero removes exactly one archive.
    let evicted = store
        .evict_caches(&scope(TrustDomain::Trusted, "target"), 0)
        .await
        .unwrap();
    assert_eq!(evicted, vec![hit.archive]);
}

async fn eviction_keeps_a_scope_under_its_cap_least_recently_used_first(store: Store) {
    for (i, at) in [(1u8, 100), (2, 200), (3, 300)] {
        store
            .save_cache(&record(TrustDomain::Trusted, &[i], &[i, i], 40, at))
            .await
            .unwrap();
    }
    store
        .save_cache(&record(TrustDomain::Untrusted, b"u", b"u", 500, 50))
        .await
        .unwrap();
    // Restoring the oldest makes it the most recently used.
    store
        .find_cache(&exact(TrustDomain::Trusted, &[1]), 400)
        .await
        .unwrap()
        .unwrap();
    let evicted = store
        .evict_caches(&scope(TrustDomain::Trusted, "target"), 80)
        .await
        .unwrap();
    assert_eq!(evicted, vec![Sha256Digest::of(&[2, 2])]);
    assert!(
        store
            .find_cache(&exact(TrustDomain::Trusted, &[2]), 500)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_cache(&exact(TrustDomain::Trusted, &[1]), 500)
            .await
            .unwrap()
            .is_some()
    );
    // Another domain's caches are not counted or touched.
    assert!(
        store
            .find_cache(&exact(TrustDomain::Untrusted, b"u"), 500)
            .await
            .unwrap()
            .is_some()
    );
}

both_backends!(
    caches_are_found_by_key_or_newest_and_never_across_domains,
    concurrent_saves_of_one_scope_and_key_leave_one_cache,
    eviction_keeps_a_scope_under_its_cap_least_recently_used_first,
);

//! End to end with the real binary: two issuers on one key directory (one
//! config file, as replicas behind one URL share it) go through a manual
//! rotation (`keyshift keys rotate`, no signal to either) and an automatic
//! one (`rotate_every`) under token traffic. Each replica's tokens are
//! verified at a verifier fetching the JWKS from the *other* replica, so a
//! replica that signed with a key its sibling had not published yet would
//! show as a rejection. Timings are compressed (seconds, not minutes); the
//! convergence time is measured and printed, not asserted.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, dir_with_secret, fetch_token, generate_keys, http, keyshift, start};
use keyshift_core::Phase;
use keyshift_testkit::jwt;

/// The longest the whole walk may take before the test gives up.
const WALK_LIMIT: Duration = Duration::from_secs(90);

fn jwks_kids(issuer: SocketAddr) -> BTreeSet<String> {
    let resp = http(issuer, "GET", "/.well-known/jwks.json", &[], b"");
    assert_eq!(resp.status, 200);
    resp.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

fn kid_of(token: &str) -> String {
    jwt::header(token)
        .and_then(|h| h.kid)
        .expect("an RS256 token has a kid")
}

/// A verifier reading the JWKS of `issuer`, with caches short enough for
/// compressed timings.
fn verifier_of(issuer: SocketAddr, dir: &std::path::Path) -> keyshift_testkit::Service {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("hs256.secret"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .expect("secret");
    let cfg = config(Phase::Transition, Some(issuer))
        .verifier("jwks_min_ttl", "1s")
        .verifier("jwks_max_ttl", "2s")
        .verifier("unknown_kid_cooldown", "1s")
        .write_to(dir);
    start("verifier", &cfg)
}

/// Waits until both replicas list a kid not in `known`; returns it, how long
/// after `since` the first listed it, and how long after that the second did.
fn new_kid_in_both(
    a: SocketAddr,
    b: SocketAddr,
    known: &BTreeSet<String>,
    since: Instant,
    deadline: Instant,
) -> (String, Duration, Duration) {
    let mut first: Option<(String, Instant)> = None;
    loop {
        assert!(Instant::now() < deadline, "no new key in both JWKS in time");
        let (ka, kb) = (jwks_kids(a), jwks_kids(b));
        let fresh = |set: &BTreeSet<String>| set.difference(known).next().cloned();
        if first.is_none() {
            if let Some(kid) = fresh(&ka).or_else(|| fresh(&kb)) {
                first = Some((kid, Instant::now()));
            }
        }
        if let Some((kid, at)) = &first {
            if ka.contains(kid) && kb.contains(kid) {
                return (kid.clone(), *at - since, at.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn two_issuers_on_one_key_directory_converge_through_a_manual_and_an_automatic_rotation() {
    let tmp = dir_with_secret();
    let cfg = config(Phase::Transition, None)
        .issuer("token_ttl", "4s")
        .issuer("jwks_max_age", "1s")
        .issuer("key_prepublish", "3s")
        .issuer("rotate_every", "10s")
        .write_to(tmp.path());
    generate_keys(&cfg);
    let a = start("issuer", &cfg);
    let b = start("issuer", &cfg);
    let (va, vb) = (
        verifier_of(a.addr, &tmp.path().join("va")),
        verifier_of(b.addr, &tmp.path().join("vb")),
    );
    let first_kid = kid_of(&fetch_token(a.addr, "svc-a", "s3cret"));
    assert_eq!(kid_of(&fetch_token(b.addr, "svc-a", "s3cret")), first_kid);

    // Token traffic for the whole walk: each replica's token at the
    // verifier of the other one.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new((
        0u32,
        Vec::<String>::new(),
        BTreeSet::<String>::new(),
    )));
    let traffic = {
        let (stop, seen) = (stop.clone(), seen.clone());
        let (a, b, va, vb) = (a.addr, b.addr, va.addr, vb.addr);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (issuer, verifier, name) in [(a, vb, "a→vb"), (b, va, "b→va")] {
                    let token = fetch_token(issuer, "svc-a", "s3cret");
                    let resp = http(
                        verifier,
                        "GET",
                        "/verify",
                        &[("Authorization", &format!("Bearer {token}"))],
                        b"",
                    );
                    let mut seen = seen.lock().expect("lock");
                    seen.0 += 1;
                    seen.2.insert(kid_of(&token));
                    if resp.status != 200 {
                        seen.1.push(format!(
                            "{name} kid {}: {} {}",
                            kid_of(&token),
                            resp.status,
                            resp.text()
                        ));
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let deadline = Instant::now() + WALK_LIMIT;
    let signs_with = |kid: &str| {
        while Instant::now() < deadline {
            let (ta, tb) = (
                kid_of(&fetch_token(a.addr, "svc-a", "s3cret")),
                kid_of(&fetch_token(b.addr, "svc-a", "s3cret")),
            );
            if ta == kid && tb == kid {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };

    // Manual: the offline tool writes the next key; neither replica is told.
    let known = jwks_kids(a.addr);
    let started = Instant::now();
    let out = keyshift()
        .args(["keys", "rotate", "--config"])
        .arg(&cfg)
        .output()
        .expect("keyshift keys rotate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (manual_kid, manual_first, manual_spread) =
        new_kid_in_both(a.addr, b.addr, &known, started, deadline);
    assert!(
        signs_with(&manual_kid),
        "both replicas sign with the rotated key"
    );

    // Automatic: rotate_every after the promotion, one replica generates
    // the next key under the directory lock; the other follows.
    let known: BTreeSet<String> = jwks_kids(a.addr)
        .union(&jwks_kids(b.addr))
        .cloned()
        .collect();
    let started = Instant::now();
    let (auto_kid, auto_first, auto_spread) =
        new_kid_in_both(a.addr, b.addr, &known, started, deadline);
    assert!(
        signs_with(&auto_kid),
        "both replicas sign with the automatic key"
    );

    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("traffic thread");
    let (checked, rejected, kids) = seen.lock().expect("lock").clone();
    eprintln!(
        "replica convergence: manual rotation listed by the first replica after {} ms, by both {} ms later; \
         automatic listed by both {} ms after the first (first after {} ms); {checked} cross-verified tokens, kids {kids:?}",
        manual_first.as_millis(),
        manual_spread.as_millis(),
        auto_spread.as_millis(),
        auto_first.as_millis(),
    );
    assert!(rejected.is_empty(), "rejected: {rejected:?}");
    assert!(
        kids.contains(&first_kid) && kids.contains(&manual_kid) && kids.contains(&auto_kid),
        "the traffic covered all three keys: {kids:?}"
    );
    assert!(checked > 20, "traffic ran: {checked}");
}

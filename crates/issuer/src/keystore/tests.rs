use std::time::Duration;

use super::*;
use crate::rotation::{RotationPolicy, Step};

const T0: u64 = 1_800_000_000;

fn policy() -> RotationPolicy {
    RotationPolicy {
        rotate_every: Some(Duration::from_secs(30 * 86_400)),
        prepublish: Duration::from_secs(900),
        token_ttl: Duration::from_secs(600),
    }
}

/// What the running issuer does once it serves the set's JWKS.
fn served(store: &KeyStore, set: &KeySet, now: u64) {
    let kids: Vec<String> = set.published().into_iter().map(|j| j.kid).collect();
    store.record_served(&kids, now).expect("record");
}

fn fresh() -> (tempfile::TempDir, KeyStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = KeyStore::new(dir.path().join("keys"));
    (dir, store)
}

#[test]
fn first_start_creates_one_active_key_with_private_file_0600() {
    let (_tmp, store) = fresh();
    let (set, steps) = store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    assert_eq!(steps, [Step::CreateInitialActive]);
    assert!(set.created_dir);
    let active = set.active().expect("active key");
    assert_eq!(set.count(KeyState::Active), 1);
    let file = store.dir().join(format!("{}.pem", active.kid));
    let mode = fs::metadata(&file).expect("key file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs::metadata(store.dir()).expect("dir").permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    assert!(fs::read_to_string(&file)
        .expect("pem")
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(set.foreign_files.is_empty(), "{:?}", set.foreign_files);
}

#[test]
fn restart_keeps_the_same_keys() {
    let (_tmp, store) = fresh();
    let (first, _) = store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    let (again, steps) = store
        .maintain(T0 + 60, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("restart");
    assert!(steps.is_empty());
    assert_eq!(first.published(), again.published());
    let reloaded = KeyStore::new(store.dir()).load().expect("load");
    assert_eq!(reloaded.published(), first.published());
}

#[test]
fn scheduled_rotation_prepublishes_then_promotes_then_retires() {
    let (_tmp, store) = fresh();
    let p = policy();
    let (set, _) = store
        .maintain(T0, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    let old = set.active().expect("active").kid.clone();
    let rotate_at = T0 + 30 * 86_400;

    // 15 minutes before the rotation date a next key appears in the JWKS...
    let (set, steps) = store
        .maintain(rotate_at - 900, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("prepublish");
    assert_eq!(steps.len(), 1);
    assert_eq!(set.published().len(), 2);
    served(&store, &set, rotate_at - 900);
    let next = set
        .manifest
        .keys_in(KeyState::Next)
        .next()
        .expect("next")
        .kid
        .clone();
    // ...but the old key still signs.
    assert_eq!(set.active().expect("active").kid, old);

    let (set, _) = store
        .maintain(rotate_at - 1, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("not yet");
    assert_eq!(set.active().expect("active").kid, old);

    let (set, steps) = store
        .maintain(rotate_at, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("promote");
    assert_eq!(steps.len(), 1);
    assert_eq!(set.active().expect("active").kid, next);
    assert_eq!(set.count(KeyState::Retiring), 1);
    let published: Vec<_> = set.published().into_iter().map(|j| j.kid).collect();
    assert_eq!(published, [next.clone(), old.clone()]);

    // The old key stays published for token_ttl + prepublish after it stopped signing.
    let retire_at = rotate_at + 600 + 900;
    let (set, _) = store
        .maintain(retire_at - 1, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("still retiring");
    assert_eq!(set.published().len(), 2);
    let (set, _) = store
        .maintain(retire_at, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("retire");
    let published: Vec<_> = set.published().into_iter().map(|j| j.kid).collect();
    assert_eq!(published, [next]);
    assert!(
        !store.dir().join(format!("{old}.pem")).exists(),
        "retired private key deleted"
    );
}

#[test]
fn manual_rotate_waits_for_prepublish_unless_immediate() {
    let (_tmp, store) = fresh();
    let p = policy();
    let (set, _) = store
        .maintain(T0, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    served(&store, &set, T0);
    let old = set.active().expect("active").kid.clone();
    let next = store.rotate(T0 + 10, &p, 2048, false).expect("rotate");
    assert_eq!(next.state, KeyState::Next);
    assert_eq!(next.activate_at, Some(T0 + 10 + 900));
    // Its date has come, but the issuer has not served it yet: not promoted.
    let (set, _) = store
        .maintain(T0 + 1000, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("tick");
    assert_eq!(set.active().expect("active").kid, old);
    served(&store, &set, T0 + 1000);
    let (set, _) = store
        .maintain(T0 + 1899, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("tick");
    assert_eq!(set.active().expect("active").kid, old);
    let (set, _) = store
        .maintain(T0 + 1900, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("tick");
    assert_eq!(set.active().expect("active").kid, next.kid);

    let urgent = store.rotate(T0 + 2000, &p, 2048, true).expect("rotate now");
    assert_eq!(urgent.state, KeyState::Active);
    let set = store.load().expect("load");
    assert_eq!(set.active().expect("active").kid, urgent.kid);
    assert_eq!(set.count(KeyState::Retiring), 2);
}

#[test]
fn retire_refuses_active_and_early_retirement_without_force() {
    let (_tmp, store) = fresh();
    let p = policy();
    let (set, _) = store
        .maintain(T0, &p, 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    let old = set.active().expect("active").kid.clone();
    assert!(matches!(
        store.retire(&old, T0, false),
        Err(KeyStoreError::Refused(_))
    ));
    store.rotate(T0, &p, 2048, true).expect("rotate now");
    assert!(matches!(
        store.retire(&old, T0 + 1, false),
        Err(KeyStoreError::Refused(_))
    ));
    let retired = store.retire(&old, T0 + 1, true).expect("forced");
    assert_eq!(retired.state, KeyState::Retired);
    assert!(matches!(
        store.retire("nope-nope-nope-nope-nope", T0, true),
        Err(KeyStoreError::NoSuchKey(_))
    ));
}

#[test]
fn corrupt_manifest_is_reported_and_left_alone() {
    let (_tmp, store) = fresh();
    store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    let path = store.dir().join(MANIFEST);
    fs::write(&path, "{\"version\":1,\"keys\":[{\"kid\":").expect("corrupt");
    let err = store
        .maintain(T0 + 1, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect_err("damaged");
    assert!(
        matches!(err, KeyStoreError::DamagedManifest { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("manifest.json"), "{err}");
    assert_eq!(
        fs::read_to_string(&path).expect("kept"),
        "{\"version\":1,\"keys\":[{\"kid\":"
    );

    fs::write(&path, r#"{"version":1,"keys":[{"kid":"../../etc/passwd-xxxxxxxxxxxx","state":"active","bits":2048,"created_at":1}]}"#).expect("traversal");
    let err = store.load().expect_err("unsafe kid");
    assert!(err.to_string().contains("not a thumbprint"), "{err}");
}

#[test]
fn corrupt_or_swapped_key_file_is_reported() {
    let (_tmp, store) = fresh();
    let (set, _) = store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    let kid = set.active().expect("active").kid.clone();
    let path = store.dir().join(format!("{kid}.pem"));
    let good = fs::read(&path).expect("read");

    fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("corrupt");
    let err = store.load().expect_err("damaged key");
    assert!(matches!(err, KeyStoreError::DamagedKey { .. }), "{err}");
    assert!(err.to_string().contains(&kid), "{err}");

    // Another valid key under this kid's name: thumbprint mismatch.
    let other = KeyStore::new(store.dir().join("other"));
    let (oset, _) = other
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("other");
    let okid = oset.active().expect("active").kid.clone();
    fs::write(
        &path,
        fs::read(other.dir().join(format!("{okid}.pem"))).expect("read"),
    )
    .expect("swap");
    let err = store.load().expect_err("mismatch");
    assert!(err.to_string().contains("thumbprint"), "{err}");

    fs::write(&path, &good).expect("restore");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(
        store.load(),
        Err(KeyStoreError::LoosePermissions { .. })
    ));
}

#[test]
fn key_files_without_manifest_are_not_reinitialised() {
    let (_tmp, store) = fresh();
    fs::create_dir_all(store.dir()).expect("mkdir");
    fs::write(store.dir().join("old.pem"), "x").expect("stray key");
    let err = store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect_err("refused");
    assert!(
        matches!(err, KeyStoreError::MissingManifest { .. }),
        "{err}"
    );
    // The message says how to get out of it.
    let msg = err.to_string();
    assert!(msg.contains("restore manifest.json from a backup"), "{msg}");
    assert!(
        msg.contains(&format!("mv {}", store.dir().display())),
        "{msg}"
    );
    assert_eq!(
        fs::read_dir(store.dir()).expect("ls").count(),
        2,
        "only the lock file was added"
    );

    // Two real keys and no manifest: their states cannot be known either.
    let (_tmp, store) = fresh();
    store.create_dir().expect("mkdir");
    let _lock = store.lock().expect("lock");
    store.generate(2048, T0).expect("key");
    store.generate(2048, T0).expect("key");
    drop(_lock);
    let err = store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect_err("refused");
    assert!(
        matches!(err, KeyStoreError::MissingManifest { .. }),
        "{err}"
    );
}

#[test]
fn first_start_interrupted_before_the_manifest_is_recovered_by_adopting_its_key() {
    let (_tmp, store) = fresh();
    // What a first start leaves when it dies between its two writes: the
    // lock, the key file, maybe a half-written manifest temp file.
    store.create_dir().expect("mkdir");
    let lock = store.lock().expect("lock");
    let entry = store.generate(2048, T0).expect("key");
    fs::write(
        store.dir().join(".manifest.json.tmp-0123456789abcdef"),
        "{\"vers",
    )
    .expect("temp");
    drop(lock);
    assert!(matches!(
        store.load(),
        Err(KeyStoreError::MissingManifest { .. })
    ));

    let (set, steps) = store
        .maintain(T0 + 5, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("recovered");
    assert!(steps.is_empty(), "no new key: {steps:?}");
    assert_eq!(set.active().expect("active").kid, entry.kid);
    assert_eq!(
        set.adopted,
        Some(store.dir().join(format!("{}.pem", entry.kid)))
    );
    assert_eq!(set.manifest.keys.first().map(|k| k.bits), Some(2048));
    // Written down: the next start is an ordinary one.
    let again = store.load().expect("manifest written");
    assert_eq!(again.active().expect("active").kid, entry.kid);
    let (set, _) = store
        .maintain(T0 + 6, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("restart");
    assert_eq!(set.adopted, None);

    // A key file that is not what it claims is reported, not adopted.
    let (_tmp, store) = fresh();
    store.create_dir().expect("mkdir");
    let lock = store.lock().expect("lock");
    let entry = store.generate(2048, T0).expect("key");
    drop(lock);
    let path = store.dir().join(format!("{}.pem", entry.kid));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(
        store.maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey),
        Err(KeyStoreError::LoosePermissions { .. })
    ));
}

#[test]
fn foreign_files_are_listed_not_touched() {
    let (_tmp, store) = fresh();
    store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    fs::write(store.dir().join("notes.txt"), "hello").expect("write");
    let set = store.load().expect("load");
    assert_eq!(set.foreign_files, [store.dir().join("notes.txt")]);
    assert_eq!(
        fs::read_to_string(store.dir().join("notes.txt")).expect("kept"),
        "hello"
    );
}

#[test]
fn published_jwks_has_no_leading_zero_in_n() {
    let (_tmp, store) = fresh();
    let (set, _) = store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    for jwk in set.published() {
        let n = keyshift_core::b64::decode(&jwk.n).expect("b64");
        assert_ne!(n[0], 0);
        assert_eq!(n.len(), 256);
        assert_eq!(jwk.e, "AQAB");
    }
}

#[test]
fn active_key_records_the_longest_token_ttl_it_ran_with() {
    let (_tmp, store) = fresh();
    let long = RotationPolicy {
        token_ttl: Duration::from_secs(86_400),
        ..policy()
    };
    let (set, _) = store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("init");
    let entry = |set: &KeySet| {
        set.manifest
            .keys_in(KeyState::Active)
            .next()
            .and_then(|k| k.max_token_ttl)
    };
    assert_eq!(entry(&set), Some(600));
    let (set, _) = store
        .maintain(T0 + 1, &long, 2048, IfEmpty::CreateFirstKey)
        .expect("reload 24h");
    assert_eq!(entry(&set), Some(86_400));
    // Shortened again: the record keeps the longest.
    let (set, _) = store
        .maintain(T0 + 2, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("reload 10m");
    assert_eq!(entry(&set), Some(86_400));
    assert_eq!(entry(&store.load().expect("load")), Some(86_400));
    // An immediate rotation by hand honours it too.
    let old = set.active().expect("active").kid.clone();
    store
        .rotate(T0 + 3, &policy(), 2048, true)
        .expect("rotate now");
    let set = store.load().expect("load");
    let retiring = set
        .manifest
        .keys
        .iter()
        .find(|k| k.kid == old)
        .expect("old key");
    assert_eq!(retiring.retire_at, Some(T0 + 3 + 86_400 + 900));
}

#[test]
fn rotate_and_retire_refuse_a_missing_or_empty_folder_creating_nothing() {
    let (tmp, store) = fresh();
    for immediately in [false, true] {
        let err = store
            .rotate(T0, &policy(), 2048, immediately)
            .expect_err("no folder");
        assert!(matches!(err, KeyStoreError::NoDirectory { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("check issuer.key_dir"), "{msg}");
    }
    assert!(matches!(
        store.retire("kid", T0, true),
        Err(KeyStoreError::NoDirectory { .. })
    ));
    assert!(!store.dir().exists(), "a mistyped key_dir is not created");

    // An existing folder without keys: refused, and no lock file left in it.
    fs::create_dir(store.dir()).expect("mkdir");
    let err = store.rotate(T0, &policy(), 2048, false).expect_err("empty");
    assert!(matches!(err, KeyStoreError::Empty { .. }), "{err}");
    assert_eq!(fs::read_dir(store.dir()).expect("ls").count(), 0);

    // `keys generate` is the deliberate way to a first key; a bad key size is
    // refused before anything is created.
    let elsewhere = KeyStore::new(tmp.path().join("other"));
    assert!(matches!(
        elsewhere.generate_next(T0, 1024),
        Err(KeyStoreError::Refused(_))
    ));
    assert!(!elsewhere.dir().exists());
    assert!(matches!(
        KeyStore::new(tmp.path().join("no/such/parent")).generate_next(T0, 2048),
        Err(KeyStoreError::NoParent { .. })
    ));
    assert!(
        !tmp.path().join("no").exists(),
        "only the last folder is ever created"
    );
    let first = store.generate_next(T0, 2048).expect("generate");
    assert_eq!(first.state, KeyState::Active);
    assert_eq!(
        store
            .rotate(T0, &policy(), 2048, false)
            .expect("rotate")
            .state,
        KeyState::Next
    );
}

#[test]
fn a_phase_that_signs_rs256_never_gets_a_first_key_made_for_it() {
    let (tmp, store) = fresh();
    let err = store
        .maintain(T0, &policy(), 2048, IfEmpty::Refuse)
        .expect_err("missing");
    assert!(matches!(err, KeyStoreError::NoDirectory { .. }), "{err}");
    assert!(!store.dir().exists());
    fs::create_dir(store.dir()).expect("mkdir");
    let err = store
        .maintain(T0, &policy(), 2048, IfEmpty::Refuse)
        .expect_err("empty");
    assert!(matches!(err, KeyStoreError::Empty { .. }), "{err}");
    assert_eq!(fs::read_dir(store.dir()).expect("ls").count(), 0);

    // The phases that sign HS256 make the last folder, never its parents.
    let deep = KeyStore::new(tmp.path().join("a/b/keys"));
    assert!(matches!(
        deep.maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey),
        Err(KeyStoreError::NoParent { .. })
    ));
    assert!(!tmp.path().join("a").exists());
    let (set, steps) = store
        .maintain(T0, &policy(), 2048, IfEmpty::CreateFirstKey)
        .expect("first key");
    assert!(!set.created_dir, "the folder existed");
    assert_eq!(steps, [Step::CreateInitialActive]);
    let (set, steps) = store
        .maintain(T0 + 1, &policy(), 2048, IfEmpty::Refuse)
        .expect("a key directory with keys");
    assert!(steps.is_empty());
    assert!(set.active().is_some());
}

//! Replays every input of `fuzz/corpus/<target>/` (the seeds and what
//! fuzzing kept) and `fuzz/artifacts/<target>/` (what crashed once) through
//! the target functions on stable: none may panic, ever again.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        files.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    files.sort();
    files
}

#[test]
fn every_corpus_and_crash_input_runs_through_its_target_without_panicking() {
    for (target, run) in keyshift_fuzzing::TARGETS {
        let files = inputs(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} has no seeds");
        for path in &files {
            let data = std::fs::read(path).expect("input");
            run(&data);
        }
        eprintln!("{target}: {} inputs replayed", files.len());
    }
}

#[test]
fn the_seeds_reach_the_checks_they_were_made_for() {
    use keyshift_verifier::VerifyError;
    let seed = |name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fuzz/corpus/verify")
                .join(name),
        )
        .expect(name)
    };
    // Real tokens pass every check, so mutations start deep in the path.
    assert_eq!(
        keyshift_fuzzing::verify_outcome(&seed("hs256_valid")),
        Ok(())
    );
    assert_eq!(
        keyshift_fuzzing::verify_outcome(&seed("rs256_valid")),
        Ok(())
    );
    // `alg: none` comes with an empty signature: refused before its header.
    assert!(matches!(
        keyshift_fuzzing::verify_outcome(&seed("alg_none")),
        Err(VerifyError::Malformed(r)) if r.text() == "empty segment"
    ));
    assert_eq!(
        keyshift_fuzzing::verify_outcome(&seed("alg_confusion")),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        keyshift_fuzzing::verify_outcome(&seed("expired")),
        Err(VerifyError::Expired)
    );
}

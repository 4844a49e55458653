//! `Config::parse` on arbitrary text. Invariants: it never panics, every
//! error it reports says something, a config it accepts parses to the same
//! `Config` again, and a resolved password never shows in an error or in
//! the config's `Debug` output.

#![no_main]

use headcount_domain::config::{Config, ConfigErrors, SecretSource};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// What every environment variable holds; no file exists.
const SECRET: &str = "fuzz-secret-5eb63bbbe01eeed0";

struct FakeSecrets;

impl SecretSource for FakeSecrets {
    fn env(&self, _: &str) -> Option<String> {
        Some(SECRET.into())
    }
    fn file(&self, _: &Path) -> Option<String> {
        None
    }
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new("/etc/headcount"), &FakeSecrets)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A secret the text itself spells out may be echoed; a resolved one not.
    let check_leak = !text.contains(SECRET);
    match parse(text) {
        Err(errors) => {
            assert!(!errors.0.is_empty(), "Err without any error");
            for e in &errors.0 {
                assert!(
                    !e.message.trim().is_empty(),
                    "empty error message at `{}`",
                    e.path
                );
            }
            assert!(
                !check_leak || !errors.to_string().contains(SECRET),
                "an error shows the password: {errors}"
            );
        }
        Ok(config) => {
            assert!(
                !check_leak || !format!("{config:?}").contains(SECRET),
                "Debug shows the password"
            );
            let again = parse(text).expect("accepted once, refused the second time");
            assert_eq!(config, again, "the same text parsed to two configs");
        }
    }
});

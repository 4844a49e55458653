//! The DPO's documents' words in each language, from Project Fluent files
//! (`locales/LANG.ftl`, compiled in): a message per sentence, with the
//! language's own plural and select rules, so a translator edits text and
//! never code.

use fluent_bundle::{FluentArgs, FluentBundle, FluentResource, FluentValue};
use std::str::FromStr;

/// The languages the documents are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    De,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::De];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("locales/en.ftl"),
            Lang::De => include_str!("locales/de.ftl"),
        }
    }
}

impl FromStr for Lang {
    type Err = String;

    fn from_str(text: &str) -> Result<Lang, String> {
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                let known: Vec<&str> = Lang::ALL.iter().map(|l| l.code()).collect();
                format!("unknown language `{text}`; known: {}", known.join(", "))
            })
    }
}

/// One language's messages.
pub struct Texts {
    bundle: FluentBundle<FluentResource>,
}

impl Texts {
    pub fn new(lang: Lang) -> Texts {
        // The files are compiled in and checked by the tests below; a
        // mistake in one loses only the messages it spoils.
        let resource = FluentResource::try_new(lang.source().to_string())
            .unwrap_or_else(|(partial, _)| partial);
        let id = unic_langid::LanguageIdentifier::from_str(lang.code()).unwrap_or_default();
        let mut bundle = FluentBundle::new(vec![id]);
        // Plain text for signs and files: no Unicode isolation marks
        // around the values put in.
        bundle.set_use_isolating(false);
        if let Err(errors) = bundle.add_resource(resource) {
            tracing::error!(
                lang = lang.code(),
                ?errors,
                "duplicate messages in a language file"
            );
        }
        Texts { bundle }
    }

    /// Message `id` with its arguments; a message missing from the file
    /// shows as `{id}`, never as nothing.
    pub fn get(&self, id: &str, args: &[(&str, Arg)]) -> String {
        let Some(pattern) = self.bundle.get_message(id).and_then(|m| m.value()) else {
            return format!("{{{id}}}");
        };
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            let value = match value {
                Arg::Text(text) => FluentValue::from(text.clone()),
                Arg::Number(n) => FluentValue::from(*n),
            };
            fluent_args.set(*name, value);
        }
        let mut errors = Vec::new();
        let text = self
            .bundle
            .format_pattern(pattern, Some(&fluent_args), &mut errors);
        if !errors.is_empty() {
            tracing::warn!(id, ?errors, "a message could not be filled in whole");
        }
        text.into_owned()
    }
}

/// A value put into a message.
pub enum Arg {
    Text(String),
    Number(f64),
}

impl From<&str> for Arg {
    fn from(text: &str) -> Arg {
        Arg::Text(text.to_string())
    }
}

impl From<String> for Arg {
    fn from(text: String) -> Arg {
        Arg::Text(text)
    }
}

impl From<f64> for Arg {
    fn from(n: f64) -> Arg {
        Arg::Number(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluent_syntax::ast::Entry;

    fn message_ids(lang: Lang) -> Vec<String> {
        let resource = fluent_syntax::parser::parse(lang.source())
            .unwrap_or_else(|(_, errors)| panic!("{}.ftl: {errors:?}", lang.code()));
        let mut ids: Vec<String> = resource
            .body
            .iter()
            .filter_map(|e| match e {
                Entry::Message(m) => Some(m.id.name.to_string()),
                _ => None,
            })
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn every_language_file_parses_and_has_the_same_messages() {
        let english = message_ids(Lang::En);
        assert!(english.len() > 10, "{english:?}");
        for lang in Lang::ALL {
            assert_eq!(message_ids(lang), english, "{}.ftl", lang.code());
        }
    }

    #[test]
    fn plurals_and_selections_follow_each_language() {
        let lifetime = |lang, n: f64, unit: &str| {
            Texts::new(lang).get("lifetime", &[("n", n.into()), ("unit", unit.into())])
        };
        assert_eq!(lifetime(Lang::En, 1.0, "y"), "1 year");
        assert_eq!(lifetime(Lang::En, 90.0, "d"), "90 days");
        assert_eq!(lifetime(Lang::De, 1.0, "d"), "1 Tag");
        assert_eq!(lifetime(Lang::De, 12.0, "y"), "12 Jahre");
        let faces = Texts::new(Lang::De).get("notice-no-recording", &[("mode", "pixelate".into())]);
        assert_eq!(faces, "Keine Aufzeichnung. Gesichter werden verpixelt.");
        assert_eq!(
            Texts::new(Lang::En).get("no-such-message", &[]),
            "{no-such-message}"
        );
        assert_eq!("DE".parse::<Lang>(), Ok(Lang::De));
        assert_eq!(
            "fr".parse::<Lang>().unwrap_err(),
            "unknown language `fr`; known: en, de"
        );
    }
}

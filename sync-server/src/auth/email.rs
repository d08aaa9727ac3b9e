//! Email addresses: one normal form, so that every spelling of an address is one account, and
//! a refusal of addresses built to look like another one.
//!
//! An address is split at its last `@`. The whole string is first width-mapped (full-width and
//! half-width forms become their ordinary characters, RFC 8265 section 3.3.1 step 1), so that
//! `ａｌｉｃｅ＠ｅｘａｍｐｌｅ.ｃｏｍ` is `alice@example.com`. Then:
//! - the local part follows the PRECIS `UsernameCaseMapped` profile as far as it applies to an
//!   address: lower case (Unicode `toLowerCase`, step 3), NFC (step 4); non-ASCII characters
//!   must be ones UTS 39 allows in identifiers (no symbols, emoji or invisible characters);
//! - the domain goes through IDNA (UTS 46 `ToASCII`, RFC 5891), so it is stored in its ASCII
//!   (punycode) form whatever spelling was sent;
//! - the local part and each domain label may not mix scripts in a confusable way (UTS 39
//!   restriction levels: one script, or Latin with Han/Kana/Hangul, or Latin with one other
//!   script other than Cyrillic and Greek), so `pаypal` with a Cyrillic `а` is refused.
//!
//! An ASCII address comes out as it always did here (trimmed and lower-cased). This is not a
//! full RFC 5322 parser: the verification code is the proof that an address works.
//!
//! Every place that takes an email goes through [`Email::parse`]; the store only accepts the
//! [`Email`] it returns, so the email index shard is always computed from the normal form.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use unicode_normalization::UnicodeNormalization as _;
use unicode_security::{GeneralSecurityProfile as _, RestrictionLevel, RestrictionLevelDetection};

/// Longest normalised email accepted, in bytes (the seed's `VARCHAR(128)`).
pub const MAX_EMAIL_LEN: usize = 128;
/// Longest input looked at, in bytes: anything longer is refused before any Unicode work.
const MAX_RAW_LEN: usize = 4 * MAX_EMAIL_LEN;

/// An email that cannot be an account's address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadEmail {
    /// Not shaped like `local@domain.tld`, too long, or a domain IDNA refuses.
    #[error("'{0}' is not a valid email address.")]
    Malformed(String),
    /// A character that has no place in an address (a symbol, an emoji, an invisible one).
    #[error("'{address}' contains a character not allowed in an email address: {character:?}.")]
    Character {
        /// The address as sent (shortened).
        address: String,
        /// The character refused.
        character: char,
    },
    /// A part mixes scripts the way look-alike addresses do.
    #[error(
        "'{address}' mixes scripts in '{part}' (for example a Cyrillic or Greek letter among \
         Latin ones), as look-alike addresses do; write each part in one script."
    )]
    MixedScripts {
        /// The address as sent (shortened).
        address: String,
        /// The local part or domain label at fault, in Unicode.
        part: String,
    },
}

/// A normalised email address, made by [`Email::parse`] (the store's migration of old rows
/// also names rows by their old form, crate-internally; nothing is stored under one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises `raw` (see the module docs), or says why it is not an address.
    pub fn parse(raw: &str) -> Result<Self, BadEmail> {
        let raw = raw.trim();
        let shown = || raw.chars().take(MAX_EMAIL_LEN).collect::<String>();
        let malformed = || BadEmail::Malformed(shown());
        if raw.is_empty() || raw.len() > MAX_RAW_LEN {
            return Err(malformed());
        }
        let mut mapped = String::with_capacity(raw.len());
        raw.chars().for_each(|c| width_map(c, &mut mapped));
        let (local, domain) = mapped.rsplit_once('@').ok_or_else(malformed)?;

        let local: String = local.to_lowercase().nfc().collect();
        if local.is_empty() {
            return Err(malformed());
        }
        for c in local.chars() {
            let allowed = if c.is_ascii() {
                c.is_ascii_graphic() && c != '@'
            } else {
                c.identifier_allowed()
            };
            if !allowed {
                return Err(if c.is_ascii() || c.is_whitespace() || c.is_control() {
                    malformed()
                } else {
                    BadEmail::Character { address: shown(), character: c }
                });
            }
        }
        check_scripts(&local, shown)?;

        let uts46 = Uts46::new();
        let domain = uts46
            .to_ascii(domain.as_bytes(), AsciiDenyList::STD3, Hyphens::Allow, DnsLength::Verify)
            .map_err(|_| malformed())?;
        if !domain.contains('.') {
            return Err(malformed());
        }
        let (unicode, checked) =
            uts46.to_unicode(domain.as_bytes(), AsciiDenyList::STD3, Hyphens::Allow);
        checked.map_err(|_| malformed())?;
        for label in unicode.split('.') {
            if let Some(c) = label.chars().find(|c| !c.is_ascii() && !c.identifier_allowed()) {
                return Err(BadEmail::Character { address: shown(), character: c });
            }
            check_scripts(label, shown)?;
        }

        let email = format!("{local}@{domain}");
        if email.len() > MAX_EMAIL_LEN {
            return Err(malformed());
        }
        Ok(Email(email))
    }

    /// An email as a row written by an older release stored it (trimmed and lower-cased
    /// only), to find and rewrite that row. Nothing new is ever stored under one.
    pub(crate) fn stored_before_normalisation(stored: &str) -> Self {
        Email(stored.to_owned())
    }

    /// The normal form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normal form, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Email {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for Email {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// The width mapping rule: a full-width or half-width form becomes its compatibility
/// decomposition (U+FF21 `Ａ` is `A`, U+FF66 `ｦ` is `ヲ`); every other character stays.
fn width_map(c: char, out: &mut String) {
    if c == '\u{3000}' || ('\u{FF00}'..='\u{FFEF}').contains(&c) {
        unicode_normalization::char::decompose_compatible(c, |d| out.push(d));
    } else {
        out.push(c);
    }
}

/// Refuses a part that mixes scripts beyond UTS 39's "moderately restrictive" level. ASCII
/// punctuation (`.`, `+`, `-`, ...) belongs to no script and is left out of the check.
fn check_scripts(part: &str, shown: impl Fn() -> String) -> Result<(), BadEmail> {
    let letters: String = part.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    if letters.as_str().check_restriction_level(RestrictionLevel::ModeratelyRestrictive) {
        Ok(())
    } else {
        Err(BadEmail::MixedScripts { address: shown(), part: part.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        Email::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}")).into_string()
    }

    #[test]
    fn ascii_addresses_come_out_as_before() {
        assert_eq!(norm("  Alice@Example.COM "), "alice@example.com");
        assert_eq!(norm("a.b+tag@sub.example.org"), "a.b+tag@sub.example.org");
        assert_eq!(
            norm("O'Brien!#$%&*/=?^_`{|}~@x-y.example"),
            "o'brien!#$%&*/=?^_`{|}~@x-y.example"
        );
    }

    #[test]
    fn spellings_of_one_address_agree() {
        let nfc = norm("jos\u{e9}@b\u{fc}cher.example");
        assert_eq!(nfc, "jos\u{e9}@xn--bcher-kva.example");
        for spelling in [
            "jose\u{301}@bu\u{308}cher.example", // NFD
            "JOS\u{c9}@B\u{dc}CHER.EXAMPLE",     // upper case
            "\u{ff4a}\u{ff4f}\u{ff53}\u{e9}\u{ff20}b\u{fc}cher\u{ff0e}example", // full width
            "jos\u{e9}@xn--bcher-kva.example",   // punycode
            "jos\u{e9}@XN--BCHER-KVA.example",
        ] {
            assert_eq!(norm(spelling), nfc, "{spelling:?}");
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for raw in
            ["A@B.com", "Jose\u{301}@Bu\u{308}cher.example", "иван@пример.рф", "山田@例え.jp"]
        {
            let once = norm(raw);
            assert_eq!(norm(&once), once);
        }
    }

    #[test]
    fn one_script_per_part_or_a_safe_mix() {
        assert_eq!(norm("Иван@Пример.РФ"), "иван@xn--e1afmkfd.xn--p1ai");
        norm("山田たろう@example.jp"); // Han and Kana: Japanese
        norm("tanaka山田@example.jp"); // Latin with Han
        norm("ahmad\u{627}\u{644}\u{639}\u{631}\u{628}\u{64a}@example.com"); // Latin with Arabic
    }

    #[test]
    fn look_alikes_are_refused() {
        let cyrillic_a = '\u{430}';
        for raw in [
            format!("p{cyrillic_a}ypal@example.com"),
            format!("paypal@ex{cyrillic_a}mple.com"),
            "\u{3bf}livia@example.com".to_owned(), // Greek omicron
        ] {
            assert!(
                matches!(Email::parse(&raw), Err(BadEmail::MixedScripts { .. })),
                "{raw:?}: {:?}",
                Email::parse(&raw)
            );
        }
        // The punycode spelling of a mixed label is the same label.
        let ascii = Uts46::new()
            .to_ascii(
                format!("ex{cyrillic_a}mple.com").as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Allow,
                DnsLength::Verify,
            )
            .unwrap()
            .into_owned();
        assert!(ascii.starts_with("xn--"), "{ascii}");
        assert!(matches!(
            Email::parse(&format!("paypal@{ascii}")),
            Err(BadEmail::MixedScripts { .. })
        ));
    }

    #[test]
    fn non_addresses_are_refused() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@.b.com",
            "a@b.com.",
            "a@exa_mple.com",
            "a\u{200b}b@example.com", // zero-width space
            "\u{2603}@example.com",   // a snowman
            "a@\u{2603}.example",
            "a\u{3000}b@example.com", // ideographic space
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@example.com", "a".repeat(120));
        assert!(Email::parse(&long).is_err());
        assert!(Email::parse(&"a".repeat(100_000)).is_err());
    }
}

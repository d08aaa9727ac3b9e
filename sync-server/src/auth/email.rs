//! Email addresses: one normal form so that `Alice@Example.com ` and `alice@example.com`
//! are one account, and a sanity check (not a full RFC 5322 parser: the verification code is
//! the real proof that an address works).

/// Longest email accepted (the seed's `VARCHAR(128)`).
pub const MAX_EMAIL_LEN: usize = 128;

/// An email that cannot be an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid email address.")]
pub struct BadEmail(pub String);

/// Trims and lower-cases `raw`, and checks that it looks like `local@domain.tld`.
pub fn normalise_email(raw: &str) -> Result<String, BadEmail> {
    let email = raw.trim().to_lowercase();
    let bad = || BadEmail(raw.chars().take(MAX_EMAIL_LEN).collect());
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    let local_ok = !local.is_empty()
        && !local.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@');
    if domain_ok && local_ok { Ok(email) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(normalise_email("  Alice@Example.COM ").unwrap(), "alice@example.com");
        assert_eq!(normalise_email("a.b+tag@sub.example.org").unwrap(), "a.b+tag@sub.example.org");
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
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@example.com", "a".repeat(120));
        assert!(normalise_email(&long).is_err());
    }
}

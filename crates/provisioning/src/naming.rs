//! Usernames derived from domains, and generated passwords.

use rand::RngExt as _;
use rand::seq::SliceRandom as _;

/// The longest username the Panel accepts.
pub const USERNAME_MAX: usize = 16;

/// The username a domain suggests: lowercase ASCII letters and digits of its
/// first label (`www.` skipped), starting with a letter, at most 16 characters.
pub fn username_base(domain: &str) -> String {
    let domain = domain.trim().to_ascii_lowercase();
    let domain = domain.strip_prefix("www.").unwrap_or(&domain);
    let cleaned: String = domain
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .collect();
    let cleaned = cleaned.trim_start_matches(|c: char| c.is_ascii_digit());
    let mut base = if cleaned.is_empty() {
        format!("u{}", cleaned_digits(domain))
    } else {
        cleaned.to_owned()
    };
    if base.len() < 2 {
        base.push_str("site");
    }
    base.truncate(USERNAME_MAX);
    base
}

fn cleaned_digits(domain: &str) -> String {
    let digits: String = domain
        .chars()
        .filter(char::is_ascii_digit)
        .take(USERNAME_MAX - 1)
        .collect();
    if digits.is_empty() {
        "site".into()
    } else {
        digits
    }
}

/// The `n`th candidate for `base`: `base` itself, then `base1`, `base2`... cut so
/// the whole stays within 16 characters.
pub fn username_candidate(base: &str, n: u32) -> String {
    if n == 0 {
        return base.to_owned();
    }
    let suffix = n.to_string();
    let keep = USERNAME_MAX.saturating_sub(suffix.len()).min(base.len());
    format!("{}{suffix}", &base[..keep])
}

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"!#%+-=?@^_";

/// A password from the OS CSPRNG: `len` (at least 16) characters with at least
/// one lowercase, uppercase, digit and symbol.
pub fn generate_password(len: usize) -> String {
    let len = len.max(16);
    let mut rng = rand::rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    let mut chars: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS]
        .iter()
        .map(|class| class[rng.random_range(0..class.len())])
        .collect();
    while chars.len() < len {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    chars.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(u: &str) -> bool {
        (1..=USERNAME_MAX).contains(&u.len())
            && u.starts_with(|c: char| c.is_ascii_lowercase())
            && u.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    }

    #[test]
    fn username_comes_from_the_first_label() {
        assert_eq!(username_base("alice.example.com"), "alice");
        assert_eq!(username_base("www.Bob-Shop.co.uk"), "bobshop");
        assert_eq!(
            username_base("averyveryverylongdomainname.com"),
            "averyveryverylon"
        );
        assert_eq!(username_base("123go.io"), "go");
        assert_eq!(username_base("42.net"), "u42");
        assert_eq!(username_base("xn--caf-dma.fr"), "xncafdma");
        for d in ["a.b", "9.9", "-.-", "ü.de", "www.x.com"] {
            assert!(valid(&username_base(d)), "{d} -> {}", username_base(d));
        }
    }

    #[test]
    fn collisions_get_a_suffix_within_sixteen_characters() {
        assert_eq!(username_candidate("alice", 0), "alice");
        assert_eq!(username_candidate("alice", 2), "alice2");
        assert_eq!(
            username_candidate("averyveryverylon", 1),
            "averyveryverylo1"
        );
        assert_eq!(
            username_candidate("averyveryverylon", 123),
            "averyveryvery123"
        );
        assert!(valid(&username_candidate("averyveryverylon", 99_999)));
    }

    #[test]
    fn passwords_are_long_mixed_and_different() {
        let a = generate_password(20);
        let b = generate_password(20);
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        assert_eq!(generate_password(4).len(), 16);
        for class in [LOWER, UPPER, DIGITS, SYMBOLS] {
            assert!(a.bytes().any(|c| class.contains(&c)), "{a} lacks a class");
        }
    }
}

//! JWTs for tests: HS256 tokens over any claims (signed with the test servers' secret or another
//! one), claim editing, and unpadded base64url for tokens assembled by hand.

use crate::TEST_JWT_SECRET;
use serde_json::Value;

/// Seconds since the Unix epoch, for `iat`/`nbf`/`exp` claims.
pub fn unix_now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// An HS256 JWT over any `claims`, signed with the test servers' secret (for claims the harness's
/// own tokens do not carry, such as `email_verified` or odd emails).
pub fn hs256(claims: &Value) -> String {
    hs256_signed_with(claims, TEST_JWT_SECRET)
}

/// An HS256 JWT over `claims` signed with `secret` (another secret than the server's forges one).
pub fn hs256_signed_with(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// `claims` with `key` set to `value`.
pub fn with_claim(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// Unpadded base64url, as in JWTs.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_unpadded_and_url_safe() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn hs256_has_three_parts_and_differs_by_secret() {
        let claims = serde_json::json!({"email": "a@example.com"});
        let token = hs256(&claims);
        assert_eq!(token.split('.').count(), 3);
        assert_ne!(token, hs256_signed_with(&claims, "another-secret"));
    }
}

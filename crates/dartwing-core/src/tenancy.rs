//! Tenancy entities shared by every capability: Organization, Person and Org Member (SPEC §3).

use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// DocType name of [`Organization`].
pub const ORGANIZATION: &str = "Organization";
/// DocType name of [`Person`].
pub const PERSON: &str = "Person";
/// DocType name of [`OrgMember`].
pub const ORG_MEMBER: &str = "Org Member";

/// Declares a closed set of values written as fixed strings in JSON and in the database.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = $text] #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and transmitted text of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "'{other}' is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum! {
    /// Kind of organization; immutable after insert.
    OrgType { Family => "Family", Company => "Company", Association => "Association", Nonprofit => "Nonprofit" }
}

text_enum! {
    /// Whether an organization operates. Suspended organizations' users cannot write and their jobs pause.
    OrgStatus { Active => "Active", Suspended => "Suspended" }
}

text_enum! {
    /// Whether a person may use the platform.
    PersonStatus { Active => "Active", Inactive => "Inactive" }
}

text_enum! {
    /// A member's role in one organization.
    MemberRole { Owner => "Owner", Admin => "Admin", Member => "Member", Guest => "Guest" }
}

text_enum! {
    /// Whether a membership is in force. Only Active memberships grant access; an Invited one is
    /// an invitation that grants nothing until the invited person accepts it.
    MemberStatus { Active => "Active", Inactive => "Inactive", Pending => "Pending", Invited => "Invited" }
}

/// An Organization document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Primary key, e.g. `ORG-2026-00001`.
    pub name: String,
    /// Display name.
    pub org_name: String,
    /// Family, Company, Association or Nonprofit; immutable.
    pub org_type: OrgType,
    /// Active or Suspended.
    pub status: OrgStatus,
    /// When the document was inserted.
    pub creation: Timestamp,
    /// When the document last changed.
    pub modified: Timestamp,
    /// Who inserted it (email or API key).
    pub owner: String,
    /// Who changed it last.
    pub modified_by: String,
}

/// A Person document: one human identity, found by a unique lower-cased email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Primary key, e.g. `PERS-2026-00001`.
    pub name: String,
    /// Unique, lower-cased email address.
    pub primary_email: String,
    /// Display name.
    pub full_name: String,
    /// Active or Inactive.
    pub status: PersonStatus,
    /// When the document was inserted.
    pub creation: Timestamp,
    /// When the document last changed.
    pub modified: Timestamp,
    /// Who inserted it.
    pub owner: String,
    /// Who changed it last.
    pub modified_by: String,
}

/// An Org Member document: one person's role in one organization. Unique per (person, organization).
///
/// An invitation (status Invited) names whom it invites, by email or by Person name exactly as the
/// inviter wrote it, and links no Person until that person accepts it: it reveals nothing about
/// whether such a Person exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMember {
    /// Primary key, e.g. `MEM-2026-00001`.
    pub name: String,
    /// The Person's name; `None` while the membership is an invitation.
    pub person: Option<String>,
    /// Whom an invitation addressed by email invites.
    pub invited_email: Option<String>,
    /// Whom an invitation addressed by Person name invites.
    pub invited_person: Option<String>,
    /// The Organization's name.
    pub organization: String,
    /// Owner, Admin, Member or Guest.
    pub role: MemberRole,
    /// Active, Inactive, Pending or Invited.
    pub status: MemberStatus,
    /// When the document was inserted.
    pub creation: Timestamp,
    /// When the document last changed.
    pub modified: Timestamp,
    /// Who inserted it.
    pub owner: String,
    /// Who changed it last.
    pub modified_by: String,
}

/// Checks an email address and returns the form stored in `primary_email`, which is the key of a
/// user's identity: ASCII letters lower-cased and nothing else folded, so no two different
/// addresses share a key (`to_lowercase` would turn the Kelvin sign `\u{212A}` into `k`).
/// Addresses that Unicode NFKC normalization would change (compatibility look-alikes such as the
/// Kelvin sign or full-width letters) are refused, as is any white space (surrounding white space
/// is not trimmed either: `kate@a.test ` is not `kate@a.test`) or control character.
pub fn normalize_email(email: &str) -> Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    let invalid = || {
        let shown: String = email.chars().take(254).collect();
        format!("'{}' is not a valid email address", shown.escape_debug())
    };
    let well_formed = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(invalid());
    }
    if !email.nfkc().eq(email.chars()) {
        return Err(format!(
            "{}: it contains compatibility characters (Unicode NFKC would change it)",
            invalid()
        ));
    }
    Ok(email.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_text() {
        for role in MemberRole::ALL {
            assert_eq!(role.as_str().parse::<MemberRole>(), Ok(*role));
        }
        assert!("owner".parse::<MemberRole>().is_err());
        assert_eq!(
            serde_json::to_string(&OrgType::Nonprofit).ok().as_deref(),
            Some("\"Nonprofit\"")
        );
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(normalize_email("Ann@Example.COM"), Ok("ann@example.com".to_string()));
        assert!(
            normalize_email(" ann@example.com").is_err(),
            "white space is refused, not trimmed"
        );
        assert!(normalize_email("ann@example.com\u{3000}").is_err());
        assert!(normalize_email("no-at-sign").is_err());
        assert!(normalize_email("a@b@c").is_err());
        assert!(normalize_email("@example.com").is_err());
    }

    #[test]
    fn emails_fold_ascii_case_only_and_refuse_look_alikes() {
        // KELVIN SIGN lower-cases to an ASCII `k` with `to_lowercase`: never the same identity.
        assert!(normalize_email("\u{212A}ate@a.test").is_err());
        assert!(normalize_email("ｋate@a.test").is_err(), "full-width letter");
        assert!(normalize_email("kate@a.test\u{0}").is_err());
        assert!(normalize_email("ka te@a.test").is_err());
        assert!(normalize_email("ka\u{2003}te@a.test").is_err(), "em space");
        assert_eq!(normalize_email("KATE@A.TEST"), Ok("kate@a.test".to_string()));
        // Non-ASCII letters in NFKC form are kept as they are, not case-folded.
        assert_eq!(normalize_email("José@a.test"), Ok("josé@a.test".to_string()));
        assert_eq!(normalize_email("JOSÉ@a.test"), Ok("josÉ@a.test".to_string()));
    }
}

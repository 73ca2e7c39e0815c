//! Naming series: generated names (`ORG-YYYY-NNNNN`, …) that skip names already taken.

use dartwing_core::ids::NamingSeries;
use dartwing_core::{Error, Result, Timestamp};
use dartwing_db::{Db, SqlFile, Statement};
use sqlx::AnyConnection;

/// Naming series of Organizations: `ORG-YYYY-NNNNN`.
pub const ORGANIZATION_SERIES: NamingSeries = NamingSeries {
    prefix: "ORG",
    digits: 5,
};
/// Naming series of People: `PERS-YYYY-NNNNN`.
pub const PERSON_SERIES: NamingSeries = NamingSeries {
    prefix: "PERS",
    digits: 5,
};
/// Naming series of Org Members: `MEM-YYYY-NNNNN`.
pub const MEMBER_SERIES: NamingSeries = NamingSeries {
    prefix: "MEM",
    digits: 5,
};

/// Every series the server generates names from; explicit names inside any of them are refused.
pub const RESERVED_SERIES: [NamingSeries; 3] = [ORGANIZATION_SERIES, PERSON_SERIES, MEMBER_SERIES];

/// Most names taken by other documents that one generated name skips before giving up.
const MAX_TAKEN_NAMES_SKIPPED: usize = 1000;

const NAMING: SqlFile = SqlFile::portable("Naming Series", "naming", include_str!("sql/naming.sql"));

statements! {
    /// Statements of the naming series.
    NamingSql from NAMING {
        next,
        organization_taken,
        person_taken,
        member_taken,
    }
}

impl NamingSql {
    /// The generated names of Organizations.
    pub(super) fn organizations(&self) -> GeneratedNames<'_> {
        GeneratedNames {
            series: ORGANIZATION_SERIES,
            doctype: dartwing_core::tenancy::ORGANIZATION,
            next: &self.next,
            taken: &self.organization_taken,
        }
    }

    /// The generated names of People.
    pub(super) fn people(&self) -> GeneratedNames<'_> {
        GeneratedNames {
            series: PERSON_SERIES,
            doctype: dartwing_core::tenancy::PERSON,
            next: &self.next,
            taken: &self.person_taken,
        }
    }

    /// The generated names of Org Members.
    pub(super) fn members(&self) -> GeneratedNames<'_> {
        GeneratedNames {
            series: MEMBER_SERIES,
            doctype: dartwing_core::tenancy::ORG_MEMBER,
            next: &self.next,
            taken: &self.member_taken,
        }
    }
}

/// The series of one DocType with the statements that draw from it.
pub(super) struct GeneratedNames<'s> {
    series: NamingSeries,
    doctype: &'static str,
    next: &'s Statement,
    taken: &'s Statement,
}

impl GeneratedNames<'_> {
    /// The next free name of the series: names already taken (rows written before their series
    /// was reserved, or restored from elsewhere) are skipped, at most [`MAX_TAKEN_NAMES_SKIPPED`]
    /// of them.
    pub(super) async fn next(&self, db: &Db, conn: &mut AnyConnection, now: Timestamp) -> Result<String> {
        let series = self.series;
        for _ in 0..=MAX_TAKEN_NAMES_SKIPPED {
            let current: i64 = db
                .run(
                    self.next,
                    self.next
                        .query_scalar()
                        .bind(series.key(now.year()))
                        .fetch_one(&mut *conn),
                )
                .await?;
            let name = series.name(now.year(), current);
            let taken: i64 = db
                .run(
                    self.taken,
                    self.taken.query_scalar().bind(name.clone()).fetch_one(&mut *conn),
                )
                .await?;
            if taken == 0 {
                return Ok(name);
            }
            tracing::warn!(doctype = self.doctype, docname = %name, "generated name already taken; skipping it");
        }
        tracing::error!(doctype = self.doctype, series = %series.pattern(), "no free generated name found");
        Err(Error::conflict(format!(
            "No free name in the series {} after skipping {MAX_TAKEN_NAMES_SKIPPED} taken ones",
            series.pattern()
        )))
    }
}

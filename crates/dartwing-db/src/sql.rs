//! Statements of the stores. SQL lives in `.sql` files next to each store, one file per concern
//! (claim, enqueue, dead letters, …), each statement under a `-- name: <name>` header line. A
//! concern whose SQL differs between the backends has two files with the same statement names
//! (`<concern>.sqlite.sql`, `<concern>.postgres.sql`); the store chooses one when it is built. No
//! SQL is assembled at run time.
//!
//! Every statement runs through [`crate::Db::run`], which counts it in `db_queries_total` and
//! `db_query_duration_seconds` under the concern's doctype and the statement's name.

use crate::{Backend, DbError};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{Any, FromRow};
use std::collections::BTreeMap;

/// The SQL of one concern: portable, or one text per backend.
#[derive(Debug, Clone, Copy)]
pub struct SqlFile {
    doctype: &'static str,
    concern: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

impl SqlFile {
    /// One text for both backends; its statements count under `doctype`.
    pub const fn portable(doctype: &'static str, concern: &'static str, sql: &'static str) -> Self {
        Self {
            doctype,
            concern,
            sqlite: sql,
            postgres: sql,
        }
    }

    /// A text per backend, with the same statement names.
    pub const fn per_backend(
        doctype: &'static str,
        concern: &'static str,
        sqlite: &'static str,
        postgres: &'static str,
    ) -> Self {
        Self {
            doctype,
            concern,
            sqlite,
            postgres,
        }
    }

    /// The statements of `backend`, for a store to take by name ([`Statements::take`]).
    pub fn statements(&self, backend: Backend) -> Result<Statements, DbError> {
        let text = match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        };
        let mut by_name = BTreeMap::new();
        let mut current: Option<(&'static str, usize)> = None;
        let mut offset = 0;
        let mut finish = |current: Option<(&'static str, usize)>, end: usize| -> Result<(), DbError> {
            if let Some((name, start)) = current {
                let sql = text[start..end].trim();
                if sql.is_empty() || by_name.insert(name, sql).is_some() {
                    return Err(DbError::Statement(format!(
                        "{}: statement `{name}` is empty or defined twice",
                        self.concern
                    )));
                }
            }
            Ok(())
        };
        for line in text.split_inclusive('\n') {
            if let Some(name) = line.trim().strip_prefix("-- name:") {
                finish(current.take(), offset)?;
                current = Some((name.trim(), offset + line.len()));
            }
            offset += line.len();
        }
        finish(current, text.len())?;
        Ok(Statements {
            doctype: self.doctype,
            concern: self.concern,
            by_name,
        })
    }
}

/// The statements of one concern for one backend. A store takes each by name when it is built and
/// then calls [`Statements::finish`], so a missing statement and a statement no code uses are both
/// errors at startup (and in every test), never later.
#[derive(Debug)]
pub struct Statements {
    doctype: &'static str,
    concern: &'static str,
    by_name: BTreeMap<&'static str, &'static str>,
}

impl Statements {
    /// The statement `name`.
    pub fn take(&mut self, name: &'static str) -> Result<Statement, DbError> {
        let sql = self
            .by_name
            .remove(name)
            .ok_or_else(|| DbError::Statement(format!("{}: no statement `{name}`", self.concern)))?;
        Ok(Statement {
            doctype: self.doctype,
            name,
            sql,
        })
    }

    /// Fails when a statement of the file was not taken.
    pub fn finish(self) -> Result<(), DbError> {
        match self.by_name.keys().next() {
            None => Ok(()),
            Some(name) => Err(DbError::Statement(format!(
                "{}: statement `{name}` is never used",
                self.concern
            ))),
        }
    }
}

/// One SQL statement, with the labels it is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    /// `doctype` label: the table or DocType the concern works on.
    pub doctype: &'static str,
    /// `operation` label: the statement's name.
    pub name: &'static str,
    /// The SQL text.
    pub sql: &'static str,
}

impl Statement {
    /// The statement as a query to bind parameters to (borrowed values may be bound: the query
    /// lives as long as they do).
    pub fn query<'q>(&self) -> Query<'q, Any, AnyArguments<'q>> {
        sqlx::query(self.sql)
    }

    /// The statement as a query whose rows decode into `T`.
    pub fn query_as<'q, T>(&self) -> QueryAs<'q, Any, T, AnyArguments<'q>>
    where
        T: for<'r> FromRow<'r, AnyRow>,
    {
        sqlx::query_as(self.sql)
    }

    /// The statement as a query of one value per row.
    pub fn query_scalar<'q, T>(&self) -> QueryScalar<'q, Any, T, AnyArguments<'q>>
    where
        (T,): for<'r> FromRow<'r, AnyRow>,
    {
        sqlx::query_scalar(self.sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "-- Jobs: claiming.\n-- name: first\nSELECT 1\n  FROM x;\n\n-- name: second\nSELECT 2;\n";

    #[test]
    fn statements_are_taken_by_name_and_unused_or_missing_ones_are_errors() {
        let file = SqlFile::portable("Job", "claim", FILE);
        let mut statements = file.statements(Backend::Sqlite).expect("parses");
        let first = statements.take("first").expect("first");
        assert_eq!(first.sql, "SELECT 1\n  FROM x;");
        assert_eq!((first.doctype, first.name), ("Job", "first"));
        assert!(statements.take("third").is_err());
        assert!(matches!(statements.finish(), Err(DbError::Statement(e)) if e.contains("second")));
        let duplicate = SqlFile::portable("Job", "claim", "-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n");
        assert!(duplicate.statements(Backend::Postgres).is_err());
        let per_backend =
            SqlFile::per_backend("Job", "claim", "-- name: a\nSELECT 'lite';", "-- name: a\nSELECT 'pg';");
        assert_eq!(
            per_backend
                .statements(Backend::Postgres)
                .and_then(|mut s| s.take("a"))
                .map(|s| s.sql)
                .ok(),
            Some("SELECT 'pg';")
        );
    }
}

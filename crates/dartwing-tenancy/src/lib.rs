//! Tenancy of the Dartwing runtime (SPEC §3): Organizations, People and Org Members with their
//! storage and `/api/resource` routes, service API keys, and the identity store that turns
//! credentials into principals for the permission module.

pub mod list;
pub mod routes;
mod store;

/// The tables of this capability, for both backends.
pub static MIGRATIONS: dartwing_db::Migrations = dartwing_db::migrations!("tenancy");

pub use store::{
    ApiKeyInfo, InvitationRef, Invitee, IssuedApiKey, MemberChanges, NewMember, NewOrganization, NewPerson,
    OrganizationChanges, PersonChanges, PersonRecord, TenancyStore,
};

impl TenancyStore {
    /// Tenancy as a capability of the node: the `/api/resource` routes of Organization, Person
    /// and Org Member, and invitation acceptance.
    pub fn capability(&self) -> dartwing_http::Capability {
        dartwing_http::Capability::new("tenancy").routes(routes::routes(self.clone()))
    }
}

//! Tenancy of the Dartwing runtime (SPEC §3): Organizations, People and Org Members with their
//! storage and `/api/resource` routes, service API keys, and the identity store that turns
//! credentials into principals for the permission module.

mod identity;
pub mod list;
pub mod routes;
mod store;

pub use identity::{ApiKeyInfo, IssuedApiKey};
pub use store::{
    InvitationRef, Invitee, MemberChanges, NewMember, NewOrganization, NewPerson, OrganizationChanges, PersonChanges,
    PersonRecord, TenancyStore,
};

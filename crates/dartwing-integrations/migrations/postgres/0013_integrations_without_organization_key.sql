-- The token vault keeps no foreign key into tenancy's tables: when an organization is deleted, the
-- vault deletes its integrations and pending connect flows (on `AccessChange::OrganizationDeleted`).
-- The audit log never referenced the organization and is kept.
ALTER TABLE organization_integration DROP CONSTRAINT IF EXISTS organization_integration_organization_fkey;
ALTER TABLE integration_connect_state DROP CONSTRAINT IF EXISTS integration_connect_state_organization_fkey;

-- Sync keeps no foreign key into tenancy's tables: when an organization is deleted, sync deletes
-- the rows it keeps for it (on `AccessChange::OrganizationDeleted`).
ALTER TABLE sync_cursor DROP CONSTRAINT IF EXISTS sync_cursor_organization_fkey;

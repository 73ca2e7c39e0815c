-- Jobs keep no foreign key into tenancy's tables: when an organization is deleted, jobs delete its
-- webhook signing secret and allowed hosts (on `AccessChange::OrganizationDeleted`).
ALTER TABLE webhook_signing_secret DROP CONSTRAINT IF EXISTS webhook_signing_secret_organization_fkey;
ALTER TABLE webhook_allowed_host DROP CONSTRAINT IF EXISTS webhook_allowed_host_organization_fkey;

-- Invitations and identity binding.
--
-- An Org Member may be an invitation (status Invited): it names whom it invites — by email or by
-- Person name, exactly as the inviter wrote it — and links no Person until that person accepts it,
-- so an invitation reveals nothing about whether such a Person exists. SQLite cannot change a
-- column's nullability or a CHECK in place, so the table is rebuilt (nothing references it).
CREATE TABLE org_member_next (
    name           TEXT PRIMARY KEY,
    person         TEXT REFERENCES person (name),
    organization   TEXT NOT NULL REFERENCES organization (name),
    role           TEXT NOT NULL CHECK (role IN ('Owner', 'Admin', 'Member', 'Guest')),
    status         TEXT NOT NULL CHECK (status IN ('Active', 'Inactive', 'Pending', 'Invited')),
    creation       TEXT NOT NULL,
    modified       TEXT NOT NULL,
    owner          TEXT NOT NULL,
    modified_by    TEXT NOT NULL,
    invited_email  TEXT,
    invited_person TEXT,
    CHECK (
        (status = 'Invited' AND person IS NULL
            AND ((invited_email IS NULL AND invited_person IS NOT NULL)
                OR (invited_email IS NOT NULL AND invited_person IS NULL)))
        OR (status <> 'Invited' AND person IS NOT NULL AND invited_email IS NULL AND invited_person IS NULL)
    ),
    UNIQUE (person, organization),
    UNIQUE (invited_email, organization),
    UNIQUE (invited_person, organization)
);
INSERT INTO org_member_next (name, person, organization, role, status, creation, modified, owner, modified_by)
    SELECT name, person, organization, role, status, creation, modified, owner, modified_by FROM org_member;
DROP TABLE org_member;
ALTER TABLE org_member_next RENAME TO org_member;
CREATE INDEX org_member_by_organization ON org_member (organization);

-- The identity provider's key (`iss`, `sub`) of the user a Person was first signed in as; a later
-- token for the same email with another key is refused.
ALTER TABLE person ADD COLUMN identity_issuer TEXT;
ALTER TABLE person ADD COLUMN identity_subject TEXT;

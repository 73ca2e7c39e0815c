-- The feed also starts from a time (`since` as a timestamp): the first change of an organization
-- written after it is found through this index.
CREATE INDEX sync_change_by_modified ON sync_change (organization, modified);

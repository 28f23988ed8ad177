-- +goose Up
-- Asynchronous account deletion (issue 12): a user with many records is
-- deleted at once, and its records later, in batches, by a job of the queue
-- (server/jobs), so that one DELETE does not hold a transaction, its locks
-- and a connection for as long as a million rows take. The foreign key's
-- ON DELETE CASCADE would delete every record inside the user's DELETE, so
-- it becomes a trigger that does the same unless the transaction set
-- scalelab.keep_records (DB.DeleteUserLater does, with SET LOCAL). Every
-- other delete of a user still takes its records with it, in the same
-- transaction, as the cascade did.
--
-- Without the foreign key, a record of a user that no longer exists can
-- only come from a deferred delete (and goes when its job runs): every
-- record write locks its user's row first (SELECT … FOR UPDATE) and fails
-- when the user is gone.
ALTER TABLE records DROP CONSTRAINT IF EXISTS records_user_id_fkey;

-- +goose StatementBegin
CREATE FUNCTION delete_user_records() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('scalelab.keep_records', true), '') <> 'on' THEN
        DELETE FROM records WHERE user_id = OLD.id;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER users_delete_records AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION delete_user_records();

-- +goose Down
DROP TRIGGER users_delete_records ON users;
DROP FUNCTION delete_user_records();
DELETE FROM records r WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id);
ALTER TABLE records ADD CONSTRAINT records_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

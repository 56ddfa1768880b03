-- Every change to an access token (a revocation by the API, the CLI or plain SQL; a delete,
-- also by an account's cascade) notifies the servers' token caches on the channel
-- keymint_access_tokens, with the token's id as the payload ('*' for a TRUNCATE). PostgreSQL
-- delivers the notification when the change commits; a cache drops what it holds on it.
CREATE FUNCTION keymint_notify_access_token_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_notify('keymint_access_tokens', '*');
  ELSE
    PERFORM pg_notify('keymint_access_tokens', OLD.id);
  END IF;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER access_tokens_changed AFTER UPDATE OR DELETE ON access_tokens
  FOR EACH ROW EXECUTE FUNCTION keymint_notify_access_token_change();
--> statement-breakpoint
CREATE TRIGGER access_tokens_truncated AFTER TRUNCATE ON access_tokens
  FOR EACH STATEMENT EXECUTE FUNCTION keymint_notify_access_token_change();

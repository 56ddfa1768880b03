CREATE TABLE "floating_sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"license_key_id" text NOT NULL,
	"host_id" text NOT NULL,
	"device_tag" text,
	"user_identifier" text,
	"secret" text NOT NULL,
	"nonce" text NOT NULL,
	"expires_at" timestamp (3) with time zone NOT NULL,
	"checked_in_at" timestamp (3) with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "signing_keys" (
	"kid" text PRIMARY KEY NOT NULL,
	"public_key" text NOT NULL,
	"private_key" text NOT NULL,
	"encrypted" boolean NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp (3) with time zone
);
--> statement-breakpoint
ALTER TABLE "floating_sessions" ADD CONSTRAINT "floating_sessions_license_key_id_license_keys_id_fk" FOREIGN KEY ("license_key_id") REFERENCES "public"."license_keys"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "floating_sessions_key_live" ON "floating_sessions" USING btree ("license_key_id","host_id","expires_at") WHERE "floating_sessions"."checked_in_at" is null;--> statement-breakpoint
CREATE INDEX "floating_sessions_expires" ON "floating_sessions" USING btree ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "signing_keys_one_current" ON "signing_keys" USING btree ((true)) WHERE "signing_keys"."retired_at" is null;
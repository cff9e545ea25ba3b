CREATE TABLE `members` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`email` text NOT NULL,
	`email_key` text NOT NULL,
	`role` text NOT NULL,
	`status` text DEFAULT 'active' NOT NULL,
	`session_epoch` integer DEFAULT 0 NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	`last_sign_in_at` text,
	FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `members_account_email_key_idx` ON `members` (`account_id`,`email_key`);--> statement-breakpoint
CREATE INDEX `members_email_key_idx` ON `members` (`email_key`);--> statement-breakpoint
ALTER TABLE `signup_tokens` ADD `purpose` text DEFAULT 'signup' NOT NULL;--> statement-breakpoint
ALTER TABLE `signup_tokens` ADD `account_id` text;--> statement-breakpoint
ALTER TABLE `signup_tokens` ADD `member_id` text;--> statement-breakpoint
CREATE INDEX `signup_tokens_expires_idx` ON `signup_tokens` (`expires_at`);--> statement-breakpoint
-- Data: every account made before members existed gets its account email as its first owner
-- (email_key was backfilled for every account by 0007; the fallback only guards a NULL).
INSERT INTO `members` (`id`, `account_id`, `email`, `email_key`, `role`, `status`, `created_at`)
SELECT 'mem_' || lower(hex(randomblob(12))), `id`, lower(trim(`email`)), coalesce(`email_key`, lower(trim(`email`))), 'owner', 'active', `created_at`
FROM `accounts` WHERE true
ON CONFLICT DO NOTHING;

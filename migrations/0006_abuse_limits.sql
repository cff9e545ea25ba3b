CREATE TABLE `account_actions` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`action` text NOT NULL,
	`created_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `account_actions_idx` ON `account_actions` (`account_id`,`action`,`created_at`);--> statement-breakpoint
DROP INDEX `api_keys_account_idx`;--> statement-breakpoint
CREATE INDEX `api_keys_account_created_idx` ON `api_keys` (`account_id`,`created_at`,`id`);--> statement-breakpoint
ALTER TABLE `accounts` ADD `email_key` text;--> statement-breakpoint
CREATE INDEX `accounts_email_key_idx` ON `accounts` (`email_key`);--> statement-breakpoint
ALTER TABLE `signup_tokens` ADD `email_key` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `signup_tokens` ADD `client_net_hash` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `signup_tokens_email_key_idx` ON `signup_tokens` (`email_key`,`created_at`);--> statement-breakpoint
CREATE INDEX `signup_tokens_net_idx` ON `signup_tokens` (`client_net_hash`,`created_at`);
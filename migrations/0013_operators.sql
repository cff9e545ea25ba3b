CREATE TABLE `account_balances` (
	`account_id` text PRIMARY KEY NOT NULL,
	`monthly` integer NOT NULL,
	`purchased` integer NOT NULL,
	`purchased_value_cents` integer NOT NULL,
	`version` integer NOT NULL,
	`updated_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `reconcile_runs` (
	`id` integer PRIMARY KEY NOT NULL,
	`finished_at` text NOT NULL,
	`checked` integer NOT NULL,
	`attention` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `accounts` ADD `suspended_at` text;--> statement-breakpoint
ALTER TABLE `accounts` ADD `suspension_reason` text;--> statement-breakpoint
CREATE INDEX `accounts_email_lower_idx` ON `accounts` (lower("email"),`id`);--> statement-breakpoint
CREATE INDEX `transactions_status_created_idx` ON `transactions` (`status`,`created_at`);--> statement-breakpoint
CREATE INDEX `transactions_attention_idx` ON `transactions` (`needs_attention`,`status`) WHERE "transactions"."needs_attention" = 1;
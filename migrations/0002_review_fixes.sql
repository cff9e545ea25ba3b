CREATE TABLE `pending_refunds` (
	`debit_ref` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`last_error` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);
--> statement-breakpoint
ALTER TABLE `api_keys` ADD `scope` text DEFAULT 'full' NOT NULL;--> statement-breakpoint
ALTER TABLE `emails` ADD `claimed_at` text;--> statement-breakpoint
ALTER TABLE `transactions` ADD `payment_method_id` text;
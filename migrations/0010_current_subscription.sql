CREATE TABLE `other_subscription_events` (
	`event_id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`subscription_id` text NOT NULL,
	`event_type` text NOT NULL,
	`status` text,
	`action` text NOT NULL,
	`at` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `other_subscription_events_account_idx` ON `other_subscription_events` (`account_id`,`at`);--> statement-breakpoint
ALTER TABLE `accounts` ADD `current_subscription_id` text;
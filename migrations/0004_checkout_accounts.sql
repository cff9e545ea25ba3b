ALTER TABLE `accounts` ADD `complimentary` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `accounts` ADD `subscription_status` text;--> statement-breakpoint
ALTER TABLE `accounts` ADD `subscription_period_end` text;--> statement-breakpoint
ALTER TABLE `accounts` ADD `subscription_cancel_at_period_end` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `accounts` ADD `card_brand` text;--> statement-breakpoint
ALTER TABLE `accounts` ADD `card_last4` text;--> statement-breakpoint
ALTER TABLE `accounts` ADD `card_exp_month` integer;--> statement-breakpoint
ALTER TABLE `accounts` ADD `card_exp_year` integer;
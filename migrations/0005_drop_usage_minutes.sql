DROP TABLE `usage_minutes`;--> statement-breakpoint
ALTER TABLE `pending_refunds` ADD `charge` text;
ALTER TABLE `transactions` ADD `invoice_id` text;--> statement-breakpoint
ALTER TABLE `transactions` ADD `invoice_url` text;--> statement-breakpoint
ALTER TABLE `transactions` ADD `action_url` text;--> statement-breakpoint
CREATE UNIQUE INDEX `transactions_invoice_id_unique` ON `transactions` (`invoice_id`);
CREATE TABLE `signup_tokens` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`email` text NOT NULL,
	`client_hash` text NOT NULL,
	`created_at` text NOT NULL,
	`expires_at` text NOT NULL,
	`used_at` text
);
--> statement-breakpoint
CREATE INDEX `signup_tokens_client_idx` ON `signup_tokens` (`client_hash`,`created_at`);--> statement-breakpoint
CREATE INDEX `signup_tokens_email_idx` ON `signup_tokens` (`email`,`created_at`);--> statement-breakpoint
CREATE INDEX `signup_tokens_created_idx` ON `signup_tokens` (`created_at`);
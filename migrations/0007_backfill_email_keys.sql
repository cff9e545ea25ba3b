-- Data only: the mailbox key (src/email/address.ts `mailboxKey`) of accounts made before the
-- email_key column existed (lowercase, trimmed; the local part's +tag dropped unless it starts
-- with "+"; for gmail.com and googlemail.com, dots dropped and the domain gmail.com), and the
-- plain address for sign-up requests of the last day (they age out within 24 hours).
UPDATE `accounts` SET `email_key` = (
  SELECT CASE
    WHEN at_pos <= 1 OR at_pos = length(e) THEN e
    ELSE (
      SELECT CASE
        WHEN d IN ('gmail.com', 'googlemail.com') THEN replace(l, '.', '') || '@gmail.com'
        ELSE l || '@' || d
      END
      FROM (
        SELECT
          CASE WHEN instr(l0, '+') > 1 THEN substr(l0, 1, instr(l0, '+') - 1) ELSE l0 END AS l,
          rtrim(d0, '.') AS d
        FROM (SELECT substr(e, 1, at_pos - 1) AS l0, substr(e, at_pos + 1) AS d0)
      )
    )
  END
  FROM (
    SELECT e, length(rtrim(e, replace(e, '@', ''))) AS at_pos
    FROM (SELECT lower(trim(`accounts`.`email`)) AS e)
  )
) WHERE `email_key` IS NULL;--> statement-breakpoint
UPDATE `signup_tokens` SET `email_key` = `email` WHERE `email_key` = '';

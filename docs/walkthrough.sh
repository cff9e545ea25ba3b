#!/usr/bin/env bash
# Runs the curl session of docs/walkthrough.md (the README shows part of it) against a running
# `npm start` and prints each command with its real output, the way they are shown there. Their
# outputs come from one run of this script on a fresh `.wrangler/state`.
#   npm start            # in another terminal (fresh state: rm -rf .wrangler/state first)
#   bash docs/walkthrough.sh
set -u
cd "$(dirname "$0")/.."
export KEY=$(node -p 'require("./.wrangler/state/demo-account.json").api_key')
export ACCT=$(node -p 'require("./.wrangler/state/demo-account.json").id')
export G=${G:-$(node -p 'require("./.wrangler/state/local-stack.json").gatewayUrl')} ADMIN="Authorization: Bearer ${ADMIN_TOKEN:-dev-admin-token}" JSON="Content-Type: application/json"

run() { # prints "$ <command>" and what it wrote (CRs dropped)
  printf '$ %s\n' "$1"
  eval "$1" 2>&1 | tr -d '\r'
  printf '\n'
}
section() { printf '\n===== %s\n' "$1"; }

section 200
run 'curl -si $G/v1/classify -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"title":"Wireless earbuds","description":"Bluetooth 5.3"}'\'''

section 403
run 'curl -s -X POST $G/admin/accounts/$ACCT/credits -H "$ADMIN" -H "$JSON" -d '\''{"monthly":-2999,"reason":"demo: spend everything"}'\'''
run 'curl -si $G/v1/classify -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"title":"Wireless earbuds"}'\'''

section recharge
run 'curl -s -X POST $G/admin/accounts/$ACCT/payment-method -H "$ADMIN" -H "$JSON" -d '\''{"payment_method":"pm_card_visa"}'\'''
run 'curl -s -X POST $G/admin/accounts/$ACCT/credits -H "$ADMIN" -H "$JSON" -d '\''{"monthly":101,"reason":"demo: back to 101"}'\'''
run 'curl -s -X PUT $G/v1/account/auto-recharge -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"enabled":true,"package":"credits_1000"}'\'''
run 'curl -si $G/v1/classify -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"title":"Trail running shoes"}'\'''
run 'sleep 2     # the queue consumer and the webhooks are asynchronous'
run 'curl -s $G/v1/account/balance -H "Authorization: Bearer $KEY"'
run 'curl -s "$G/v1/account/transactions?limit=1" -H "Authorization: Bearer $KEY"'
run 'curl -s $G/admin/accounts/$ACCT/emails -H "$ADMIN"'

section keys
run 'curl -s $G/v1/account/keys -H "Authorization: Bearer $KEY"'
CI_KEY=$(curl -s -X POST $G/v1/account/keys -H "Authorization: Bearer $KEY" -H "$JSON" -d '{"name":"ci"}' | tee /tmp/walkthrough-key.json | node -p 'JSON.parse(require("fs").readFileSync(0)).key')
printf '$ %s\n%s\n\n' 'curl -s -X POST $G/v1/account/keys -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"name":"ci"}'\''' "$(cat /tmp/walkthrough-key.json)"
run "curl -si -X POST \$G/v1/account/top-ups -H \"Authorization: Bearer $CI_KEY\" -H \"\$JSON\" -d '{\"package\":\"credits_1000\"}'"

section top-up-and-limits
run 'curl -s $G/v1/account/limits -H "Authorization: Bearer $KEY"'
run 'curl -si -X POST $G/v1/account/top-ups -H "Authorization: Bearer $KEY" -H "$JSON" -H "Idempotency-Key: topup-2026-12-01-1" -d '\''{"package":"credits_3000"}'\'''
run 'sleep 2     # the queue consumer and the webhooks are asynchronous'
run 'curl -si -X POST $G/v1/account/top-ups -H "Authorization: Bearer $KEY" -H "$JSON" -H "Idempotency-Key: topup-2026-12-01-1" -d '\''{"package":"credits_3000"}'\''     # a retry, seconds later'
run 'curl -s -X PUT $G/v1/account/limits -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"monthly_spend_limit_cents":3000}'\'''
run 'curl -si -X POST $G/v1/account/top-ups -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"package":"credits_1000"}'\'''

section methods
run 'curl -si -X OPTIONS $G/v1/classify -H "Authorization: Bearer $KEY"'
run 'curl -si -X TRACE $G/v1/classify -H "Authorization: Bearer $KEY"'

section operator
run 'curl -s -X PATCH $G/admin/accounts/$ACCT -H "$ADMIN" -H "$JSON" -d '\''{"rate_limit_per_minute":120}'\'''
run 'curl -si $G/v1/categories -H "Authorization: Bearer $KEY" | grep -i ratelimit'

section pause
run 'curl -s -X POST $G/admin/accounts/$ACCT/credits -H "$ADMIN" -H "$JSON" -d '\''{"purchased":-4000,"reason":"demo: down to 100"}'\'''
run 'sleep 1     # the queue consumer and the webhooks are asynchronous'
run 'curl -s $G/v1/account/auto-recharge -H "Authorization: Bearer $KEY"     # 2,400 + 700 > 3,000'
run 'curl -s -X PUT $G/v1/account/limits -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"monthly_spend_limit_cents":20000}'\''     # no key raises it'
# A person raises it: sign in by the emailed link (locally read from the operator's listing),
# its confirm button's post (the page's double-submit token and nonce cookie), then the session.
run 'curl -s -X POST $G/v1/sign-in -H "$JSON" -d '\''{"email":"demo@tollgate.local"}'\'''
LINK=$(curl -s "$G/admin/signup-emails?email=demo@tollgate.local" -H "$ADMIN" | grep -o 'http[^\"]*/account/sign-in/confirm?token=[0-9A-Za-z]*' | head -1)
CONFIRM=$(curl -si "$LINK" | tr -d '\r')
NONCE=$(printf '%s' "$CONFIRM" | grep -io '^set-cookie: tg_signin=[^;]*' | sed 's/^[Ss]et-[Cc]ookie: //')
CSRF=$(printf '%s' "$CONFIRM" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//;s/"$//')
export SESSION=$(curl -si -X POST "$G/account/sign-in/confirm" -H "Origin: $G" -H "Cookie: $NONCE" --data-urlencode "token=${LINK##*token=}" --data-urlencode "account_id=$ACCT" --data-urlencode "csrf=$CSRF" | tr -d '\r' | grep -io '^set-cookie: tg_session=[^;]*' | sed 's/^[Ss]et-[Cc]ookie: //')
printf '$ %s\n%s\n\n' '# …open the emailed link and press "Sign in": the answer sets tg_session' "${SESSION%%=*}=…"
run 'curl -s -X PUT $G/v1/account/limits -H "Cookie: $SESSION" -H "Origin: $G" -H "$JSON" -d '\''{"monthly_spend_limit_cents":20000}'\''     # the owner, signed in'
run 'sleep 2     # the queue consumer and the webhooks are asynchronous'
run 'curl -s $G/v1/account/balance -H "Authorization: Bearer $KEY"     # raised: it resumed at once'
run 'curl -s "$G/admin/accounts/$ACCT/emails" -H "$ADMIN" | node -p '\''JSON.parse(require("fs").readFileSync(0)).data.map((e) => e.subject).join("\n")'\'''

section alerts
run 'curl -s $G/v1/account/alerts -H "Authorization: Bearer $KEY"'
run 'curl -s -X PUT $G/v1/account/alerts -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"low_balance_credits":500}'\'''
run 'curl -s -X PUT $G/v1/account/alerts -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"low_balance_credits":2.5}'\'''
run 'curl -s -X POST $G/admin/accounts/$ACCT/credits -H "$ADMIN" -H "$JSON" -d '\''{"purchased":-599,"reason":"demo: down to 501"}'\'''
run 'curl -s -o /dev/null -D - $G/v1/classify -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"title":"Trail running shoes"}'\'' | grep X-Credits-Remaining'
run 'curl -s -o /dev/null -D - $G/v1/classify -H "Authorization: Bearer $KEY" -H "$JSON" -d '\''{"title":"Trail running shoes"}'\'' | grep X-Credits-Remaining'
run 'sleep 1     # the queue consumer and the webhooks are asynchronous'
run 'curl -s "$G/admin/accounts/$ACCT/emails" -H "$ADMIN" | node -p '\''JSON.stringify(JSON.parse(require("fs").readFileSync(0)).data.filter((e) => e.kind === "low_balance"))'\''     # one, at 500; none at 499'

section last-full-key
FULL_ID=$(curl -s $G/v1/account/keys -H "Authorization: Bearer $KEY" | node -p 'JSON.parse(require("fs").readFileSync(0)).data.find((k) => k.scope === "full" && !k.revoked_at).id')
run "curl -si -X DELETE \$G/v1/account/keys/$FULL_ID -H \"Authorization: Bearer \$KEY\""

section sign-up
run 'curl -si -X POST $G/v1/signup -H "$JSON" -d '\''{"email":"new-customer@example.com"}'\'''
run 'curl -s "$G/admin/signup-emails?email=new-customer@example.com" -H "$ADMIN"'

section checkout
NEW=$(curl -s -X POST $G/admin/accounts -H "$ADMIN" -H "$JSON" -d '{"email":"checkout-demo@example.com"}')
printf '$ %s\n%s\n\n' 'curl -s -X POST $G/admin/accounts -H "$ADMIN" -H "$JSON" -d '\''{"email":"checkout-demo@example.com"}'\''' "$NEW"
export FREE_KEY=$(node -p "($NEW).api_key")
URL=$(curl -s -X POST $G/v1/account/checkout -H "Authorization: Bearer $FREE_KEY" -H "$JSON" -d '{"plan":"starter"}' | tee /tmp/walkthrough-checkout.json | node -p 'JSON.parse(require("fs").readFileSync(0)).url')
printf '$ %s\n%s\n\n' 'curl -s -X POST $G/v1/account/checkout -H "Authorization: Bearer $FREE_KEY" -H "$JSON" -d '\''{"plan":"starter"}'\''' "$(cat /tmp/walkthrough-checkout.json)"
run "curl -s -o /dev/null -w '%{http_code} %{redirect_url}\n' -X POST $URL -d payment_method=pm_card_visa     # the hosted page's form, as a browser posts it"
run 'sleep 3     # the queue consumer and the webhooks are asynchronous'
run 'curl -s $G/v1/account -H "Authorization: Bearer $FREE_KEY"'
run 'curl -s "$G/v1/account/transactions?limit=1" -H "Authorization: Bearer $FREE_KEY"'
run 'curl -s -X POST $G/v1/account/checkout -H "Authorization: Bearer $FREE_KEY" -H "$JSON" -d '\''{"plan":"pro"}'\'''

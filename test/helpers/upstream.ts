import { env } from "cloudflare:workers";
import { expect } from "vitest";

/** As test/global/upstream-stub.ts records it (that file runs in Node, this one in workerd). */
export interface ReceivedRequest {
  method: string;
  path: string;
  request_id: string | null;
}

/** A request id no other request carries, to find this test's requests at the upstream stub. */
export function uniqueRequestId(): string {
  return `test-${crypto.randomUUID()}`;
}

/** The requests the upstream stub received with this `X-Request-Id` (test/global/upstream-stub.ts). */
export async function upstreamRequests(requestId: string): Promise<ReceivedRequest[]> {
  const res = await fetch(
    `${env.UPSTREAM_URL}/_test/requests?request_id=${encodeURIComponent(requestId)}`,
  );
  expect(res.status).toBe(200);
  return (await res.json<{ data: ReceivedRequest[] }>()).data;
}

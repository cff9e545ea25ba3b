/**
 * The floor of any Workers gateway: forward the request to the upstream with `fetch` and
 * return its response, nothing else. Same runtime and upstream as the gateway benchmark.
 */
export default {
  /** @param {Request} request @param {{ UPSTREAM_URL: string }} env */
  async fetch(request, env) {
    const url = new URL(request.url);
    return fetch(new URL(url.pathname + url.search, env.UPSTREAM_URL), request);
  },
};

/**
 * Matches `/v2/...` request paths to the API's endpoints, the way Distribution's router does (repository
 * names contain slashes, so the endpoint is found from the end of the path). Pure.
 */

/** The endpoints of the distribution API, used as the `route` metrics label. */
export const Endpoints = {
  base: 'base',
  catalog: 'catalog',
  tags: 'tags',
  manifest: 'manifest',
  blob: 'blob',
  uploadStart: 'blob_upload_start',
  upload: 'blob_upload',
  referrers: 'referrers',
  unknown: 'unknown',
} as const;

/** One of the endpoints. */
export type Endpoint = (typeof Endpoints)[keyof typeof Endpoints];

/** A matched request path; `name` is still unvalidated. */
export interface RouteMatch {
  readonly endpoint: Endpoint;
  readonly name?: string;
  /** A tag or digest (manifests), a digest (blobs, referrers) or an upload id. */
  readonly reference?: string;
}

const PATTERNS: readonly [RegExp, Endpoint][] = [
  [/^\/v2\/(.+)\/tags\/list$/, Endpoints.tags],
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, Endpoints.manifest],
  [/^\/v2\/(.+)\/blobs\/uploads\/?$/, Endpoints.uploadStart],
  [/^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, Endpoints.upload],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, Endpoints.blob],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, Endpoints.referrers],
];

/** Matches a request path (without its query) to an endpoint. */
export function matchRoute(path: string): RouteMatch {
  if (path === '/v2/' || path === '/v2') return { endpoint: Endpoints.base };
  if (path === '/v2/_catalog') return { endpoint: Endpoints.catalog };
  for (const [pattern, endpoint] of PATTERNS) {
    const match = pattern.exec(path);
    if (match !== null) {
      const [, name, reference] = match;
      return { endpoint, ...(name !== undefined ? { name } : {}), ...(reference !== undefined ? { reference } : {}) };
    }
  }
  return { endpoint: Endpoints.unknown };
}

/**
 * Listing endpoints: the base endpoint, tags list, catalog and referrers, with `n`/`last` pagination.
 */
import { parseDigest } from '../storage/digest.js';
import { PaginationNumberInvalidError } from '../storage/errors.js';
import { ManifestMediaTypes } from '../storage/manifest.js';
import type { RequestContext } from './context.js';

/** The most entries one catalog page returns when the client does not say. */
const CATALOG_DEFAULT_PAGE = 1000;
/** The most entries one page may return, whatever the client asks. */
const MAX_PAGE = 10_000;

function pageSize(ctx: RequestContext, fallback: number | undefined): number | undefined {
  const n = ctx.query.get('n');
  if (n === null || n === '') return fallback;
  if (!/^\d+$/.test(n)) throw new PaginationNumberInvalidError(`n must be a non-negative integer, not "${n.slice(0, 20)}"`);
  return Math.min(Number(n), MAX_PAGE);
}

function nextLink(path: string, n: number, last: string): string {
  return `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
}

/** GET /v2/: the API version check. */
export async function getBase(ctx: RequestContext): Promise<void> {
  ctx.reply.code(200).header('content-type', 'application/json').send('{}');
}

/** GET /v2/<name>/tags/list[?n=&last=]. */
export async function listTags(ctx: RequestContext): Promise<void> {
  const all = await ctx.api.storage.manifests.tags(ctx.name, ctx.signal);
  const last = ctx.query.get('last');
  const after = last === null ? all : all.filter((tag) => tag > last);
  const n = pageSize(ctx, undefined);
  const page = n === undefined ? after : after.slice(0, n);
  if (n !== undefined && after.length > n && page.length > 0) {
    ctx.reply.header('link', nextLink(`/v2/${ctx.name}/tags/list`, n, page[page.length - 1] as string));
  }
  ctx.reply.code(200).header('content-type', 'application/json').send(JSON.stringify({ name: ctx.name, tags: page }));
}

/** GET /v2/_catalog[?n=&last=]. */
export async function listCatalog(ctx: RequestContext): Promise<void> {
  const n = pageSize(ctx, CATALOG_DEFAULT_PAGE) ?? CATALOG_DEFAULT_PAGE;
  const last = ctx.query.get('last');
  const { names, more } = await ctx.api.storage.catalog({ limit: n, ...(last !== null ? { last } : {}), signal: ctx.signal });
  if (more && names.length > 0) ctx.reply.header('link', nextLink('/v2/_catalog', n, names[names.length - 1] as string));
  ctx.reply.code(200).header('content-type', 'application/json').send(JSON.stringify({ repositories: names }));
}

/** GET /v2/<name>/referrers/<digest>[?artifactType=]: an image index of the manifests that refer to a subject. */
export async function listReferrers(ctx: RequestContext): Promise<void> {
  const subject = parseDigest(ctx.reference);
  const artifactType = ctx.query.get('artifactType') ?? undefined;
  const manifests = await ctx.api.storage.manifests.referrers(ctx.name, subject, artifactType, ctx.signal);
  if (artifactType !== undefined) ctx.reply.header('oci-filters-applied', 'artifactType');
  ctx.reply
    .code(200)
    .header('content-type', ManifestMediaTypes.ociIndex)
    .send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ManifestMediaTypes.ociIndex, manifests })));
}

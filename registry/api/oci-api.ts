/**
 * The OCI distribution API as a fastify plugin: matches every `/v2` request to its endpoint, checks the
 * repository name and the write policy, runs the handler, and maps whatever it throws to an OCI error.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { UnsupportedError } from '../storage/errors.js';
import { assertRepositoryName } from '../storage/reference.js';
import { cancelUpload, deleteBlob, finishUpload, getBlob, patchUpload, startUpload, uploadStatus } from './blob-routes.js';
import type { ApiOptions, RequestContext } from './context.js';
import { getBase, listCatalog, listReferrers, listTags } from './listing-routes.js';
import { deleteManifest, getManifest, putManifest } from './manifest-routes.js';
import { toHttpError } from './oci-errors.js';
import { Endpoints, matchRoute, type Endpoint } from './route-table.js';

type Handler = (ctx: RequestContext) => Promise<void>;

interface Action {
  readonly handler: Handler;
  /** Writes are refused in read-only and maintenance mode. */
  readonly writes: boolean;
}

const read = (handler: Handler): Action => ({ handler, writes: false });
const write = (handler: Handler): Action => ({ handler, writes: true });

/** Which handler serves each method of each endpoint. */
const ACTIONS: Record<Endpoint, Partial<Record<string, Action>>> = {
  base: { GET: read(getBase), HEAD: read(getBase) },
  catalog: { GET: read(listCatalog) },
  tags: { GET: read(listTags) },
  manifest: { GET: read(getManifest), HEAD: read(getManifest), PUT: write(putManifest), DELETE: write(deleteManifest) },
  blob: { GET: read(getBlob), HEAD: read(getBlob), DELETE: write(deleteBlob) },
  blob_upload_start: { POST: write(startUpload) },
  blob_upload: { GET: read(uploadStatus), PATCH: write(patchUpload), PUT: write(finishUpload), DELETE: write(cancelUpload) },
  referrers: { GET: read(listReferrers) },
  unknown: {},
};

declare module 'fastify' {
  interface FastifyRequest {
    /** The API endpoint the request was matched to, for metrics and logs. */
    endpoint: Endpoint;
  }
}

/** Sends an error as the spec's JSON body; logs server faults. */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const http = toHttpError(error);
  if (http.serverFault) request.log.error({ err: error, endpoint: request.endpoint }, 'Failed to serve request');
  else request.log.debug({ err: error, endpoint: request.endpoint }, 'Rejected request');
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy();
    return;
  }
  reply.code(http.status).headers(http.headers).header('content-type', 'application/json').send(JSON.stringify(http.body));
}

/** Registers the `/v2` API on a fastify instance. */
export async function ociApi(app: FastifyInstance, options: ApiOptions): Promise<void> {
  app.decorateRequest('endpoint', Endpoints.unknown);
  // Bodies are streamed by the handlers themselves: blobs straight to storage, manifests with a size limit.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.addHook('onSend', async (_request, reply) => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
  });

  async function serve(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const queryAt = request.url.indexOf('?');
    const path = queryAt === -1 ? request.url : request.url.slice(0, queryAt);
    const match = matchRoute(path);
    request.endpoint = match.endpoint;
    if (match.endpoint === Endpoints.unknown) {
      throw new UnsupportedError(`no API endpoint at ${path.slice(0, 120)}`, { status: 404 });
    }
    const action = ACTIONS[match.endpoint][request.method];
    if (action === undefined) {
      throw new UnsupportedError(`${request.method} is not supported on this endpoint`);
    }
    const name = match.name ?? '';
    if (match.name !== undefined) assertRepositoryName(name);
    if (action.writes) options.writeGuard.assertWritable();

    const controller = new AbortController();
    const write = action.writes ? options.writeGuard.beginWrite?.(controller.signal) : undefined;
    write?.signal.addEventListener('abort', () => controller.abort(write.signal.reason), { once: true });
    const onClose = () => {
      write?.end();
      if (!reply.raw.writableFinished) controller.abort();
    };
    reply.raw.once('close', onClose);
    await action.handler({
      api: options,
      request,
      reply,
      name,
      reference: match.reference ?? '',
      query: new URLSearchParams(queryAt === -1 ? '' : request.url.slice(queryAt + 1)),
      signal: controller.signal,
    });
  }

  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendError(new UnsupportedError(`no API endpoint at ${request.url.slice(0, 120)}`, { status: 404 }), request, reply),
  );
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
  app.route({ method: [...methods], url: '/v2', handler: serve });
  app.route({ method: [...methods], url: '/v2/*', handler: serve });
}

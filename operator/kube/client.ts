/**
 * The operator's Kubernetes client: the only module that uses @kubernetes/client-node, for loading a
 * kubeconfig and signing requests with its credentials (in a pod: the ServiceAccount's). It reads, lists,
 * applies (server-side apply under one field manager), patches status, deletes and watches over plain
 * HTTPS, so that watches can resume and relist on its own terms.
 */
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import { resourcePath, resourceType } from './resources.js';

/** Any Kubernetes object the operator handles. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly [key: string]: unknown };
  readonly [key: string]: unknown;
}

/** An answer of the API server that was not a success. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** A watch feeding events, restarted after errors. */
export interface Watch {
  stop(): Promise<void>;
}

/** What a watch reports. */
export type WatchEvent = 'add' | 'update' | 'delete';

/** The client the controllers are given. */
export class KubeClient {
  private constructor(private readonly config: KubeConfig, readonly fieldManager: string) {}

  /** A client from a kubeconfig file, or from the default places (KUBECONFIG, ~/.kube/config, in-cluster). */
  static fromKubeconfig(path: string | undefined, fieldManager: string): KubeClient {
    const config = new KubeConfig();
    if (path !== undefined) config.loadFromFile(path);
    else config.loadFromDefault();
    return new KubeClient(config, fieldManager);
  }

  /** Sends one request to the API server and parses the JSON answer; throws KubeApiError on failure. */
  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const cluster = this.config.getCurrentCluster();
    if (cluster === null) throw new Error('the kubeconfig names no current cluster');
    const url = new URL(path, cluster.server);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const options: RequestOptions = {
      method,
      hostname: url.hostname,
      port: url.port,
      path: `${url.pathname}${url.search}`,
      // A length, not chunks: the API server ignores a chunked DELETE body, and with it the propagation policy
      // (a Job deleted so is orphaned: it keeps an `orphan` finalizer, and its pods stay).
      headers: { accept: 'application/json', ...(payload !== undefined ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}) },
    };
    await this.config.applyToHTTPSOptions(options);
    return new Promise<T>((resolve, reject) => {
      const req = httpsRequest(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve((text.length > 0 ? JSON.parse(text) : undefined) as T);
            return;
          }
          let reason = 'Unknown';
          let message = text;
          try {
            const parsed = JSON.parse(text) as { reason?: string; message?: string };
            reason = parsed.reason ?? reason;
            message = parsed.message ?? message;
          } catch {
            // not a Status object
          }
          reject(new KubeApiError(status, reason, `${method} ${path}: ${status} ${message}`));
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Reads an object; undefined when it does not exist. */
  async get<T extends KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', resourcePath(resourceType(apiVersion, kind), { ...(namespace ? { namespace } : {}), name }));
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** Lists objects of a kind in a namespace (all namespaces when undefined), optionally by label selector. */
  async list<T extends KubeObject>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<T[]> {
    const path = resourcePath(resourceType(apiVersion, kind), namespace ? { namespace } : {});
    const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    const list = await this.request<{ items: T[] }>('GET', `${path}${query}`);
    return list.items.map((item) => ({ ...item, apiVersion, kind }));
  }

  /**
   * Applies an object with server-side apply under the operator's field manager, forcing ownership of the
   * fields it sets: out-of-band edits to them are reverted. With `subresource: 'status'` it applies status.
   */
  apply<T extends KubeObject>(object: KubeObject, options: { subresource?: 'status' } = {}): Promise<T> {
    const type = resourceType(object.apiVersion, object.kind);
    const path = resourcePath(type, {
      ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}),
      name: object.metadata.name,
      ...(options.subresource ? { subresource: options.subresource } : {}),
    });
    return this.request<T>('PATCH', `${path}?fieldManager=${encodeURIComponent(this.fieldManager)}&force=true`, object, 'application/apply-patch+yaml');
  }

  /** Creates an object; throws KubeApiError 409 when it exists. */
  create<T extends KubeObject>(object: KubeObject): Promise<T> {
    const type = resourceType(object.apiVersion, object.kind);
    return this.request<T>('POST', resourcePath(type, object.metadata.namespace ? { namespace: object.metadata.namespace } : {}), object);
  }

  /** Replaces an object; with `metadata.resourceVersion` set, throws KubeApiError 409 if it changed meanwhile. */
  replace<T extends KubeObject>(object: KubeObject): Promise<T> {
    const type = resourceType(object.apiVersion, object.kind);
    const path = resourcePath(type, { ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}), name: object.metadata.name });
    return this.request<T>('PUT', path, object);
  }

  /** Deletes an object; does nothing when it is already gone. */
  async delete(apiVersion: string, kind: string, namespace: string | undefined, name: string, propagation = 'Background'): Promise<void> {
    try {
      await this.request('DELETE', resourcePath(resourceType(apiVersion, kind), { ...(namespace ? { namespace } : {}), name }), {
        kind: 'DeleteOptions',
        apiVersion: 'v1',
        propagationPolicy: propagation,
      });
    } catch (error) {
      if (!(error instanceof KubeApiError && error.status === 404)) throw error;
    }
  }

  /**
   * Watches every object of a kind (all namespaces): lists them (an `add` for each), then follows the
   * watch stream from the list's resourceVersion. When the stream ends it resumes from the last version
   * seen; on `410 Gone` (history compacted) or any error (API server restarting) it lists again after
   * `retryMs`, reporting each object as `update` and each one that vanished as `delete`. With a
   * `labelSelector`, only the objects it selects.
   */
  async watch<T extends KubeObject>(
    apiVersion: string,
    kind: string,
    handler: (event: WatchEvent, object: T) => void,
    onError?: (error: unknown) => void,
    retryMs = 1000,
    timeoutSeconds = 300,
    labelSelector?: string,
  ): Promise<Watch> {
    const path = resourcePath(resourceType(apiVersion, kind));
    const selector = labelSelector !== undefined ? `labelSelector=${encodeURIComponent(labelSelector)}` : undefined;
    const known = new Map<string, T>();
    const keyOf = (object: KubeObject) => `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
    let stopped = false;
    let current: { abort(): void } | undefined;

    const list = async (): Promise<string> => {
      const result = await this.request<{ metadata: { resourceVersion: string }; items: T[] }>('GET', selector !== undefined ? `${path}?${selector}` : path);
      const seen = new Set<string>();
      for (const item of result.items) {
        const object = { ...item, apiVersion, kind } as T;
        const key = keyOf(object);
        seen.add(key);
        handler(known.has(key) ? 'update' : 'add', object);
        known.set(key, object);
      }
      for (const [key, object] of known) {
        if (!seen.has(key)) {
          known.delete(key);
          handler('delete', object);
        }
      }
      return result.metadata.resourceVersion;
    };

    const follow = async (resourceVersion: string): Promise<string | 'gone'> => {
      // Like client-go, ask the server to end each watch after a while (jittered), and resume from there.
      const timeout = Math.max(1, Math.round(timeoutSeconds * (1 + Math.random())));
      const stream = await this.stream(
        `${path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=${timeout}&resourceVersion=${encodeURIComponent(resourceVersion)}${selector !== undefined ? `&${selector}` : ''}`,
      );
      current = stream;
      let version = resourceVersion;
      for await (const line of stream.lines) {
        const event = JSON.parse(line) as { type: string; object: T & { metadata: { resourceVersion?: string }; code?: number } };
        if (event.type === 'ERROR') return event.object.code === 410 ? 'gone' : version;
        version = event.object.metadata.resourceVersion ?? version;
        if (event.type === 'BOOKMARK') continue;
        const object = { ...event.object, apiVersion, kind } as T;
        if (event.type === 'DELETED') {
          known.delete(keyOf(object));
          handler('delete', object);
        } else {
          handler(known.has(keyOf(object)) ? 'update' : 'add', object);
          known.set(keyOf(object), object);
        }
      }
      return version;
    };

    const loop = async (version: string) => {
      let resourceVersion: string | undefined = version;
      while (!stopped) {
        try {
          resourceVersion ??= await list();
          const next = await follow(resourceVersion);
          resourceVersion = next === 'gone' ? undefined : next;
        } catch (error) {
          if (stopped) return;
          onError?.(error);
          resourceVersion = undefined;
          await new Promise((resolve) => setTimeout(resolve, retryMs).unref());
        }
      }
    };

    // The first list is retried too: an API server that just started may answer 429 while it initialises.
    let first: string | undefined;
    while (first === undefined && !stopped) {
      try {
        first = await list();
      } catch (error) {
        onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, retryMs).unref());
      }
    }
    void loop(first as string);
    return {
      async stop() {
        stopped = true;
        current?.abort();
      },
    };
  }

  /** Opens a streaming GET and yields its body line by line. */
  private async stream(path: string): Promise<{ lines: AsyncIterable<string>; abort(): void }> {
    const cluster = this.config.getCurrentCluster();
    if (cluster === null) throw new Error('the kubeconfig names no current cluster');
    const url = new URL(path, cluster.server);
    const options: RequestOptions = { method: 'GET', hostname: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers: { accept: 'application/json' } };
    await this.config.applyToHTTPSOptions(options);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpsRequest(options, resolve);
      req.on('error', reject);
      req.end();
    });
    if ((response.statusCode ?? 0) >= 300) {
      response.resume();
      throw new KubeApiError(response.statusCode ?? 0, 'WatchFailed', `GET ${path}: ${response.statusCode}`);
    }
    const lines = createInterface({ input: response, crlfDelay: Infinity });
    return { lines, abort: () => response.destroy() };
  }
}

/**
 * The operator's Kubernetes client: the only module that uses @kubernetes/client-node. It reads, lists,
 * applies (server-side apply under one field manager), patches status, deletes and watches, with the
 * credentials of a kubeconfig (in a pod: the ServiceAccount's).
 */
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { KubeConfig, makeInformer, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
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
    const options: RequestOptions = {
      method,
      hostname: url.hostname,
      port: url.port,
      path: `${url.pathname}${url.search}`,
      headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': contentType } : {}) },
    };
    await this.config.applyToHTTPSOptions(options);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
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
   * Watches every object of a kind (all namespaces), calling `handler` for each add, update and delete,
   * after an initial list. The watch survives timeouts, `410 Gone` (it lists again) and API-server
   * restarts: on any error it starts again after `retryMs`.
   */
  async watch<T extends KubeObject>(apiVersion: string, kind: string, handler: (event: WatchEvent, object: T) => void, onError?: (error: unknown) => void, retryMs = 1000): Promise<Watch> {
    const path = resourcePath(resourceType(apiVersion, kind));
    const informer = makeInformer<KubernetesObject>(this.config, path, async () => {
      const list = await this.request<KubernetesListObject<KubernetesObject>>('GET', path);
      return list;
    });
    const forward = (event: WatchEvent) => (object: KubernetesObject) => handler(event, { ...object, apiVersion, kind } as unknown as T);
    informer.on('add', forward('add'));
    informer.on('update', forward('update'));
    informer.on('delete', forward('delete'));
    let stopped = false;
    informer.on('error', (error: unknown) => {
      onError?.(error);
      if (stopped) return;
      setTimeout(() => {
        if (!stopped) informer.start().catch((again: unknown) => onError?.(again));
      }, retryMs).unref();
    });
    await informer.start();
    return {
      async stop() {
        stopped = true;
        await informer.stop();
      },
    };
  }
}

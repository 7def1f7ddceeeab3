/**
 * A storage driver that keeps everything in process memory: for tests and throw-away registries. Content
 * is lost when the process exits, and it cannot be shared between replicas.
 */
import { Readable } from 'node:stream';
import type { FileInfo, StorageDriver, WriteOptions, WalkDecision } from '../driver.js';
import { InvalidOffsetError, PathNotFoundError } from '../errors.js';
import { walkByListing } from '../walk.js';

const NAME = 'inmemory';

interface FileNode {
  readonly kind: 'file';
  chunks: Buffer[];
  size: number;
  modTime: Date;
}

interface DirNode {
  readonly kind: 'dir';
  readonly children: Map<string, FileNode | DirNode>;
  modTime: Date;
}

function parts(path: string): string[] {
  return path.split('/').filter((part) => part.length > 0);
}

/** Stores objects in a tree of maps in memory. */
export class InMemoryDriver implements StorageDriver {
  readonly name = NAME;
  private readonly root: DirNode = { kind: 'dir', children: new Map(), modTime: new Date() };

  private find(path: string): FileNode | DirNode | undefined {
    let node: FileNode | DirNode = this.root;
    for (const part of parts(path)) {
      if (node.kind !== 'dir') return undefined;
      const next: FileNode | DirNode | undefined = node.children.get(part);
      if (next === undefined) return undefined;
      node = next;
    }
    return node;
  }

  private file(path: string): FileNode {
    const node = this.find(path);
    if (node?.kind !== 'file') throw new PathNotFoundError(path, NAME);
    return node;
  }

  /** Creates the parent directories of `path`, replacing files in the way, and returns the parent. */
  private parent(path: string): { dir: DirNode; name: string } {
    const names = parts(path);
    const name = names.pop();
    if (name === undefined) throw new PathNotFoundError(path, NAME);
    let dir = this.root;
    for (const part of names) {
      let next = dir.children.get(part);
      if (next?.kind !== 'dir') {
        next = { kind: 'dir', children: new Map(), modTime: new Date() };
        dir.children.set(part, next);
      }
      dir = next;
    }
    return { dir, name };
  }

  private setFile(path: string, chunks: Buffer[], size: number): void {
    const { dir, name } = this.parent(path);
    dir.children.set(name, { kind: 'file', chunks, size, modTime: new Date() });
  }

  async getContent(path: string): Promise<Buffer> {
    const node = this.file(path);
    return Buffer.concat(node.chunks, node.size);
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    const copy = Buffer.from(content);
    this.setFile(path, [copy], copy.length);
  }

  async putContentIfAbsent(path: string, content: Uint8Array): Promise<boolean> {
    // Checked and set without yielding: concurrent calls cannot interleave.
    if (this.find(path) !== undefined) return false;
    const copy = Buffer.from(content);
    this.setFile(path, [copy], copy.length);
    return true;
  }

  async reader(path: string, offset = 0, length?: number): Promise<Readable> {
    const node = this.file(path);
    if (offset < 0 || offset > node.size) throw new InvalidOffsetError(path, offset, NAME);
    const end = length === undefined ? node.size : Math.min(node.size, offset + length);
    const chunks = node.chunks;
    function* slices(): Generator<Buffer> {
      let position = 0;
      for (const chunk of chunks) {
        const from = Math.max(offset, position);
        const to = Math.min(end, position + chunk.length);
        if (from < to) yield chunk.subarray(from - position, to - position);
        position += chunk.length;
        if (position >= end) return;
      }
    }
    return Readable.from(slices(), { objectMode: false });
  }

  async writeStream(path: string, source: Readable, options: WriteOptions): Promise<number> {
    const received: Buffer[] = [];
    let written = 0;
    for await (const chunk of source) {
      options.signal?.throwIfAborted();
      const buffer = Buffer.from(chunk as Uint8Array);
      received.push(buffer);
      written += buffer.length;
    }
    if (!options.append) await options.verify?.();
    const existing = options.append ? this.find(path) : undefined;
    if (existing?.kind === 'file') {
      existing.chunks.push(...received);
      existing.size += written;
      existing.modTime = new Date();
    } else {
      this.setFile(path, received, written);
    }
    return written;
  }

  async stat(path: string): Promise<FileInfo> {
    const node = this.find(path);
    if (node === undefined || (node.kind === 'dir' && node.children.size === 0 && node !== this.root)) {
      throw new PathNotFoundError(path, NAME);
    }
    return { path, size: node.kind === 'file' ? node.size : 0, modTime: node.modTime, isDir: node.kind === 'dir' };
  }

  async list(path: string): Promise<string[]> {
    const node = this.find(path);
    if (node?.kind !== 'dir' || node.children.size === 0) throw new PathNotFoundError(path, NAME);
    const prefix = path === '/' ? '' : path;
    return [...node.children.keys()].sort().map((name) => `${prefix}/${name}`);
  }

  async move(source: string, destination: string): Promise<void> {
    const node = this.file(source);
    await this.delete(source);
    this.setFile(destination, node.chunks, node.size);
  }

  async delete(path: string): Promise<void> {
    await this.stat(path);
    const names = parts(path);
    const name = names.pop();
    let dir: DirNode = this.root;
    for (const part of names) {
      const next = dir.children.get(part);
      if (next?.kind !== 'dir') throw new PathNotFoundError(path, NAME);
      dir = next;
    }
    if (name !== undefined) dir.children.delete(name);
    else this.root.children.clear();
  }

  async redirectURL(): Promise<string | null> {
    return null;
  }

  walk(path: string, visit: (info: FileInfo) => Promise<WalkDecision> | WalkDecision, signal?: AbortSignal): Promise<void> {
    return walkByListing(this, path, visit, signal);
  }
}
